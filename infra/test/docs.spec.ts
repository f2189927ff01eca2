/**
 * The disaster-recovery document states only what the code creates: what it
 * tells on-call to watch exists in the templates (and nothing created is left
 * out), and its Redis AUTH runbook makes Redis accept a token before storing it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ENVIRONMENTS, resources, synthesized, text } from './support.js';

const doc = readFileSync(new URL('../../docs/disaster-recovery.md', import.meta.url), 'utf8');

function section(heading: string): string {
  const start = doc.indexOf(heading);
  assert.ok(start >= 0, heading);
  const end = doc.indexOf('\n### ', start + heading.length);
  return doc.slice(start, end < 0 ? undefined : end);
}

/** Alarm and rule names without the users-service-<env>- prefix, node numbers as 00N. */
function createdNames(): Set<string> {
  const names = ENVIRONMENTS.flatMap((env) => {
    const t = synthesized().json(synthesized().built.environments[env].main);
    return [
      ...resources(t, 'AWS::CloudWatch::Alarm').map((a) => text(a.properties['AlarmName'])),
      ...resources(t, 'AWS::Events::Rule').map((r) => text(r.properties['Name'])),
    ].map((n) => n.replace(`users-service-${env}-`, '').replace(/-\d{3}-/, '-00N-'));
  });
  return new Set(names);
}

describe('docs/disaster-recovery.md', () => {
  it('lists under "What to watch" exactly the alarms and EventBridge rules the stacks create', () => {
    const rows = section('### 4.6 What to watch').split('\n').filter((line) => line.startsWith('| `'));
    const documented = new Set(rows.map((line) => /^\| `([^`]+)`/.exec(line)?.[1] ?? ''));
    assert.deepEqual([...documented].sort(), [...createdNames()].sort());
  });

  it('rotates the Redis AUTH token on Redis before storing it in Secrets Manager', () => {
    const runbook = section('### 4.4 Redis loss');
    const rotate = runbook.indexOf('--auth-token-update-strategy ROTATE');
    const store = runbook.indexOf('put-secret-value --secret-id users-service/$ENV/redis');
    const set = runbook.indexOf('--auth-token-update-strategy SET');
    assert.ok(rotate >= 0 && store >= 0 && set >= 0);
    assert.ok(rotate < store && store < set, 'ROTATE on Redis, then store, then SET');
  });
});
