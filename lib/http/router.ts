import { AppError } from '#lib/errors';
import type { HttpRequest, HttpResponse } from './request.ts';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** What the router needs of a route declaration (lib/api/routes.ts holds the API's). */
export interface RouteDefinition {
  readonly method: Method;
  /** A path template such as `/data/{id}`. */
  readonly path: string;
}

export type RouteHandler = (request: HttpRequest) => Promise<HttpResponse>;

export interface BoundRoute extends RouteDefinition {
  readonly handler: RouteHandler;
}

interface CompiledRoute extends BoundRoute {
  readonly pattern: RegExp;
  readonly names: readonly string[];
  readonly key: string;
}

const METHOD_ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

/**
 * Dispatches on method and path. An unknown path is a 404; a known path with another method is a 405 whose
 * `Allow` lists the methods of the whole API on that path (`api`: both functions' routes, which the ingress
 * splits between them), so a client sees one consistent API. HEAD runs the GET handler; OPTIONS answers `Allow`.
 */
export function createRouter(routes: readonly BoundRoute[], api: readonly RouteDefinition[] = routes) {
  const compiled: CompiledRoute[] = routes.map((route) => ({
    ...route,
    ...compilePath(route.path),
    key: `${route.method} ${route.path}`,
  }));
  const templates = [...new Set([...api, ...routes].map((r) => r.path))].map((path) => ({
    path,
    pattern: compilePath(path).pattern,
    allow: allowedMethods(path, [...api, ...routes]),
  }));

  return async function route(request: HttpRequest): Promise<HttpResponse> {
    const { path, method } = request;
    const wanted = method === 'HEAD' ? 'GET' : method;
    for (const candidate of compiled) {
      if (candidate.method !== wanted) continue;
      const match = candidate.pattern.exec(path);
      if (match) {
        request.route = candidate.key;
        if (candidate.names.length > 0) request.params = extractParams(candidate, match);
        return candidate.handler(request);
      }
    }
    const template = templates.find((t) => t.pattern.test(path));
    if (template === undefined) {
      throw new AppError('route-not-found', `No resource at ${truncate(path)}. See /openapi.json for the API.`);
    }
    request.route = `${method} ${template.path}`;
    if (method === 'OPTIONS') return { statusCode: 204, headers: { allow: template.allow.join(', ') }, body: '' };
    throw new AppError(
      'method-not-allowed',
      `${truncate(method)} is not allowed on ${template.path}; use ${template.allow.join(', ')}.`,
      { allow: template.allow },
    );
  };
}

function allowedMethods(template: string, routes: readonly RouteDefinition[]): string[] {
  const methods = new Set<string>(routes.filter((r) => r.path === template).map((r) => r.method));
  if (methods.has('GET')) methods.add('HEAD');
  return METHOD_ORDER.filter((m) => methods.has(m));
}

/** A path template (`/data/{id}`) as an anchored pattern and the names of its parameters, in order. */
export function compilePath(path: string): { pattern: RegExp; names: string[] } {
  const names: string[] = [];
  const source = path
    .split('/')
    .map((segment) => {
      const param = /^\{(\w+)\}$/.exec(segment);
      if (!param?.[1]) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      names.push(param[1]);
      return '([^/]+)';
    })
    .join('/');
  return { pattern: new RegExp(`^${source}$`), names };
}

function extractParams(route: CompiledRoute, match: RegExpExecArray): Record<string, string> {
  const params: Record<string, string> = {};
  route.names.forEach((name, index) => {
    const raw = match[index + 1] ?? '';
    try {
      params[name] = decodeURIComponent(raw);
    } catch {
      throw new AppError('invalid-parameter', `The path segment ${truncate(raw)} is not valid percent-encoding.`, {
        issues: [{ pointer: `/${name}`, detail: 'is not valid percent-encoding' }],
      });
    }
  });
  return params;
}

const truncate = (text: string): string => (text.length > 80 ? `${text.slice(0, 80)}…` : text);
