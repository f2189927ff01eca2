import { expect } from 'chai';
import { compileResponseValidator, loadOpenApi } from '../../service/openapi/contract.js';

const check = compileResponseValidator(loadOpenApi());

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

/** fetch, with the body parsed as JSON when it is JSON. */
export async function call(url: string, init?: RequestInit): Promise<ApiResponse> {
  const res = await fetch(url, init);
  const text = await res.text();
  const isJson = /json/.test(res.headers.get('content-type') ?? '');
  return { status: res.status, headers: res.headers, body: isJson && text ? (JSON.parse(text) as unknown) : text };
}

export function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
  return call(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}
