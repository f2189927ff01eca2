import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import Provider from 'oidc-provider';

/** The scopes of openapi.yaml; the test clients each get a subset. */
export const SCOPES = ['users:read', 'users:write'] as const;

/** A signing key: its private JWK (given to the provider) and its CryptoKey (for hand-made tokens). */
export interface SigningKey {
  kid: string;
  jwk: JWK;
  privateKey: CryptoKey;
}

export async function signingKey(kid: string, alg: 'ES256' | 'RS256' = 'ES256'): Promise<SigningKey> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, jwk: { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' }, privateKey };
}

/** Test clients, by the scopes their registration allows. */
export const CLIENTS = {
  reader: ['users:read'],
  writer: ['users:write'],
  both: ['users:read', 'users:write'],
} as const satisfies Record<string, readonly string[]>;
export type ClientName = keyof typeof CLIENTS;

/**
 * panva's oidc-provider, in this process, on 127.0.0.1: the client-credentials grant issuing JWT
 * access tokens (RFC 9068) for `audience` through resource indicators. `restart` swaps its keys
 * as a real key rotation does (new JWKS at the same URL).
 */
export class IdentityProvider {
  private server: Server | undefined;
  /** Requests the provider received for its JWKS, to see how often the service fetches it. */
  jwksRequests = 0;

  private constructor(
    readonly audience: string,
    private port: number,
    public keys: SigningKey[],
  ) {}

  static async start(audience = 'https://users.example.test'): Promise<IdentityProvider> {
    const provider = new IdentityProvider(audience, 0, [await signingKey('key-1')]);
    await provider.listen();
    return provider;
  }

  get issuer(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The key tokens are signed with (the first). */
  get currentKey(): SigningKey {
    return this.keys[0]!;
  }

  private async listen(): Promise<void> {
    const audience = this.audience;
    const issuerFor = (port: number) => `http://127.0.0.1:${port}`;
    // The issuer URL embeds the port: take one first when none is fixed yet.
    if (this.port === 0) {
      const probe = (await import('node:net')).createServer();
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      this.port = (probe.address() as AddressInfo).port;
      await new Promise((resolve) => probe.close(resolve));
    }
    const oidc = new Provider(issuerFor(this.port), {
      clients: Object.entries(CLIENTS).map(([name, scopes]) => ({
        client_id: name,
        client_secret: `${name}-secret`,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        scope: scopes.join(' '),
        id_token_signed_response_alg: this.currentKey.jwk.alg as 'ES256' | 'RS256',
      })),
      scopes: [...SCOPES],
      ttl: { ClientCredentials: 300 },
      jwks: { keys: this.keys.map((k) => k.jwk) },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => audience,
          useGrantedResource: () => true,
          getResourceServerInfo: () => ({
            scope: SCOPES.join(' '),
            audience,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 300,
            jwt: { sign: { alg: this.currentKey.jwk.alg as 'ES256' } },
          }),
        },
      },
    });
    oidc.use(async (ctx, next) => {
      if (ctx.path === '/jwks') this.jwksRequests += 1;
      await next();
    });
    const server = oidc.listen(this.port);
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    this.server = server;
  }

  /** A real access token from the token endpoint (client-credentials grant). */
  async token(client: ClientName, scope: string = CLIENTS[client].join(' ')): Promise<string> {
    const discovery = (await (await fetch(`${this.issuer}/.well-known/openid-configuration`)).json()) as { token_endpoint: string };
    const res = await fetch(discovery.token_endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${client}:${client}-secret`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: this.audience, ...(scope ? { scope } : {}) }),
    });
    const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
    if (!body.access_token) throw new Error(`token endpoint: ${res.status} ${body.error ?? ''} ${body.error_description ?? ''}`);
    return body.access_token;
  }

  /**
   * A token made by hand with one of the provider's keys (or any key), for the claims and headers
   * the provider itself would never issue: expired, not yet valid, for another audience...
   */
  async forge(claims: JWTPayload, options: { key?: SigningKey; header?: Record<string, unknown> } = {}): Promise<string> {
    const key = options.key ?? this.currentKey;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: this.issuer, aud: this.audience, client_id: 'both', sub: 'both', scope: SCOPES.join(' '), iat: now, exp: now + 300, ...claims })
      .setProtectedHeader({ alg: key.jwk.alg!, kid: key.kid, typ: 'at+jwt', ...options.header })
      .sign(key.privateKey);
  }

  /** Stops and starts again at the same URL with `keys` as its JWKS (the first one signs). */
  async restart(keys: SigningKey[]): Promise<void> {
    await this.stop();
    this.keys = keys;
    await this.listen();
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}
