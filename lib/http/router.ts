import { AppError } from '#lib/errors';
import type { HttpContext, HttpEvent, HttpResponse } from './types.ts';

export type RouteHandler = (
  event: HttpEvent,
  params: Readonly<Record<string, string>>,
  context: HttpContext,
) => Promise<HttpResponse>;

export interface Route {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** A path template such as `/data/{id}`. */
  readonly path: string;
  readonly handler: RouteHandler;
}

interface CompiledRoute extends Route {
  readonly pattern: RegExp;
  readonly names: readonly string[];
}

/**
 * Dispatches on method and path. An unknown path is a 404; a known path with another method is a 405 whose
 * `Allow` lists `apiMethods` — the methods of the whole public API on that path, which the ingress splits
 * between the two functions — so a client sees one consistent API. HEAD runs the GET handler.
 */
export function createRouter(routes: readonly Route[], apiMethods: Readonly<Record<string, readonly string[]>> = {}) {
  const compiled = routes.map(compile);
  const templates = new Map<string, RegExp>();
  for (const path of new Set([...routes.map((r) => r.path), ...Object.keys(apiMethods)])) {
    templates.set(path, compilePath(path).pattern);
  }

  return async function route(event: HttpEvent, context: HttpContext): Promise<HttpResponse> {
    const path = event.rawPath;
    const method = event.requestContext.http.method.toUpperCase();
    const wanted = method === 'HEAD' ? 'GET' : method;
    for (const candidate of compiled) {
      if (candidate.method !== wanted) continue;
      const match = candidate.pattern.exec(path);
      if (match) {
        // As API Gateway does: the matched template, so logs and metrics name routes, never raw paths.
        event.routeKey = `${candidate.method} ${candidate.path}`;
        event.requestContext.routeKey = event.routeKey;
        return candidate.handler(event, extractParams(candidate, match), context);
      }
    }
    const template = [...templates].find(([, pattern]) => pattern.test(path))?.[0];
    if (template === undefined) {
      throw new AppError('route-not-found', `No resource at ${truncate(path)}. See /openapi.json for the API.`);
    }
    const allow = allowedMethods(template, routes, apiMethods);
    if (method === 'OPTIONS') {
      return { statusCode: 204, headers: { allow: allow.join(', ') }, body: '' };
    }
    throw new AppError('method-not-allowed', `${method} is not allowed on ${template}; use ${allow.join(', ')}.`, {
      allow,
    });
  };
}

function allowedMethods(
  template: string,
  routes: readonly Route[],
  apiMethods: Readonly<Record<string, readonly string[]>>,
): string[] {
  const methods = new Set<string>(apiMethods[template] ?? []);
  for (const r of routes) if (r.path === template) methods.add(r.method);
  if (methods.has('GET')) methods.add('HEAD');
  const order = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];
  return order.filter((m) => methods.has(m));
}

const compile = (route: Route): CompiledRoute => ({ ...route, ...compilePath(route.path) });

function compilePath(path: string): { pattern: RegExp; names: string[] } {
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
