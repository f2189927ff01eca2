import { randomUUID } from 'node:crypto';
import { compileResponseValidator, loadOpenApi } from '../openapi/contract.js';

/**
 * The smoke test a release must pass before it gets user traffic: Argo Rollouts runs it as a Job metric against
 * the preview Service (chart: rollout.analysis.smoke). Each check is one request a real client makes; the run
 * stops at the first failure, which names the request and what was wrong.
 */
export interface SmokeOptions {
  baseUrl: string;
  /** Create, read and erase a throw-away user (environments whose data may carry test writes). */
  writeCycle: boolean;
  timeoutMs: number;
  /** Sent as `Authorization: Bearer …` when the API requires a token. */
  token?: string;
}

export interface SmokeCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

class CheckFailed extends Error {}

interface Reply {
  status: number;
  contentType: string;
  body: unknown;
}

export async function runSmoke(options: SmokeOptions, report: (check: SmokeCheck) => void = () => undefined): Promise<boolean> {
  const contract = compileResponseValidator(loadOpenApi());
  const call = async (method: string, path: string, body?: unknown): Promise<Reply> => {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (options.token !== undefined && path.startsWith('/api/')) headers.authorization = `Bearer ${options.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (method === 'POST') headers['idempotency-key'] = randomUUID();
    const res = await fetch(new URL(path, options.baseUrl), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(options.timeoutMs),
    });
    const text = await res.text();
    const contentType = res.headers.get('content-type') ?? '';
    return { status: res.status, contentType, body: text && contentType.includes('json') ? (JSON.parse(text) as unknown) : text };
  };
  const expectStatus = (reply: Reply, status: number, what: string): void => {
    if (reply.status !== status) throw new CheckFailed(`${what} answered ${reply.status}, expected ${status}: ${JSON.stringify(reply.body).slice(0, 300)}`);
  };
  const expectContract = (reply: Reply, operationId: string, what: string): void => {
    const errors = contract(operationId, reply.status, reply.contentType, reply.body);
    if (errors.length > 0) throw new CheckFailed(`${what} breaks the OpenAPI contract (${operationId} ${reply.status}): ${errors.join('; ')}`);
  };

  const checks: [string, () => Promise<void>][] = [
    ['GET /health', async () => { expectStatus(await call('GET', '/health'), 200, 'GET /health'); }],
    ['GET /ready', async () => { expectStatus(await call('GET', '/ready'), 200, 'GET /ready'); }],
    [
      'GET /api/users?limit=1 (contract)',
      async () => {
        const reply = await call('GET', '/api/users?limit=1');
        expectStatus(reply, 200, 'GET /api/users?limit=1');
        expectContract(reply, 'listUsers', 'GET /api/users?limit=1');
      },
    ],
  ];
  if (options.writeCycle) {
    let id = 0;
    const email = `smoke-${randomUUID()}@example.invalid`;
    checks.push(
      [
        'POST /api/users (contract)',
        async () => {
          const reply = await call('POST', '/api/users', { name: 'Smoke Test', email });
          expectStatus(reply, 201, 'POST /api/users');
          expectContract(reply, 'createUser', 'POST /api/users');
          id = (reply.body as { id: number }).id;
        },
      ],
      [
        'GET /api/users/{id} reads what was written',
        async () => {
          const reply = await call('GET', `/api/users/${id}`);
          expectStatus(reply, 200, `GET /api/users/${id}`);
          expectContract(reply, 'getUser', `GET /api/users/${id}`);
          if ((reply.body as { email?: string }).email !== email) throw new CheckFailed(`GET /api/users/${id} returned another e-mail`);
        },
      ],
      ['DELETE /api/users/{id} erases it', async () => { expectStatus(await call('DELETE', `/api/users/${id}`), 204, `DELETE /api/users/${id}`); }],
      ['GET /api/users/{id} after the erase', async () => { expectStatus(await call('GET', `/api/users/${id}`), 404, `GET /api/users/${id} after DELETE`); }],
    );
  }
  for (const [name, check] of checks) {
    try {
      await check();
      report({ name, ok: true });
    } catch (err) {
      report({ name, ok: false, detail: err instanceof CheckFailed ? err.message : `${name}: ${String(err)}` });
      return false;
    }
  }
  return true;
}
