import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';

describe('the Amazon RDS certificate bundle', () => {
  it('is written by the build to the path the EKS values give node-postgres', () => {
    const out = mkdtempSync(join(tmpdir(), 'assets-'));
    try {
      execFileSync(process.execPath, ['scripts/copy-assets.mjs', out]);
      const pem = readFileSync(join(out, 'certs/aws-rds-ca.pem'), 'utf8');
      expect(pem.match(/-----BEGIN CERTIFICATE-----/g)?.length).to.be.greaterThan(10);
      for (const env of ['staging', 'production']) {
        const values = parse(readFileSync(`chart/users-service/env/${env}.yaml`, 'utf8')) as { database: { sslmode: string; sslrootcert: string } };
        expect(values.database.sslmode, env).to.equal('verify-full');
        // The image's WORKDIR is /app and it copies dist/ there.
        expect(values.database.sslrootcert, env).to.equal('/app/dist/certs/aws-rds-ca.pem');
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
