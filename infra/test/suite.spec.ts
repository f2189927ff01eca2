/**
 * The suite's own shape. `npm test` runs one entry point (all.test.ts) so the specs share one synthesis: a spec
 * it does not import never runs. And node:test has no forbid-only: `it.only` is ignored under `--test` (as
 * `npm test` runs it) but narrows a run started without it, so a stray `.only` is refused here instead.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

const dir = import.meta.dirname;
const sources = readdirSync(dir).filter((f) => f.endsWith('.ts'));

describe('the infrastructure test suite', () => {
  it('runs every spec file: all.test.ts imports each one', () => {
    const entry = readFileSync(`${dir}/all.test.ts`, 'utf8');
    const imported = [...entry.matchAll(/^import '\.\/([\w-]+)\.spec\.js';$/gm)].map((m) => `${m[1]!}.spec.ts`);
    assert.deepEqual(imported.sort(), sources.filter((f) => f.endsWith('.spec.ts')).sort());
  });

  it('has no .only, which would narrow a run to one test', () => {
    const narrowed = sources.filter((f) => /\b(?:describe|suite|it|test)\.only\s*\(|\{\s*only:\s*true/.test(readFileSync(`${dir}/${f}`, 'utf8')));
    assert.deepEqual(narrowed, []);
  });
});
