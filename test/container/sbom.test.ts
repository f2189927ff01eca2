import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { repoRoot } from '../../scripts/k8s-tools.js';
import { installedPackages } from './support.js';

interface Component {
  group?: string;
  name: string;
  version: string;
  purl?: string;
}

describe('the CycloneDX SBOM (npm run sbom)', () => {
  let components: Component[];
  before(function () {
    this.timeout(120_000);
    execFileSync('npm', ['run', 'sbom', '--silent'], { cwd: repoRoot, stdio: 'inherit' });
    const bom = JSON.parse(readFileSync(path.join(repoRoot, 'dist/sbom.cdx.json'), 'utf8')) as { bomFormat: string; specVersion: string; components: Component[] };
    expect(bom.bomFormat).to.equal('CycloneDX');
    components = bom.components;
  });

  it('lists every package of the production image\'s node_modules, with its version', () => {
    const listed = new Set(components.map((c) => `${c.group ? `${c.group}/` : ''}${c.name}@${c.version}`));
    const installed = installedPackages();
    expect(installed.length).to.be.greaterThan(50);
    expect(installed.map((p) => `${p.name}@${p.version}`).filter((p) => !listed.has(p))).to.deep.equal([]);
  });

  it('lists no package that only the development tree has', () => {
    const lock = (JSON.parse(readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; dev?: boolean }> }).packages;
    const at = (key: string, entry: { version?: string }) => `${key.split('node_modules/').at(-1) ?? key}@${entry.version ?? ''}`;
    const production = new Set(Object.entries(lock).filter(([, e]) => e.dev !== true).map(([k, e]) => at(k, e)));
    const devOnly = new Set(Object.entries(lock).filter(([, e]) => e.dev === true).map(([k, e]) => at(k, e)).filter((p) => !production.has(p)));
    expect(devOnly.size).to.be.greaterThan(100);
    const listed = components.map((c) => `${c.group ? `${c.group}/` : ''}${c.name}@${c.version}`);
    expect(listed.filter((p) => devOnly.has(p))).to.deep.equal([]);
  });
});
