import { expect } from 'chai';
import { checkSync } from 'recheck';
import { loadOpenApi } from '../../service/openapi/contract.js';
import { useTestApp } from '../support/app.js';
import { postJson } from '../support/spec.js';

/** Every `pattern` in the contract, wherever it sits, with where it sits. */
function patterns(value: unknown, at = '#'): [string, string][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => patterns(v, `${at}/${i}`));
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, inner]) =>
    key === 'pattern' && typeof inner === 'string' ? [[at, inner] as [string, string]] : patterns(inner, `${at}/${key}`),
  );
}

describe('regular expressions of the contract', () => {
  const found = patterns(loadOpenApi());

  it('finds the patterns to check', () => {
    expect(found.length).to.be.at.least(2);
  });

  for (const [at, pattern] of found) {
    it(`matches in linear time (recheck): ${at}`, function () {
      this.timeout(60_000);
      // ajv compiles patterns with the u flag.
      const diagnostics = checkSync(pattern, 'u');
      expect(diagnostics.status, `${pattern}: ${JSON.stringify(diagnostics)}`).to.equal('safe');
    });
  }

  describe('over HTTP', () => {
    const suite = useTestApp();

    it('refuses a 16 000-character name ending in NUL as too long, before matching it', async () => {
      const res = await postJson(`${suite.app.baseUrl}/api/users`, { name: `${'a'.repeat(16_000)}\u0000`, email: 'long@example.com' });
      expect(res.status).to.equal(400);
      expect(res.body).to.deep.include({ errors: [{ field: 'name', message: 'must NOT have more than 100 characters' }] });
    });
  });
});
