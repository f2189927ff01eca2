import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { Logger } from 'pino';
import { KeysUnavailableError } from './errors.js';

export interface IssuerKeysOptions {
  issuer: string;
  /** Skips OpenID discovery when set. */
  jwksUrl?: string;
  timeoutMs: number;
  /** At most one fetch per cooldown, successful or not. */
  cooldownMs: number;
  log: Pick<Logger, 'info' | 'warn'>;
  /** Counts fetches of the discovery document and JWKS by result. */
  onFetch?: (result: 'success' | 'failure') => void;
  now?: () => number;
}

/** Keys are refetched after this long even when every `kid` is known, so removed keys stop working. */
const MAX_AGE_MS = 10 * 60_000;

async function getJson(url: string, timeoutMs: number): Promise<unknown> {
  // No redirects: the issuer's metadata and keys come from the URLs configured or published, nowhere else.
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error', headers: { accept: 'application/json' } });
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
  return res.json();
}

/**
 * The issuer's signing keys, as jose's key resolver. Why not jose's createRemoteJWKSet: its
 * cooldown counts from the last *successful* fetch, so while the JWKS endpoint is down every
 * request (and every unknown `kid`) triggers another fetch and waits for its timeout. Here any
 * attempt starts the cooldown: an unreachable provider costs one fetch per cooldown, and the
 * requests in between get an immediate KeysUnavailableError (503) instead of a wait.
 * Stale keys keep working while a refresh fails; the discovery document is read once.
 */
export class IssuerKeys {
  private jwks: JWTVerifyGetKey | undefined;
  private jwksUrl: string | undefined;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private attemptedAt = Number.NEGATIVE_INFINITY;
  private lastAttemptFailed = false;
  private pending: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly options: IssuerKeysOptions) {
    this.jwksUrl = options.jwksUrl;
    this.now = options.now ?? (() => performance.now());
  }

  /** For jwtVerify: the key for this token's header, fetching the JWKS when needed and allowed. */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (!this.jwks || this.now() - this.fetchedAt > MAX_AGE_MS) await this.refresh();
    if (!this.jwks) throw new KeysUnavailableError('signing keys unavailable');
    try {
      return await this.jwks(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      // An unknown kid may be a rotation: look once more, unless someone just did.
      await this.refresh();
      try {
        return await this.jwks(header, token);
      } catch (again) {
        // The key may exist at the provider: we could not ask, so the honest answer is 503.
        if (again instanceof errors.JWKSNoMatchingKey && this.lastAttemptFailed) throw new KeysUnavailableError('signing keys unavailable');
        throw again;
      }
    }
  };

  private refresh(): Promise<void> {
    if (this.pending) return this.pending;
    if (this.now() - this.attemptedAt < this.options.cooldownMs) return Promise.resolve();
    this.attemptedAt = this.now();
    this.pending = this.load()
      .then(
        () => {
          this.lastAttemptFailed = false;
          this.options.onFetch?.('success');
        },
        (err: unknown) => {
          this.lastAttemptFailed = true;
          this.options.onFetch?.('failure');
          this.options.log.warn({ err: { message: err instanceof Error ? err.message : String(err) } }, 'auth: could not fetch the issuer signing keys');
        },
      )
      .finally(() => { this.pending = undefined; });
    return this.pending;
  }

  private async load(): Promise<void> {
    const { issuer, timeoutMs } = this.options;
    if (this.jwksUrl === undefined) {
      const metadata = (await getJson(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, timeoutMs)) as { issuer?: unknown; jwks_uri?: unknown };
      // OpenID Connect Discovery §4.3: the document must name the issuer we asked about.
      if (metadata.issuer !== issuer) throw new Error(`discovery document names issuer ${String(metadata.issuer)}, expected ${issuer}`);
      if (typeof metadata.jwks_uri !== 'string') throw new Error('discovery document has no jwks_uri');
      this.jwksUrl = metadata.jwks_uri;
    }
    const jwks = createLocalJWKSet((await getJson(this.jwksUrl, timeoutMs)) as JSONWebKeySet);
    this.jwks = jwks;
    this.fetchedAt = this.now();
  }
}
