/**
 * `node dist/service/smoke.js`: the pre-promotion smoke test (chart: rollout.analysis.smoke). Exit 0 = the release
 * at SMOKE_BASE_URL works; exit 1 = it does not (the Argo Rollouts Job metric fails and the rollout aborts).
 * One JSON line per check on stdout, never a token.
 *
 *   SMOKE_BASE_URL       the Service to test (the chart sets the preview Service)
 *   SMOKE_WRITE_CYCLE    "true": also create, read and erase a throw-away user
 *   SMOKE_TIMEOUT        per-request timeout (5s)
 *   AUTH_ISSUER, AUTH_AUDIENCE, SMOKE_CLIENT_ID, SMOKE_CLIENT_SECRET
 *                        when the API requires tokens: the client-credentials client from the secret store
 */
import { runSmoke } from './smoke/checks.js';
import { fetchToken } from './smoke/token.js';

const env = process.env;
const line = (o: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...o })}\n`);
};

async function main(): Promise<boolean> {
  const baseUrl = env.SMOKE_BASE_URL;
  if (!baseUrl) throw new Error('SMOKE_BASE_URL is required');
  const timeout = /^(\d+)(ms|s)$/.exec(env.SMOKE_TIMEOUT ?? '5s');
  if (!timeout) throw new Error('SMOKE_TIMEOUT must be a duration like 5s or 500ms');
  const timeoutMs = Number(timeout[1]) * (timeout[2] === 's' ? 1000 : 1);
  const writeCycle = env.SMOKE_WRITE_CYCLE === 'true';
  let token: string | undefined;
  if (env.AUTH_ISSUER) {
    const { AUTH_AUDIENCE: audience, SMOKE_CLIENT_ID: clientId, SMOKE_CLIENT_SECRET: clientSecret } = env;
    if (!audience || !clientId || !clientSecret) throw new Error('AUTH_ISSUER is set: AUTH_AUDIENCE, SMOKE_CLIENT_ID and SMOKE_CLIENT_SECRET are required');
    const scopes = writeCycle ? ['users:read', 'users:write'] : ['users:read'];
    token = await fetchToken({ issuer: env.AUTH_ISSUER, audience, clientId, clientSecret, scopes, timeoutMs });
    line({ check: 'token', ok: true });
  }
  return runSmoke({ baseUrl, writeCycle, timeoutMs, token }, (c) => { line({ check: c.name, ok: c.ok, ...(c.detail ? { detail: c.detail } : {}) }); });
}

main().then(
  (ok) => {
    line({ msg: ok ? 'smoke test passed' : 'smoke test failed', ok });
    process.exitCode = ok ? 0 : 1;
  },
  (err: unknown) => {
    line({ msg: 'smoke test could not run', ok: false, detail: err instanceof Error ? err.message : String(err) });
    process.exitCode = 1;
  },
);
