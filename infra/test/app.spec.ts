import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { environments, sharedConfig } from '../lib/config.js';
import { synthesized } from './support.js';

describe('the CDK application', () => {
  it('consists of the shared stack, a registry stack per replication region and, per environment, the primary stack and its backup-copy stack', () => {
    assert.deepEqual(
      synthesized().assembly.stacks.map((s) => s.stackName).sort(),
      [
        'UsersService-Production',
        'UsersService-Production-BackupCopy',
        'UsersService-Registry-us-west-2',
        'UsersService-Shared',
        'UsersService-Staging',
        'UsersService-Staging-BackupCopy',
      ],
    );
  });

  it('synthesizes offline: no context lookup is left for the CLI to resolve against AWS', () => {
    assert.equal(synthesized().assembly.manifest.missing, undefined);
  });

  it('pins every stack to an explicit account and region from the typed config', () => {
    const { built } = synthesized();
    assert.deepEqual([built.shared.account, built.shared.region], [sharedConfig.account, sharedConfig.region]);
    for (const config of Object.values(environments)) {
      const { main, backupCopy } = built.environments[config.name];
      assert.deepEqual([main.account, main.region], [config.account, config.region]);
      assert.deepEqual([backupCopy.account, backupCopy.region], [config.account, config.backup.copyRegion]);
    }
  });

  it('keeps staging and production apart: no stack of one environment references the other', () => {
    const { built, json } = synthesized();
    assert.ok(!JSON.stringify(json(built.environments.staging.main)).includes('production'));
    assert.ok(!JSON.stringify(json(built.environments.production.main)).includes('staging'));
  });
});
