import { expect } from 'chai';
import { loadOpenApi } from '../../service/openapi/contract.js';
import { compileResponseValidator } from '../../service/openapi/response-validator.js';

const doc = loadOpenApi();
const check = compileResponseValidator(doc);

/** Each documented operation as (method, path pattern), to find the one a test request hit. */
const operations = Object.entries(doc.paths).flatMap(([template, methods]) =>
  Object.entries(methods).map(([method, op]) => ({
    method: method.toUpperCase(),
    pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`),
    operationId: op.operationId,
  })),
);

function operationFor(method: string, url: string): string | undefined {
  const path = new URL(url).pathname;
  return operations.find((op) => op.method === method && op.pattern.test(path))?.operationId;
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  body: unknown;
}

/** Every response the tests see must be one the contract documents, body schema included. */
export function expectMatchesSpec(res: ApiResponse, operationId: string): void {
  const problems = check(operationId, res.status, res.headers.get('content-type') ?? '', res.body);
  expect(problems, `${operationId} ${res.status} breaks openapi.yaml`).to.deep.equal([]);
}

/**
 * fetch, with the body parsed as JSON when it is JSON. A response to a documented operation is
 * checked against openapi.yaml on the way, so no test can see an undocumented answer unnoticed.
 */
export async function call(url: string, init?: RequestInit): Promise<ApiResponse> {
  const res = await fetch(url, init);
  const text = await res.text();
  const isJson = /json/.test(res.headers.get('content-type') ?? '');
  const response = { status: res.status, headers: res.headers, body: isJson && text ? (JSON.parse(text) as unknown) : text };
  const operationId = operationFor(init?.method ?? 'GET', url);
  if (operationId) expectMatchesSpec(response, operationId);
  return response;
}

export function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
  return call(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}
