import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Stack, Validations, type App } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { AwsSolutionsChecks } from 'cdk-nag';
import { buildApp } from '../lib/app.js';
import { synthesized } from './support.js';

interface Acknowledgment {
  readonly path: string;
  readonly id: string;
  readonly reason: string;
}

/** cdk-nag acknowledgments recorded through Validations.of(...).acknowledge(). */
function nagAcknowledgments(app: App): Acknowledgment[] {
  return app.node.findAll().flatMap((construct) =>
    construct.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) => Object.entries(m.data as Record<string, string>))
      .map(([id, reason]) => ({ path: construct.node.path, id: id.replace(/^annotation::/i, ''), reason }))
      .filter((a) => a.id.startsWith('AwsSolutions-')),
  );
}

function findings(app: App): string[] {
  return new AwsSolutionsChecks().validateScope(app).violations.flatMap((v) =>
    v.violatingResources.map((r) => `${v.severity} ${v.ruleName} at ${r.constructPath ?? r.resourceLogicalId ?? '?'}`),
  );
}

describe('cdk-nag AwsSolutions pack', () => {
  it('reports no unacknowledged error or warning on any stack', () => {
    assert.deepEqual(findings(synthesized().built.app), []);
  });

  it('gives every acknowledgment a written reason', () => {
    for (const a of nagAcknowledgments(synthesized().built.app)) {
      assert.ok(a.reason.trim().length >= 40, `${a.path} ${a.id}: "${a.reason}"`);
    }
  });

  it('acknowledges exactly these findings, and no others', () => {
    const acknowledged = nagAcknowledgments(synthesized().built.app).map((a) => `${a.path} ${a.id}`).sort();
    const backupPolicy = (name: string): string => `AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/${name}]`;
    const perEnvironment = (stack: string): string[] => [
      `${stack}/BackupRole ${backupPolicy('AWSBackupServiceRolePolicyForBackup')}`,
      `${stack}/BackupRole ${backupPolicy('AWSBackupServiceRolePolicyForRestores')}`,
      `${stack}/Database AwsSolutions-RDS11`,
      `${stack}/Redis AwsSolutions-AEC5`,
      `${stack}/RedisAuthToken AwsSolutions-SMG4`,
    ];
    const expected = [
      'UsersService-Shared/CiRole AwsSolutions-IAM5[Resource::*]',
      ...perEnvironment('UsersService-Production'),
      ...perEnvironment('UsersService-Staging'),
      // Staging only: single AZ, no deletion protection, one cache node (see config.ts).
      'UsersService-Staging/Database AwsSolutions-RDS10',
      'UsersService-Staging/Database AwsSolutions-RDS3',
      'UsersService-Staging/Redis AwsSolutions-AEC4',
    ].sort();
    assert.deepEqual(acknowledged, expected);
  });

  it('documents every acknowledged rule in the infra/README.md table', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const documented = new Set([...readme.matchAll(/^\| (AwsSolutions-[A-Z]+\d+)/gm)].map((m) => m[1]));
    const acknowledged = new Set(nagAcknowledgments(synthesized().built.app).map((a) => a.id.replace(/\[.*$/, '')));
    assert.deepEqual([...acknowledged].sort(), [...documented].sort());
  });

  it('still reports a finding in an added construct that is not compliant (the gate is live)', () => {
    const probed = buildApp();
    new secretsmanager.Secret(new Stack(probed.app, 'Probe', { env: { account: '111111111111', region: 'us-east-1' } }), 'NeverRotated');
    assert.ok(findings(probed.app).some((f) => f.includes('AwsSolutions-SMG4') && f.includes('Probe/NeverRotated')));
  });

  it('makes synthesis itself fail on an unacknowledged finding, as `cdk synth` in CI would', () => {
    const probed = buildApp();
    new secretsmanager.Secret(new Stack(probed.app, 'Probe', { env: { account: '111111111111', region: 'us-east-1' } }), 'NeverRotated');
    let report = '';
    assert.throws(
      () => probed.app.synth(),
      (error: unknown) => {
        // The exception names the report file; the finding itself is in the report.
        const path = /found in: (\S+\.json)/.exec(String(error))?.[1];
        report = path === undefined ? '' : readFileSync(path, 'utf8');
        return true;
      },
    );
    assert.match(report, /AwsSolutions-SMG4/);
  });
});
