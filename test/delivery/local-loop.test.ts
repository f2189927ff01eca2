// The local loop on kind: skaffold.yaml, k8s/kind-config.yaml and the dev dependencies in k8s/dev/.
// No Docker, kind or skaffold here, so this proves what can be proven without them:
// - skaffold.yaml parses, uses the current skaffold/v4beta* schema, references only files that exist, deploys the
//   dev dependencies before the chart, and the values it passes to helm render and pass the chart's key checks
//   (with concrete values for skaffold's IMAGE_REPO_/IMAGE_TAG_ templates), with and without the rollouts profile;
// - the kind config parses with the port mappings and node label ingress-nginx's kind manifest expects;
// - the dev manifests validate against kubernetes-models and satisfy the restricted Pod Security Standard, and the
//   real kubectl accepts them with `kubectl apply --dry-run=client` (see the comment on that test for how).
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { parseAllDocuments } from 'yaml';
import { k8sTool } from '../../scripts/k8s-tools.js';
import { describe as name, parseManifests, renderChart, validateObject } from '../chart/render.js';
import type { K8sObject } from '../chart/render.js';
import { asArr, asObj, asObjArr, str, kubeconfigFor, readManifests, readText, readYaml, repoPath, startStubApiServer } from './support.js';
import type { Obj } from './support.js';

const run = promisify(execFile);

const skaffoldDocs = parseAllDocuments(readText('skaffold.yaml')).map((d) => {
  if (d.errors.length > 0) throw new Error(d.errors.map((e) => e.message).join('; '));
  return asObj(d.toJS());
});
const configNamed = (n: string): Obj => {
  const c = skaffoldDocs.find((d) => asObj(d.metadata).name === n);
  if (!c) throw new Error(`no skaffold config ${n}`);
  return c;
};
const devDir = repoPath('k8s', 'dev');
const devFiles = readdirSync(devDir).filter((f) => f.endsWith('.yaml')).sort();
const devObjects: K8sObject[] = devFiles.flatMap((f) => readManifests(`k8s/dev/${f}`));
const release = (): Obj => asObjArr(asObj(asObj(configNamed('users-service').deploy).helm).releases)[0]!;

/** skaffold's setValueTemplates, with the template variables it would provide for a local build filled in. */
function concreteValues(templates: Obj): Record<string, string> {
  const vars: Record<string, string> = { IMAGE_REPO_users_service: 'users-service', IMAGE_TAG_users_service: 'b5b5f7e-dirty' };
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(templates)) {
    out[k] = String(v).replace(/\{\{\s*\.(\w+)\s*\}\}/g, (_, variable: string) => {
      const value = vars[variable];
      if (value === undefined) throw new Error(`unknown template variable ${variable}`);
      return value;
    });
  }
  return out;
}

const podSpecs = (objs: K8sObject[]): { owner: string; spec: Obj }[] =>
  objs
    .filter((o) => ['Deployment', 'StatefulSet', 'Rollout', 'Job'].includes(o.kind))
    .map((o) => ({ owner: name(o), spec: asObj(asObj(asObj(o.spec).template).spec) }));

/** The restricted Pod Security Standard's container and pod rules that a manifest can violate. */
function restrictedViolations(objs: K8sObject[]): string[] {
  const out: string[] = [];
  for (const { owner, spec } of podSpecs(objs)) {
    const podSc = asObj(spec.securityContext);
    if (spec.hostNetwork === true || spec.hostPID === true || spec.hostIPC === true) out.push(`${owner}: host namespaces`);
    for (const v of asObjArr(spec.volumes)) if (v.hostPath !== undefined) out.push(`${owner}: hostPath volume`);
    for (const c of [...asObjArr(spec.containers), ...asObjArr(spec.initContainers)]) {
      const sc = asObj(c.securityContext);
      const where = `${owner}/${String(c.name)}`;
      if ((sc.runAsNonRoot ?? podSc.runAsNonRoot) !== true) out.push(`${where}: runAsNonRoot`);
      if (Number(sc.runAsUser ?? podSc.runAsUser ?? 1) === 0) out.push(`${where}: runAsUser 0`);
      if (sc.allowPrivilegeEscalation !== false) out.push(`${where}: allowPrivilegeEscalation`);
      if (sc.privileged === true) out.push(`${where}: privileged`);
      if (JSON.stringify(asObj(sc.capabilities).drop) !== '["ALL"]') out.push(`${where}: drop ALL`);
      if (asArr(asObj(sc.capabilities).add).some((cap) => cap !== 'NET_BIND_SERVICE')) out.push(`${where}: capabilities.add`);
      if (!['RuntimeDefault', 'Localhost'].includes(String(asObj(sc.seccompProfile ?? podSc.seccompProfile).type))) out.push(`${where}: seccomp`);
      for (const p of asObjArr(c.ports)) if (p.hostPort !== undefined) out.push(`${where}: hostPort`);
    }
  }
  return out;
}

describe('local loop (skaffold.yaml, k8s/)', function () {
  this.timeout(60_000);

  describe('skaffold.yaml', () => {
    it('parses; every config uses the current skaffold/v4beta* schema', () => {
      expect(skaffoldDocs.map((d) => asObj(d.metadata).name)).to.deep.equal(['dev-deps', 'users-service']);
      for (const d of skaffoldDocs) {
        expect(d.apiVersion).to.match(/^skaffold\/v4beta\d+$/);
        expect(Number(/v4beta(\d+)$/.exec(String(d.apiVersion))![1])).to.be.at.least(11);
        expect(d.kind).to.equal('Config');
      }
      expect(new Set(skaffoldDocs.map((d) => d.apiVersion)).size, 'one schema version').to.equal(1);
    });

    it('the dev dependencies are their own config, before the chart (skaffold runs helm before kubectl inside one config)', () => {
      const deps = configNamed('dev-deps');
      const app = configNamed('users-service');
      expect(skaffoldDocs.indexOf(deps)).to.be.lessThan(skaffoldDocs.indexOf(app));
      expect(asObj(deps.deploy)).to.have.property('kubectl');
      expect(asObj(deps.deploy)).to.not.have.property('helm');
      expect(asObj(app.deploy)).to.have.property('helm');
      expect(asObj(app.deploy)).to.not.have.property('kubectl');
      expect(asArr(asObj(deps.manifests).rawYaml)).to.deep.equal(['k8s/dev/*.yaml']);
      // The deploy hook waits for the database before helm runs the migration Job.
      const hook = asObjArr(asObj(asObj(asObj(deps.deploy).kubectl).hooks).after)[0]!;
      const command = asArr(asObj(hook.host).command).join(' ');
      expect(command).to.include('rollout status statefulset/postgres');
      expect(command).to.include('rollout status deployment/redis');
      expect(command).to.include('$SKAFFOLD_KUBE_CONTEXT');
      expect(devObjects.some((o) => o.kind === 'StatefulSet' && o.metadata.name === 'postgres')).to.equal(true);
      expect(devObjects.some((o) => o.kind === 'Deployment' && o.metadata.name === 'redis')).to.equal(true);
    });

    it('builds users-service from the Dockerfile locally, never pushes; both configs target the kind context', () => {
      const build = asObj(configNamed('users-service').build);
      expect(asObj(build.local).push).to.equal(false);
      expect(asObj(build.local).useBuildkit, 'the Dockerfile uses RUN --mount').to.equal(true);
      const artifacts = asObjArr(build.artifacts);
      expect(artifacts.map((a) => a.image)).to.deep.equal(['users-service']);
      const dockerfile = String(asObj(artifacts[0]!.docker).dockerfile);
      expect(existsSync(repoPath(str(artifacts[0]!.context, '.'), dockerfile))).to.equal(true);
      for (const d of skaffoldDocs) expect(asObj(d.deploy).kubeContext).to.equal('kind-users-service');
      expect(readYaml('k8s/kind-config.yaml')).to.have.property('name', 'users-service');
    });

    it('every file, glob and chart it references exists', () => {
      for (const pattern of asArr(asObj(configNamed('dev-deps').manifests).rawYaml).map(String)) {
        const dir = repoPath(path.dirname(pattern));
        const re = new RegExp(`^${path.basename(pattern).replace(/\./g, '\\.').replace(/\*/g, '[^/]*')}$`);
        expect(readdirSync(dir).filter((f) => re.test(f)), pattern).to.have.length.at.least(1);
      }
      const r = release();
      expect(existsSync(repoPath(String(r.chartPath), 'Chart.yaml'))).to.equal(true);
      for (const f of asArr(r.valuesFiles).map(String)) expect(existsSync(repoPath(f)), f).to.equal(true);
    });

    it('the helm release: chart, dev values, image from the build, namespace users-service-dev; port-forward 8080', () => {
      const r = release();
      expect(r).to.include({ name: 'users-service', chartPath: 'chart/users-service', namespace: 'users-service-dev' });
      expect(r.valuesFiles).to.deep.equal(['chart/users-service/env/dev.yaml']);
      expect(r.setValueTemplates).to.deep.equal({
        'image.repository': '{{.IMAGE_REPO_users_service}}',
        'image.tag': '{{.IMAGE_TAG_users_service}}',
      });
      const forwards = asObjArr(configNamed('users-service').portForward);
      expect(forwards).to.deep.equal([{ resourceType: 'service', resourceName: 'users-service', namespace: 'users-service-dev', port: 80, localPort: 8080 }]);
    });

    it('the rollouts profile flips the one documented switch, rollout.enabled (the smoke test gates promotion without Prometheus)', () => {
      const profiles = asObjArr(configNamed('users-service').profiles);
      expect(profiles.map((p) => p.name)).to.deep.equal(['rollouts']);
      expect(profiles[0]!.patches).to.deep.equal([{ op: 'add', path: '/deploy/helm/releases/0/setValues', value: { 'rollout.enabled': true } }]);
    });

    for (const profile of ['default', 'rollouts'] as const) {
      it(`${profile}: the values skaffold passes render with helm and pass the chart's key checks`, async () => {
        const r = release();
        const set = concreteValues(asObj(r.setValueTemplates));
        if (profile === 'rollouts') {
          const patch = asObjArr(asObjArr(configNamed('users-service').profiles)[0]!.patches)[0]!;
          for (const [k, v] of Object.entries(asObj(patch.value))) set[k] = String(v);
        }
        const objs = await renderChart(asArr(r.valuesFiles).map((f) => repoPath(String(f))), set, {
          release: String(r.name),
          namespace: String(r.namespace),
        });
        const errors: string[] = [];
        for (const o of objs) for (const e of await validateObject(o)) errors.push(`${name(o)}: ${e}`);
        expect(errors).to.deep.equal([]);
        const workloadKind = profile === 'rollouts' ? 'Rollout' : 'Deployment';
        const workload = objs.filter((o) => o.kind === workloadKind);
        expect(workload).to.have.length(1);
        expect(objs.some((o) => o.kind === (profile === 'rollouts' ? 'Deployment' : 'Rollout'))).to.equal(false);
        expect(objs.some((o) => o.kind === 'ServiceMonitor' || o.kind === 'HorizontalPodAutoscaler')).to.equal(false);
        // Rollout mode: promotion gated by the smoke test only (no Prometheus on kind).
        const templates = objs.filter((o) => o.kind === 'AnalysisTemplate');
        expect(templates.map((t) => asObjArr(asObj(t.spec).metrics).map((m) => m.name))).to.deep.equal(profile === 'rollouts' ? [['smoke']] : []);
        // The image skaffold built, in the app and in the migration Job.
        const specs = podSpecs(objs);
        expect(specs.map((s) => s.owner).sort()).to.deep.equal([`Job/users-service-migrations`, `${workloadKind}/users-service`].sort());
        for (const { spec } of specs) for (const c of asObjArr(spec.containers)) expect(c.image).to.equal('users-service:b5b5f7e-dirty');
        expect(restrictedViolations(objs)).to.deep.equal([]);
        // DATABASE_URL from the dev Secret (name and key as k8s/dev creates them), Redis from the dev Service.
        const secret = devObjects.find((o) => o.kind === 'Secret')!;
        for (const { owner, spec } of specs) {
          const env = asObjArr(asObjArr(spec.containers)[0]!.env).find((e) => e.name === 'DATABASE_URL');
          const ref = asObj(asObj(env?.valueFrom).secretKeyRef);
          expect(ref, owner).to.deep.include({ name: secret.metadata.name, key: 'DATABASE_URL' });
          expect(asObj(secret.stringData), owner).to.have.property(String(ref.key));
        }
        const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('users-service-config-'));
        expect(asObj(cm?.data).REDIS_URL).to.equal('redis://redis:6379');
        // The Service the port-forward targets exists and exposes port 80 -> http.
        const svc = objs.find((o) => o.kind === 'Service' && o.metadata.name === 'users-service');
        expect(asObjArr(asObj(svc?.spec).ports).map((p) => [p.port, p.targetPort])).to.deep.equal([[80, 'http']]);
      });
    }
  });

  describe('k8s/kind-config.yaml', () => {
    it('one control-plane node, ports 80/443 mapped to the host, labelled ingress-ready=true', () => {
      const cfg = asObj(readYaml('k8s/kind-config.yaml'));
      expect(cfg).to.include({ kind: 'Cluster', apiVersion: 'kind.x-k8s.io/v1alpha4', name: 'users-service' });
      const nodes = asObjArr(cfg.nodes);
      expect(nodes).to.have.length(1);
      expect(nodes[0]!.role).to.equal('control-plane');
      expect(asObj(nodes[0]!.labels)).to.deep.equal({ 'ingress-ready': 'true' });
      const mappings = asObjArr(nodes[0]!.extraPortMappings).map((m) => [m.containerPort, m.hostPort, m.protocol]);
      expect(mappings).to.deep.equal([
        [80, 80, 'TCP'],
        [443, 443, 'TCP'],
      ]);
    });
  });

  describe('k8s/dev (dev dependencies)', () => {
    it('namespace, Secret users-service-db, PostgreSQL and Redis with their Services, all in users-service-dev', () => {
      expect(devObjects.map((o) => `${o.kind}/${o.metadata.name}`)).to.deep.equal([
        'Namespace/users-service-dev',
        'Secret/users-service-db',
        'Service/postgres',
        'StatefulSet/postgres',
        'Service/redis',
        'Deployment/redis',
      ]);
      for (const o of devObjects.filter((x) => x.kind !== 'Namespace')) expect(o.metadata.namespace, name(o)).to.equal('users-service-dev');
      const ns = devObjects[0]!;
      expect(ns.metadata.labels?.['pod-security.kubernetes.io/enforce']).to.equal('restricted');
    });

    it('every object validates against the Kubernetes schemas (kubernetes-models, strict)', async () => {
      const errors: string[] = [];
      for (const o of devObjects) for (const e of await validateObject(o)) errors.push(`${name(o)}: ${e}`);
      expect(errors).to.deep.equal([]);
    });

    it('pods satisfy the restricted Pod Security Standard; images pinned (no latest, no bare major)', () => {
      expect(restrictedViolations(devObjects)).to.deep.equal([]);
      const images = podSpecs(devObjects).flatMap(({ spec }) => asObjArr(spec.containers).map((c) => String(c.image)));
      expect(images).to.have.length(2);
      expect(images.find((i) => i.includes('/postgres:'))).to.match(/^docker\.io\/library\/postgres:16\.\d+(-[a-z]+)?$/);
      expect(images.find((i) => i.includes('/redis:'))).to.match(/^docker\.io\/library\/redis:7\.\d+\.\d+(-[a-z]+)?$/);
    });

    it('PostgreSQL writes only to emptyDirs (PGDATA, socket dir, /tmp) under a read-only root filesystem, as uid 999', () => {
      const sts = devObjects.find((o) => o.kind === 'StatefulSet')!;
      const spec = asObj(asObj(asObj(sts.spec).template).spec);
      expect(asObj(spec.securityContext)).to.include({ runAsUser: 999, runAsGroup: 999, fsGroup: 999 });
      const ctr = asObjArr(spec.containers)[0]!;
      expect(asObj(ctr.securityContext).readOnlyRootFilesystem).to.equal(true);
      const pgdata = String(asObjArr(ctr.env).find((e) => e.name === 'PGDATA')?.value);
      const volumes = new Map(asObjArr(spec.volumes).map((v) => [String(v.name), v]));
      const mounts = asObjArr(ctr.volumeMounts).map((m) => ({ path: String(m.mountPath), volume: volumes.get(String(m.name)) }));
      for (const dir of [pgdata, '/var/run/postgresql', '/tmp']) {
        const m = mounts.find((x) => dir === x.path || dir.startsWith(`${x.path}/`));
        expect(m, dir).to.not.equal(undefined);
        expect(m!.volume, `${dir} is an emptyDir`).to.have.property('emptyDir');
      }
      expect(pgdata, 'PGDATA is a subdirectory of the mount (initdb needs an empty, owned directory)').to.not.equal('/var/lib/postgresql/data');
    });

    it('the Secret is labelled dev-only and its DATABASE_URL matches the PostgreSQL credentials and Service', () => {
      const secret = devObjects.find((o) => o.kind === 'Secret')!;
      expect(secret.metadata.labels?.['users-service/dev-only']).to.equal('true');
      const data = asObj(secret.stringData) as Record<string, string>;
      const url = new URL(data.DATABASE_URL!);
      expect(url.protocol).to.equal('postgres:');
      expect(url.username).to.equal(data.POSTGRES_USER);
      expect(decodeURIComponent(url.password)).to.equal(data.POSTGRES_PASSWORD);
      expect(url.pathname).to.equal(`/${data.POSTGRES_DB!}`);
      const svc = devObjects.find((o) => o.kind === 'Service' && o.metadata.name === url.hostname);
      expect(svc, `Service ${url.hostname}`).to.not.equal(undefined);
      expect(asObjArr(asObj(svc!.spec).ports).map((p) => String(p.port))).to.include(url.port);
      const env = readYaml('chart/users-service/env/dev.yaml') as { database: { existingSecret: string }; redis: { url: string } };
      expect(env.database.existingSecret).to.equal(secret.metadata.name);
      const redis = new URL(env.redis.url);
      const redisSvc = devObjects.find((o) => o.kind === 'Service' && o.metadata.name === redis.hostname);
      expect(asObjArr(asObj(redisSvc?.spec).ports).map((p) => String(p.port))).to.include(redis.port);
    });

    it('Services select their pods by the pods\' labels and target named container ports', () => {
      for (const svc of devObjects.filter((o) => o.kind === 'Service')) {
        const sel = asObj(asObj(svc.spec).selector);
        const owner = devObjects.find(
          (o) => ['StatefulSet', 'Deployment'].includes(o.kind) &&
            Object.entries(sel).every(([k, v]) => asObj(asObj(asObj(asObj(o.spec).template).metadata).labels)[k] === v),
        );
        expect(owner, name(svc)).to.not.equal(undefined);
        const ports = asObjArr(asObjArr(asObj(asObj(asObj(owner!.spec).template).spec).containers)[0]!.ports).map((p) => p.name);
        for (const p of asObjArr(asObj(svc.spec).ports)) expect(ports, name(svc)).to.include(p.targetPort);
      }
    });

    // `kubectl apply --dry-run=client` is not offline: even in client dry-run kubectl asks the API server for
    // discovery (to map each kind to its REST resource) and GETs every object (to choose create or patch); with no
    // server it fails with "couldn't get current server API group list: connection refused", whatever the
    // kubeconfig. `kubectl create --dry-run=client` needs the same discovery. So the test starts a stub API server
    // that answers discovery for exactly the kinds in k8s/dev and 404 for every object, and runs the real kubectl
    // against it. --validate=false because the stub serves no OpenAPI document; schema validation is the
    // kubernetes-models test above. What this proves: kubectl parses every file, knows every kind, and would
    // create each object; what it cannot: server-side admission (Pod Security, quotas), which needs the kind cluster.
    it('kubectl apply --dry-run=client -f k8s/dev/ succeeds with the real kubectl (against a stub API server)', async () => {
      const kubectl = await k8sTool('kubectl');
      const server = await startStubApiServer([
        { group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces', namespaced: false },
        { group: '', version: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true },
        { group: '', version: 'v1', kind: 'Service', plural: 'services', namespaced: true },
        { group: 'apps', version: 'v1', kind: 'StatefulSet', plural: 'statefulsets', namespaced: true },
        { group: 'apps', version: 'v1', kind: 'Deployment', plural: 'deployments', namespaced: true },
      ]);
      const dir = mkdtempSync(path.join(tmpdir(), 'kubectl-dry-run-'));
      try {
        const kubeconfig = path.join(dir, 'kubeconfig');
        writeFileSync(kubeconfig, kubeconfigFor(server.url));
        const { stdout } = await run(kubectl, ['--kubeconfig', kubeconfig, 'apply', '--dry-run=client', '--validate=false', '-f', devDir], {
          env: { ...process.env, HOME: dir, KUBECACHEDIR: path.join(dir, 'cache') },
        });
        const lines = stdout.trim().split('\n');
        expect(lines).to.deep.equal([
          'namespace/users-service-dev created (dry run)',
          'secret/users-service-db created (dry run)',
          'service/postgres created (dry run)',
          'statefulset.apps/postgres created (dry run)',
          'service/redis created (dry run)',
          'deployment.apps/redis created (dry run)',
        ]);
        expect(server.requests.filter((r) => !r.startsWith('GET ')), 'client dry-run writes nothing').to.deep.equal([]);
        // And the same files as kubectl would print them back parse into the same objects.
        const printed = await run(kubectl, ['--kubeconfig', kubeconfig, 'apply', '--dry-run=client', '--validate=false', '-o', 'yaml', '-f', devDir], {
          env: { ...process.env, HOME: dir, KUBECACHEDIR: path.join(dir, 'cache') },
        });
        const items = asObjArr(asObj(parseManifests(printed.stdout)[0]).items);
        expect(items.map((o) => `${String(o.kind)}/${String(asObj(o.metadata).name)}`)).to.deep.equal(devObjects.map((o) => `${o.kind}/${o.metadata.name}`));
      } finally {
        rmSync(dir, { recursive: true, force: true });
        await server.close();
      }
    });
  });
});
