// Static checks of the Dockerfile and .dockerignore (no Docker engine here): the properties the chart and
// the cluster rely on are asserted from the parsed file, so a change that breaks them fails CI.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { DockerfileParser, JSONInstruction } from 'dockerfile-ast';
import type { Dockerfile, From, Instruction } from 'dockerfile-ast';
import { repoRoot } from '../../scripts/k8s-tools.js';

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

  it('pins every base image by tag or digest (never latest, never untagged)', () => {
    const stageNames = new Set<string>();
    for (const from of froms) {
      const image = from.getImageName();
      if (image !== null && stageNames.has(image)) {
        // FROM <earlier stage>
      } else {
        expect(from.getImage(), 'registry image').to.be.a('string');
        const tag = from.getImageTag();
        const digest = from.getImageDigest();
        expect(tag !== null || digest !== null, `${from.getImage() ?? ''} has a tag or digest`).to.equal(true);
        expect(tag, 'tag').to.not.equal('latest');
        expect(tag ?? '', 'tag carries a full Node version').to.match(/^20\.\d+\.\d+-/);
      }
      const stage = from.getBuildStage();
      if (stage !== null) stageNames.add(stage);
    }
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
