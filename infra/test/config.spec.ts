import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cidrsOverlap, environments, validateEnvironmentConfig, type EnvironmentConfig } from '../lib/config.js';

const production = environments.production;
const withCluster = (cluster: Partial<EnvironmentConfig['cluster']>): EnvironmentConfig => ({
  ...production,
  cluster: { ...production.cluster, ...cluster },
});

describe('CIDR overlap', () => {
  it('detects a range contained in another', () => {
    assert.equal(cidrsOverlap('10.0.0.0/16', '10.0.4.0/24'), true);
  });

  it('treats adjacent ranges as disjoint', () => {
    assert.equal(cidrsOverlap('10.30.0.0/20', '10.30.16.0/20'), false);
  });

  it('normalises a CIDR written with host bits set', () => {
    assert.equal(cidrsOverlap('10.1.2.3/16', '10.1.200.0/24'), true);
  });

  it('rejects something that is not an IPv4 CIDR', () => {
    assert.throws(() => cidrsOverlap('10.0.0/16', '10.0.0.0/16'), /not an IPv4/);
  });
});

describe('environment configuration', () => {
  for (const config of Object.values(environments)) {
    it(`${config.name}: is valid`, () => {
      assert.doesNotThrow(() => { validateEnvironmentConfig(config); });
    });
  }

  it('rejects a data VPC that overlaps the cluster VPC (peering needs disjoint ranges)', () => {
    assert.throws(() => { validateEnvironmentConfig(withCluster({ vpcCidr: '10.30.0.0/16' })); }, /overlaps the cluster VPC/);
  });

  it('rejects a backup copy region equal to the primary region', () => {
    assert.throws(
      () => { validateEnvironmentConfig({ ...production, backup: { ...production.backup, copyRegion: production.region } }); },
      /copyRegion must differ/,
    );
  });

  it('rejects an OIDC issuer written with https:// (IAM condition keys use the bare issuer)', () => {
    assert.throws(
      () => { validateEnvironmentConfig(withCluster({ oidcIssuer: `https://${production.cluster.oidcIssuer}` })); },
      /must omit https/,
    );
  });

  it('rejects an OIDC provider ARN of another issuer', () => {
    assert.throws(
      () => { validateEnvironmentConfig(withCluster({ oidcProviderArn: environments.staging.cluster.oidcProviderArn })); },
      /does not belong/,
    );
  });

  it('rejects disabling automated backups (it would also disable point-in-time recovery)', () => {
    assert.throws(
      () => { validateEnvironmentConfig({ ...production, database: { ...production.database, backupRetentionDays: 0 } }); },
      /backupRetentionDays/,
    );
  });

  for (const [field, weaken] of [
    ['database.multiAz', (c: EnvironmentConfig) => ({ ...c, database: { ...c.database, multiAz: false } })],
    ['database.deletionProtection', (c: EnvironmentConfig) => ({ ...c, database: { ...c.database, deletionProtection: false } })],
    ['database.finalSnapshot', (c: EnvironmentConfig) => ({ ...c, database: { ...c.database, finalSnapshot: false } })],
    ['cache.nodes', (c: EnvironmentConfig) => ({ ...c, cache: { ...c.cache, nodes: 1 } })],
    ['database.crossRegionPitrKmsKeyArn', (c: EnvironmentConfig) => ({ ...c, database: { ...c.database, crossRegionPitrKmsKeyArn: undefined } })],
    ['database.retainSecrets', (c: EnvironmentConfig) => ({ ...c, database: { ...c.database, retainSecrets: false, finalSnapshot: true } })],
    ['backup.vaultLock', (c: EnvironmentConfig) => ({ ...c, backup: { ...c.backup, vaultLock: undefined } })],
  ] as const) {
    it(`rejects a production configuration that turns off ${field}`, () => {
      assert.throws(() => { validateEnvironmentConfig(weaken(production)); }, /production requires/);
    });
  }

  it('rejects rotating the master and the application secret on the same day', () => {
    assert.throws(
      () => { validateEnvironmentConfig({ ...production, database: { ...production.database, appRotationDayOfMonth: production.database.masterRotationDayOfMonth } }); },
      /must differ/,
    );
  });

  it('rejects a rotation day that some months do not have', () => {
    assert.throws(() => { validateEnvironmentConfig({ ...production, database: { ...production.database, appRotationDayOfMonth: 31 } }); }, /between 1 and 28/);
  });

  it('rejects an instance class whose memory, and so connection limit, is unknown', () => {
    assert.throws(() => { validateEnvironmentConfig({ ...production, database: { ...production.database, instanceType: 't4g.nano' } }); }, /no known memory/);
  });

  it('rejects a vault lock below 7 days or without the compliance-mode cooling-off period', () => {
    const withLock = (minRetentionDays: number, changeableForDays: number): EnvironmentConfig => ({ ...production, backup: { ...production.backup, vaultLock: { minRetentionDays, changeableForDays } } });
    assert.throws(() => { validateEnvironmentConfig(withLock(6, 3)); }, /at least 7/);
    assert.throws(() => { validateEnvironmentConfig(withLock(7, 0)); }, /compliance mode/);
  });

  it('rejects a backup retention shorter than the vault lock\'s minimum (every job would fail)', () => {
    assert.throws(
      () => { validateEnvironmentConfig({ ...production, backup: { ...production.backup, vaultLock: { minRetentionDays: 14, changeableForDays: 3 } } }); },
      /refuse every backup/,
    );
  });

  it('rejects a cross-region PITR key outside the copy region', () => {
    const key = `arn:aws:kms:${production.region}:${production.account}:key/00000000-0000-4000-8000-000000000000`;
    assert.throws(
      () => { validateEnvironmentConfig({ ...production, database: { ...production.database, crossRegionPitrKmsKeyArn: key } }); },
      /crossRegionPitrKmsKeyArn must be a key ARN in us-west-2/,
    );
  });

  it('keeps the 7-day backup retention the architecture promises in every environment', () => {
    for (const config of Object.values(environments)) {
      assert.equal(config.database.backupRetentionDays, 7, config.name);
      assert.equal(config.backup.retentionDays, 7, config.name);
    }
  });
});
