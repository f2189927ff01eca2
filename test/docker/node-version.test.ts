// One exact Node.js everywhere: what developers (.nvmrc), CI, package consumers (engines), the type
// definitions and the production image run on. .ci/run installs the .nvmrc version when the machine's differs.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { repoRoot } from '../../scripts/k8s-tools.js';
import { pinnedBaseImage } from '../../scripts/image/dockerfile.js';

const read = (file: string) => readFileSync(path.join(repoRoot, file), 'utf8');
const pinned = read('.nvmrc').trim();
const major = pinned.split('.')[0] ?? '';
const pkg = JSON.parse(read('package.json')) as { engines: { node: string }; devDependencies: Record<string, string> };

describe('the pinned Node.js version', () => {
  it('is one exact version of an LTS line (even major) in .nvmrc', () => {
    expect(pinned).to.match(/^\d+\.\d+\.\d+$/);
    expect(Number(major) % 2).to.equal(0);
    expect(Number(major)).to.be.at.least(24);
  });

  it('is the Node.js of the Dockerfile\'s base image', () => {
    expect(pinnedBaseImage().nodeVersion).to.equal(pinned);
  });

  it('is what package.json engines allows, from that version up to the next major', () => {
    expect(pkg.engines.node).to.equal(`>=${pinned} <${Number(major) + 1}`);
  });

  it('matches the major of @types/node', () => {
    expect(pkg.devDependencies['@types/node']).to.match(new RegExp(`^\\^${major}\\.`));
  });

  it('is what every CI job sets up', () => {
    type Step = { uses?: string; with?: Record<string, unknown> };
    const workflow = parse(read('.github/workflows/ci.yaml')) as { jobs: Record<string, { steps?: Step[] }> };
    const setups = Object.values(workflow.jobs).flatMap((job) => job.steps ?? []).filter((s) => s.uses?.startsWith('actions/setup-node@'));
    expect(setups.length).to.be.greaterThan(0);
    for (const step of setups) {
      const version = step.with?.['node-version-file'] === '.nvmrc' ? pinned : step.with?.['node-version'];
      expect(version).to.equal(pinned);
    }
  });
});
