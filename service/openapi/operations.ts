import type { OpenApiDocument } from './contract.js';

/** One operation of the contract, as the request path resolves to it. */
export interface MatchedOperation {
  operationId: string;
  /** The path as OpenAPI writes it (`/api/users/{id}`): the route label of metrics and logs. */
  template: string;
  /** Scopes the bearer token must carry; undefined when the operation declares no security. */
  scopes: readonly string[] | undefined;
}

interface Candidate {
  segments: (string | null)[];
  byMethod: Map<string, MatchedOperation>;
}

/**
 * THE path rule of the service, shared by routing, authentication and the limiter: a path names an
 * operation only when it equals the template exactly: same case, no trailing or repeated slash, one
 * non-empty segment per `{parameter}`. (The routers are built case-sensitive and strict to agree.)
 */
export function operationMatcher(doc: OpenApiDocument): (method: string, path: string) => MatchedOperation | undefined {
  const candidates: Candidate[] = Object.entries(doc.paths).map(([template, operations]) => ({
    segments: template.split('/').map((s) => (/^\{\w+\}$/.test(s) ? null : s)),
    byMethod: new Map(
      Object.entries(operations).map(([method, operation]) => {
        const requirement = operation.security?.[0];
        const scopes = requirement === undefined ? undefined : Object.values(requirement).flat();
        return [method.toUpperCase(), { operationId: operation.operationId, template, scopes }];
      }),
    ),
  }));
  return (method, path) => {
    const segments = path.split('/');
    const found = candidates.find(
      (c) => c.segments.length === segments.length && c.segments.every((s, i) => (s === null ? segments[i] !== '' : s === segments[i])),
    );
    return found?.byMethod.get(method === 'HEAD' ? 'GET' : method);
  };
}
