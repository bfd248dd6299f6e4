/**
 * The Knative public routing (knative/cluster/public-routing.yaml) agrees with the route table: every route of
 * lib/api/routes.ts reaches the function the table names, through the same VirtualService rules Istio applies
 * (first match wins), and the ALB forwards its path.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { parseAllDocuments } from 'yaml';
import { API_ROUTES } from '#lib/api';

interface StringMatch {
  exact?: string;
  prefix?: string;
  regex?: string;
}
interface HttpRule {
  name: string;
  match: Array<{ method?: StringMatch; uri?: StringMatch }>;
  rewrite?: { authority?: string };
}

const documents = parseAllDocuments(readFileSync('knative/cluster/public-routing.yaml', 'utf8')).map(
  (d) => d.toJS() as { kind: string; spec: Record<string, unknown> },
);
const virtualService = documents.find((d) => d.kind === 'VirtualService');
const ingress = documents.find((d) => d.kind === 'Ingress');
const rules = (virtualService?.spec.http ?? []) as HttpRule[];

const matches = (m: StringMatch | undefined, value: string): boolean =>
  m === undefined ||
  (m.exact !== undefined && m.exact === value) ||
  (m.prefix !== undefined && value.startsWith(m.prefix)) ||
  (m.regex !== undefined && new RegExp(`^(?:${m.regex})$`).test(value));

/** The function Istio sends a request to: the authority of the first rule with a matching clause. */
function routedTo(method: string, path: string): string | undefined {
  const rule = rules.find((r) => r.match.some((m) => matches(m.method, method) && matches(m.uri, path)));
  return rule?.rewrite?.authority?.split('.')[0];
}

const example = (template: string) => template.replace(/\{\w+\}/g, '0190a6e4-1c2b-7c3d-8e4f-a5b6c7d8e9f0');

describe('public routing', () => {
  const cases: Array<{ method: string; path: string; function: string }> = API_ROUTES.flatMap((r) =>
    (r.method === 'GET' ? ['GET', 'HEAD'] : [r.method]).map((method) => ({
      method,
      path: r.path,
      function: r.function,
    })),
  );
  it.each(cases)('sends $method $path to $function', (route) => {
    expect(routedTo(route.method, example(route.path))).toBe(route.function);
  });

  it('routes nothing outside the API', () => {
    expect(routedTo('GET', '/metrics')).toBeUndefined();
    expect(routedTo('GET', '/healthz')).toBeUndefined();
    expect(routedTo('DELETE', '/data')).toBeUndefined();
  });

  it('has the ALB forward every public path to the Istio gateway', () => {
    type Rule = { http: { paths: Array<{ path: string; pathType: string }> } };
    const paths = ((ingress?.spec.rules ?? []) as Rule[])[0]?.http.paths ?? [];
    for (const route of API_ROUTES) {
      const path = example(route.path);
      expect({
        path,
        forwarded: paths.some((p) => (p.pathType === 'Exact' ? p.path === path : path.startsWith(p.path))),
      }).toEqual({ path, forwarded: true });
    }
  });
});
