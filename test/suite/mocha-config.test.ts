// The suite's own configuration: a stray `.only` must fail CI rather than quietly shrink it to one test.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';

const root = path.resolve(import.meta.dirname, '..', '..');

/** Every .mocharc.* in the repository outside node_modules. */
function mochaConfigs(dir = root): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.name === 'node_modules' || entry.name === '.git' || entry.name === 'dist') return [];
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return mochaConfigs(full);
    return /^\.mocharc\.(json|jsonc|js|cjs|mjs|ya?ml)$/.test(entry.name) ? [full] : [];
  });
}

/** The configs package.json scripts run mocha with (`--config x`, or the default .mocharc.json). */
function configsRunByScripts(): string[] {
  const { scripts } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  return Object.values(scripts)
    .flatMap((script) => script.split('&&'))
    .filter((command) => /\bmocha\b/.test(command))
    .map((command) => path.join(root, /--config[= ](\S+)/.exec(command)?.[1] ?? '.mocharc.json'));
}

describe('mocha configuration', () => {
  const configs = mochaConfigs();

  it('every configuration the scripts use exists and is a .mocharc.json', () => {
    const used = configsRunByScripts();
    expect(used, 'npm test runs mocha').to.include(path.join(root, '.mocharc.json'));
    expect(used.filter((file) => !configs.includes(file)), 'configs named by scripts but not found').to.deep.equal([]);
    expect(configs.filter((file) => !file.endsWith('.json')), 'JSON configs only, so this test can read them').to.deep.equal([]);
  });

  it('every configuration forbids .only', () => {
    const lax = configs.filter((file) => (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>)['forbid-only'] !== true);
    expect(lax.map((file) => path.relative(root, file))).to.deep.equal([]);
  });

  it('a spec with it.only fails the run under each configuration', function () {
    this.timeout(120_000);
    const dir = mkdtempSync(path.join(tmpdir(), 'forbid-only-'));
    try {
      const spec = path.join(dir, 'only.test.ts');
      writeFileSync(spec, "it.only('runs alone', () => undefined);\nit('is skipped', () => undefined);\n");
      for (const file of configs) {
        // The real configuration with this spec in place of its own (a spec on the command line would be added to it).
        const config = { ...(JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>), spec: [spec], ignore: [] };
        const copy = path.join(dir, 'mocharc.json');
        writeFileSync(copy, JSON.stringify(config));
        const run = spawnSync(process.execPath, [path.join(root, 'node_modules/mocha/bin/mocha.js'), '--config', copy], { cwd: root, encoding: 'utf8' });
        expect(run.status, `${path.relative(root, file)}: exit status`).to.not.equal(0);
        expect(`${run.stdout}${run.stderr}`, path.relative(root, file)).to.match(/\.only` forbidden/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
