import { call, postJson, type ApiResponse } from '../support/spec.js';

export interface UserBody {
  id: number;
  name: string;
  email: string;
  created_at: string;
  updated_at: string;
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  errors?: { field: string; message: string }[];
}

/** The users API as a client sees it; every response is checked against openapi.yaml by `call`. */
export function usersClient(baseUrl: () => string) {
  const users = () => `${baseUrl()}/api/users`;
  return {
    users,
    create: (body: unknown, idempotencyKey?: string): Promise<ApiResponse> =>
      postJson(users(), body, idempotencyKey === undefined ? {} : { 'idempotency-key': `"${idempotencyKey}"` }),
    get: (id: number, headers: Record<string, string> = {}): Promise<ApiResponse> => call(`${users()}/${id}`, { headers }),
    patch: (id: number, body: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> =>
      call(`${users()}/${id}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/merge-patch+json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      }),
    erase: (id: number, headers: Record<string, string> = {}): Promise<ApiResponse> => call(`${users()}/${id}`, { method: 'DELETE', headers }),
    lookup: (query: string): Promise<ApiResponse> => call(`${users()}?${query}`),
  };
}

export const problemType = (res: ApiResponse): string => (res.body as ProblemBody).type.replace(/^.*#/, '');
export const fieldsOf = (res: ApiResponse): string[] => ((res.body as ProblemBody).errors ?? []).map((e) => e.field).sort();

let seq = 0;
/** An address no other test uses. */
export const uniqueEmail = (): string => `person${++seq}.${process.pid}.${Date.now()}@example.com`;
