import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { repoRoot } from '../../scripts/k8s-tools.js';
import { docker } from '../../scripts/image/docker.js';
import { chart, IMAGE, imageFiles, imageLabel, imageSize, installedPackages, type InstalledPackage } from './support.js';

const MB = 1_000_000;
/** Budgets (decimal MB, as `docker images` prints): the whole image, and what the app adds on top of its base. */
const IMAGE_BUDGET_MB = 320;
// 44 MB before tracing; the OpenTelemetry SDK and its OTLP exporters (which bring the log and metric SDKs and
// the semantic conventions) add about 19 MB. A jump past this budget is a dependency to look at.
const APP_BUDGET_MB = 70;

interface LockEntry {
  version?: string;
  dev?: boolean;
}

describe('what the image holds', () => {
  let files: string[];
  let packages: InstalledPackage[];
  before(() => {
    files = imageFiles();
    packages = installedPackages();
  });

  it('has in /app only dist/, the production node_modules and package.json', () => {
    const top = new Set(files.filter((f) => f.startsWith('app/')).map((f) => f.split('/')[1]));
    expect([...top].sort()).to.deep.equal(['dist', 'node_modules', 'package.json']);
  });

  it('holds no dev dependency: every installed package is a production one in the lockfile', () => {
    const lock = (JSON.parse(readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> }).packages;
    expect(packages.length).to.be.greaterThan(50);
    const notProduction = packages.filter((p) => lock[p.path]?.dev === true);
    const unknown = packages.filter((p) => lock[p.path]?.version !== p.version);
    expect(notProduction.map((p) => p.path)).to.deep.equal([]);
    expect(unknown.map((p) => `${p.path}@${p.version}`)).to.deep.equal([]);
    // and the build and test tools are absent by name (a production dependency may still pull in @types/*)
    for (const tool of ['typescript', 'tsx', 'mocha', 'eslint', '@cyclonedx/cyclonedx-npm']) expect(files, tool).to.not.include(`app/node_modules/${tool}`);
  });

  it('holds no TypeScript source, test, bench, infra or chart file', () => {
    const app = files.filter((f) => f.startsWith('app/') && !f.startsWith('app/node_modules/'));
    expect(app.filter((f) => /\.(c|m)?ts$/.test(f) && !f.endsWith('.d.ts'))).to.deep.equal([]);
    expect(app.filter((f) => /^app\/(dist\/)?(test|bench|infra|chart|scripts|service\/.*\.test\.js)(\/|$)/.test(f))).to.deep.equal([]);
    expect(app.filter((f) => f.includes('.test.') || f.includes('.spec.'))).to.deep.equal([]);
  });

  it('holds no .npmrc, npm cache, build secret or private key anywhere', () => {
    expect(files.filter((f) => /(^|\/)\.npmrc$/.test(f))).to.deep.equal([]);
    expect(files.filter((f) => /^root\/\.npm(\/|$)/.test(f) || /^run\/secrets\//.test(f))).to.deep.equal([]);
    expect(files.filter((f) => /\.(key|p12|pfx)$|(^|\/)id_(rsa|ed25519|ecdsa)$/.test(f))).to.deep.equal([]);
    const pems = files.filter((f) => f.startsWith('app/') && f.endsWith('.pem'));
    expect(pems, 'only the public RDS CA bundle').to.deep.equal(['app/dist/certs/aws-rds-ca.pem']);
    const script = `const fs=require('node:fs');const t=fs.readFileSync(process.argv[1],'utf8');process.stdout.write(String(/PRIVATE KEY/.test(t)))`;
    expect(docker(['run', '--rm', '--network', 'none', IMAGE, '-e', script, '/app/dist/certs/aws-rds-ca.pem'])).to.equal('false');
  });

  it('runs as the chart\'s numeric non-root user', () => {
    const user = docker(['image', 'inspect', '--format', '{{.Config.User}}', IMAGE]).trim();
    expect(user).to.equal(`${chart.securityContext.runAsUser}:${chart.securityContext.runAsGroup}`);
    const uid = docker(['run', '--rm', '--network', 'none', IMAGE, '-e', 'process.stdout.write(String(process.getuid()))']);
    expect(Number(uid)).to.equal(chart.securityContext.runAsUser).and.not.equal(0);
  });

  it('runs the pinned Node.js, the one these tests run on', () => {
    const pinned = readFileSync(path.join(repoRoot, '.nvmrc'), 'utf8').trim();
    const inside = docker(['run', '--rm', '--network', 'none', IMAGE, '--version']).trim();
    expect(inside).to.equal(`v${pinned}`);
    expect(inside).to.equal(process.version);
  });

  it(`stays within its size budgets (${IMAGE_BUDGET_MB} MB in all, ${APP_BUDGET_MB} MB added to the base)`, () => {
    const base = imageLabel(IMAGE, 'org.opencontainers.image.base.name');
    const total = imageSize(IMAGE);
    const added = total - imageSize(base);
    console.log(`      image ${IMAGE}: ${(total / MB).toFixed(1)} MB; base ${base}: ${((total - added) / MB).toFixed(1)} MB; app adds ${(added / MB).toFixed(1)} MB`);
    expect(total / MB).to.be.below(IMAGE_BUDGET_MB);
    expect(added / MB).to.be.above(0).and.below(APP_BUDGET_MB);
  });
});
