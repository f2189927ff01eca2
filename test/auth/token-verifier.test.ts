import { expect } from 'chai';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTVerifyGetKey } from 'jose';
import { InvalidTokenError } from '../../service/auth/errors.js';
import { TokenVerifier } from '../../service/auth/token-verifier.js';

/** The cache of verified tokens, with real keys and real signatures; the key resolver counts its calls. */
describe('TokenVerifier cache', () => {
  const issuer = 'https://issuer.example.test';
  const audience = 'https://users.example.test';
  let privateKey: CryptoKey;
  let calls = 0;
  let getKey: JWTVerifyGetKey;

  before(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    privateKey = pair.privateKey;
    const local = createLocalJWKSet({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k', alg: 'ES256' }] });
    getKey = (header, token) => {
      calls += 1;
      return local(header, token);
    };
  });

  const token = (expiresInSeconds: number, clientId = 'svc') =>
    new SignJWT({ client_id: clientId, scope: 'users:read' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k', typ: 'at+jwt' })
      .setIssuer(issuer).setAudience(audience).setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + expiresInSeconds)
      .sign(privateKey);

  it('checks the signature of a reused token once', async () => {
    const verifier = new TokenVerifier({ issuer, audience, getKey });
    const jwt = await token(300);
    calls = 0;
    const first = await verifier.verify(jwt);
    expect(verifier.cached(jwt)).to.deep.equal(first);
    expect(verifier.cached(jwt)).to.deep.equal(first);
    expect(calls).to.equal(1);
    expect(first).to.deep.include({ clientId: 'svc' });
    expect([...first.scopes]).to.deep.equal(['users:read']);
  });

  it('forgets a token at its exp, even within the clock tolerance', async () => {
    const verifier = new TokenVerifier({ issuer, audience, getKey });
    const jwt = await token(1);
    await verifier.verify(jwt);
    expect(verifier.cached(jwt)).to.not.equal(undefined);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    expect(verifier.cached(jwt)).to.equal(undefined);
  });

  it('holds at most cacheSize tokens, forgetting the least recently used', async () => {
    const verifier = new TokenVerifier({ issuer, audience, getKey, cacheSize: 2 });
    const [a, b, c] = await Promise.all([token(300, 'a'), token(300, 'b'), token(300, 'c')]);
    for (const jwt of [a, b]) await verifier.verify(jwt);
    verifier.cached(a);
    await verifier.verify(c);
    expect(verifier.cached(b)).to.equal(undefined);
    expect(verifier.cached(a)).to.not.equal(undefined);
    expect(verifier.cached(c)).to.not.equal(undefined);
  });

  it('never caches a token that fails', async () => {
    const verifier = new TokenVerifier({ issuer, audience: 'https://other.example.test', getKey });
    const jwt = await token(300);
    let error: unknown;
    await verifier.verify(jwt).catch((err: unknown) => { error = err; });
    expect(error).to.be.instanceOf(InvalidTokenError);
    expect(verifier.cached(jwt)).to.equal(undefined);
  });
});
