// Static checks of the Dockerfile and .dockerignore (no Docker engine here): the properties the chart and
// the cluster rely on are asserted from the parsed file, so a change that breaks them fails CI.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { DockerfileParser, JSONInstruction } from 'dockerfile-ast';
import type { Dockerfile, From, Instruction } from 'dockerfile-ast';
import { repoRoot } from '../../scripts/k8s-tools.js';
import { BASE_IMAGE_ARG, pinnedBaseImage } from '../../scripts/image/dockerfile.js';

const dockerfile: Dockerfile = DockerfileParser.parse(readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8'));
const instructions = dockerfile.getInstructions();
const froms = dockerfile.getFROMs();
const finalFrom = froms.at(-1)!;
const finalStart = finalFrom.getRange().start.line;
const finalStage = instructions.filter((i) => i.getRange().start.line >= finalStart);

function keyword(i: Instruction): string {
  return i.getKeyword().toUpperCase();
}

function jsonArgs(i: Instruction): string[] | null {
  if (!(i instanceof JSONInstruction)) return null;
  const strings = i.getJSONStrings();
  return strings.length > 0 ? strings.map((s) => s.getJSONValue()) : null;
}

function last(kind: string): Instruction | undefined {
  return finalStage.filter((i) => keyword(i) === kind).at(-1);
}

describe('Dockerfile', () => {
  it('is multi-stage: a build stage, a production-deps stage and a runtime stage', () => {
    expect(froms.length).to.be.at.least(3);
    const stages = froms.map((f: From) => f.getBuildStage());
    expect(stages).to.include.members(['build', 'deps']);
    const runs = instructions.filter((i) => keyword(i) === 'RUN').map((i) => i.getArgumentsContent() ?? '');
    expect(runs.some((r) => /\bnpm ci\b/.test(r) && !r.includes('--omit=dev'))).to.equal(true, 'npm ci with dev deps');
    expect(runs.some((r) => r.includes('npm run build'))).to.equal(true, 'npm run build');
    expect(runs.some((r) => r.includes('npm ci --omit=dev'))).to.equal(true, 'production-only npm ci');
  });

  it('names its base once, in the NODE_IMAGE build argument, which defaults to the official image by tag and digest', () => {
    const pinned = pinnedBaseImage();
    expect(pinned.tagged).to.match(/^node:\d+\.\d+\.\d+-bookworm-slim$/);
    expect(pinned.digest).to.match(/^sha256:[0-9a-f]{64}$/);
    const stageNames = new Set<string>();
    for (const from of froms) {
      const image = from.getImageName() ?? '';
      if (!stageNames.has(image)) expect(from.getImage(), 'every FROM that is not an earlier stage').to.equal(`\${${BASE_IMAGE_ARG}}`);
      const stage = from.getBuildStage();
      if (stage !== null) stageNames.add(stage);
    }
    expect(instructions.filter((i) => keyword(i) === 'ARG' && (i.getArgumentsContent() ?? '').startsWith(`${BASE_IMAGE_ARG}=`))).to.have.length(1);
  });

  it('refuses a default that drops the digest or the exact version', () => {
    const text = readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
    const { ref, tagged } = pinnedBaseImage(text);
    expect(() => pinnedBaseImage(text.replace(ref, tagged))).to.throw(/tag.*digest|@sha256/);
    expect(() => pinnedBaseImage(text.replace(ref, ref.replace(/^node:\d+\.\d+\.\d+/, 'node:24')))).to.throw(/NODE_IMAGE/);
  });

  it('has no `# syntax=` line (the built-in frontend is enough; a syntax line pulls an image)', () => {
    expect(readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8')).to.not.match(/^#\s*syntax\s*=/im);
  });

  it('mounts the optional CA secret for npm ci only, and sets npm\'s cafile only when it is there', () => {
    const npmCi = instructions.filter((i) => keyword(i) === 'RUN' && /\bnpm ci\b/.test(i.getArgumentsContent() ?? ''));
    expect(npmCi).to.have.length(2);
    for (const run of npmCi) {
      const text = run.toString();
      expect(text).to.include('--mount=type=secret,id=ca');
      expect(text).to.include('if [ -f /run/secrets/ca ]; then export NPM_CONFIG_CAFILE=/run/secrets/ca; fi');
    }
    expect(finalStage.filter((i) => /secrets\/ca|cafile/i.test(i.getArgumentsContent() ?? ''))).to.deep.equal([]);
  });

  it('runtime stage copies only dist/, production node_modules and package.json, from the right stages', () => {
    const copies = finalStage.filter((i) => keyword(i) === 'COPY').map((i) => i.toString().replace(/^COPY\s+/i, ''));
    expect(copies).to.have.length(3);
    expect(copies.some((c) => c.includes('--from=deps') && c.includes('node_modules'))).to.equal(true);
    expect(copies.some((c) => c.includes('--from=build') && c.includes('dist'))).to.equal(true);
    expect(copies.some((c) => /^package\.json\b/.test(c))).to.equal(true);
    expect(finalStage.some((i) => keyword(i) === 'RUN'), 'no RUN in the runtime stage').to.equal(false);
  });

  it('runs as a numeric non-root UID:GID', () => {
    const user = last('USER')?.getArgumentsContent() ?? '';
    expect(user).to.match(/^\d+(:\d+)?$/);
    const [uid] = user.split(':');
    expect(Number(uid)).to.be.greaterThan(0);
    expect(user).to.equal('10001:10001');
  });

  it('starts node directly in exec form (no npm, no shell) and runs dist/service/main.js', () => {
    const entrypoint = last('ENTRYPOINT');
    const cmd = last('CMD');
    expect(entrypoint && jsonArgs(entrypoint), 'ENTRYPOINT exec form').to.deep.equal(['node']);
    expect(cmd && jsonArgs(cmd), 'CMD exec form').to.deep.equal(['dist/service/main.js']);
    for (const i of finalStage.filter((x) => ['ENTRYPOINT', 'CMD'].includes(keyword(x)))) {
      expect(i.getArgumentsContent() ?? '').to.not.match(/\bnpm\b|\bsh\b|\bbash\b/);
    }
  });

  it('sets NODE_ENV=production and documents the migration command', () => {
    const env = finalStage.filter((i) => keyword(i) === 'ENV').map((i) => i.getArgumentsContent() ?? '').join(' ');
    expect(env).to.match(/NODE_ENV=production/);
    const text = readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
    expect(text).to.include('dist/service/migrate.js');
  });

  it('exposes 8080, carries OCI labels and no HEALTHCHECK (Kubernetes probes do that)', () => {
    expect(last('EXPOSE')?.getArgumentsContent()).to.equal('8080');
    const labels = finalStage.filter((i) => keyword(i) === 'LABEL').map((i) => i.getArgumentsContent() ?? '').join(' ');
    for (const key of ['title', 'source', 'version', 'revision']) expect(labels).to.include(`org.opencontainers.image.${key}=`);
    expect(dockerfile.getHEALTHCHECKs()).to.have.length(0);
  });

  it('never ADDs (no remote URLs, no archives unpacked implicitly)', () => {
    const adds = instructions.filter((i) => keyword(i) === 'ADD');
    for (const add of adds) expect(add.getArgumentsContent() ?? '').to.not.match(/https?:\/\//);
    expect(adds).to.have.length(0);
  });
});

describe('.dockerignore', () => {
  const patterns = readFileSync(path.join(repoRoot, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));

  for (const required of ['node_modules', '.git', '.env', 'infra', 'test', 'dist', 'chart', '.cache', 'coverage']) {
    it(`excludes ${required}`, () => {
      expect(patterns.some((p) => p === required || p === `**/${required}`)).to.equal(true);
    });
  }

  it('keeps what the build stage copies (no pattern hides service/, migrations/, package*.json, tsconfig*)', () => {
    for (const needed of ['service', 'migrations', 'package.json', 'package-lock.json', 'tsconfig.json', 'scripts']) {
      expect(patterns, needed).to.not.include(needed);
    }
    expect(patterns.some((p) => p.startsWith('!'))).to.equal(false);
  });
});
