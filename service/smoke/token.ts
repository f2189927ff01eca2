/**
 * An access token for the smoke test: OAuth 2.0 client credentials (RFC 6749 4.4) at the issuer's token endpoint,
 * found through OpenID discovery, for the API's audience as a resource indicator (RFC 8707).
 */
export interface ClientCredentials {
  issuer: string;
  audience: string;
  clientId: string;
  clientSecret: string;
  scopes: string[];
  timeoutMs: number;
}

export async function fetchToken(c: ClientCredentials): Promise<string> {
  const signal = (): AbortSignal => AbortSignal.timeout(c.timeoutMs);
  const discovery = await fetch(`${c.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, { signal: signal() });
  if (!discovery.ok) throw new Error(`OpenID discovery at ${c.issuer} answered ${discovery.status}`);
  const { token_endpoint: tokenEndpoint } = (await discovery.json()) as { token_endpoint?: string };
  if (typeof tokenEndpoint !== 'string') throw new Error(`OpenID discovery at ${c.issuer} names no token_endpoint`);
  const basic = Buffer.from(`${encodeURIComponent(c.clientId)}:${encodeURIComponent(c.clientSecret)}`).toString('base64');
  const res = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: c.scopes.join(' '), resource: c.audience }),
    signal: signal(),
  });
  const body = (await res.json().catch(() => ({}))) as { access_token?: string; error?: string };
  if (!res.ok || typeof body.access_token !== 'string') throw new Error(`token endpoint answered ${res.status}${body.error ? ` (${body.error})` : ''}`);
  return body.access_token;
}
