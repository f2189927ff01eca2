/**
 * The bench's identity provider: OpenID discovery and a JWKS on loopback, and one RFC 9068 access
 * token (`typ: at+jwt`, ES256) carrying every scope the API's operations require. The service
 * fetches the keys once, verifies the token on its first request and then finds it in its cache of
 * verified tokens, as it does for a real client that reuses its token.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

/** Every scope of openapi.yaml: the bench calls read and write operations with the one token. */
const SCOPES = 'users:read users:write';
const AUDIENCE = 'https://users.bench.invalid';
const KID = 'bench-1';

export interface BenchIssuer {
  /** The environment that turns authentication on in the service, pointed at this issuer. */
  env: Record<string, string>;
  /** A bearer token valid for longer than any bench run. */
  token: string;
  close(): Promise<void>;
}

export async function startIssuer(): Promise<BenchIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: KID, alg: 'ES256', use: 'sig' }] });
  let issuer = '';
  const server: Server = createServer((req, res) => {
    const body = req.url === '/.well-known/openid-configuration' ? JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` })
      : req.url === '/jwks' ? jwks : undefined;
    res.writeHead(body === undefined ? 404 : 200, { 'Content-Type': 'application/json' }).end(body ?? '{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
  const token = await new SignJWT({ scope: SCOPES, client_id: 'bench' })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: KID })
    .setIssuer(issuer)
    .setAudience(AUDIENCE)
    .setSubject('bench')
    .setIssuedAt()
    .setExpirationTime('1d')
    .sign(privateKey);
  return {
    env: { AUTH_ISSUER: issuer, AUTH_AUDIENCE: AUDIENCE },
    token,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => { resolve(); }); }),
  };
}
