// The Helm chart, proven offline: the real helm binary renders every combination that matters, every object is
// validated against its schema (custom resources included, unknown kinds and fields fail), and policy
// assertions run over the rendered output. Each combination is rendered once and cached.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import { chartDir, describe as name, helmFails, lintChart, renderChart, validateObject } from './render.js';
import { repoRoot } from '../../scripts/k8s-tools.js';
import type { K8sObject } from './render.js';

type Obj = Record<string, unknown>;
const asObj = (v: unknown): Obj => (v ?? {}) as Obj;
const asArr = (v: unknown): Obj[] => (Array.isArray(v) ? (v as Obj[]) : []);

interface Case {
  label: string;
  files: string[];
  set: Record<string, string>;
  /** What the values imply, for the assertions. */
  rollout: boolean;
  hpa: boolean;
  externalSecret: boolean;
  monitoring: boolean;
  maxReplicas: number;
  /** A DATABASE_URL source is configured (else: embedded dev DB, no migration Job). */
  hasDb: boolean;
  /** ingress.enabled: exactly one Ingress is rendered, else none. */
  ingress: boolean;
}

const esOn = {
  'externalSecret.enabled': 'true',
  'externalSecret.database.remoteKey': 'users-service/test/database',
  'externalSecret.serviceAccount.roleArn': 'arn:aws:iam::123456789012:role/users-service-test-secrets',
};
const esOff = { 'database.existingSecret': 'users-service-db' };

const cases: Case[] = [];
for (const rollout of [false, true]) {
  for (const hpa of [false, true]) {
    for (const externalSecret of [false, true]) {
      for (const monitoring of [false, true]) {
        const set: Record<string, string> = {
          'rollout.enabled': String(rollout),
          'autoscaling.enabled': String(hpa),
          'metrics.serviceMonitor.enabled': String(monitoring),
          'metrics.prometheusRule.enabled': String(monitoring),
          'metrics.dashboard.enabled': String(monitoring),
          'networkPolicy.enabled': String(monitoring),
          'ingress.enabled': 'true',
          'ingress.hosts[0]': 'users.test',
          ...(externalSecret ? esOn : esOff),
        };
        cases.push({
          label: `rollout=${rollout} hpa=${hpa} externalSecret=${externalSecret} monitoring=${monitoring}`,
          files: [],
          set,
          rollout,
          hpa,
          externalSecret,
          monitoring,
          maxReplicas: hpa ? 10 : 2,
          hasDb: true,
          ingress: true,
        });
      }
    }
  }
}
const envExpect = {
  dev: { rollout: false, hpa: false, externalSecret: false, monitoring: false, maxReplicas: 1 },
  staging: { rollout: true, hpa: true, externalSecret: true, monitoring: true, maxReplicas: 6 },
  production: { rollout: true, hpa: true, externalSecret: true, monitoring: true, maxReplicas: 20 },
};
/** The values Argo CD passes for an environment: env file plus, for staging and production, the release file. */
const envValues = (env: string): string[] =>
  env === 'dev' ? [path.join(chartDir, 'env', 'dev.yaml')] : [path.join(chartDir, 'env', `${env}.yaml`), path.join(repoRoot, 'argocd', env, 'image.yaml')];
for (const [env, exp] of Object.entries(envExpect)) {
  cases.push({ label: `env/${env}.yaml`, files: envValues(env), set: {}, hasDb: true, ingress: true, ...exp });
}
cases.push({
  label: 'values.yaml defaults',
  files: [],
  set: {},
  rollout: false,
  hpa: false,
  externalSecret: false,
  monitoring: false,
  maxReplicas: 2,
  hasDb: false,
  ingress: false,
});

// One documented switch on the defaults must give a working release (no Prometheus Operator needed).
cases.push({
  label: 'values.yaml defaults with --set rollout.enabled=true',
  files: [],
  set: { 'rollout.enabled': 'true' },
  rollout: true,
  hpa: false,
  externalSecret: false,
  monitoring: false,
  maxReplicas: 2,
  hasDb: false,
  ingress: false,
});

cases.push({
  label: 'reloadOnSecretChange on a Deployment with an existing Secret',
  files: [],
  set: { ...esOff, reloadOnSecretChange: 'true' },
  rollout: false,
  hpa: false,
  externalSecret: false,
  monitoring: false,
  maxReplicas: 2,
  hasDb: true,
  ingress: false,
});

const rendered = new Map<string, Promise<K8sObject[]>>();
function render(c: Case): Promise<K8sObject[]> {
  let p = rendered.get(c.label);
  if (!p) {
    p = renderChart(c.files, c.set, { namespace: 'users-service-test' });
    rendered.set(c.label, p);
  }
  return p;
}

const WORKLOAD_KINDS = ['Deployment', 'Rollout'];
/** The ConfigMap the workload's pods read (envFrom). */
const configOf = (objs: K8sObject[], w: K8sObject): K8sObject | undefined => {
  const ctr = asArr(asObj(asObj(asObj(w.spec).template).spec).containers)[0];
  const ref = asArr(ctr?.envFrom).map((e) => asObj(e.configMapRef).name).find((n) => typeof n === 'string');
  return objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === ref);
};
const workloadOf = (objs: K8sObject[]): K8sObject => {
  const w = objs.filter((o) => WORKLOAD_KINDS.includes(o.kind));
  expect(w, 'exactly one workload').to.have.length(1);
  return w[0]!;
};
const podTemplate = (o: K8sObject): Obj => asObj(asObj(o.spec).template);
const podSpec = (o: K8sObject): Obj => asObj(podTemplate(o).spec);
const podLabels = (o: K8sObject): Record<string, string> => asObj(asObj(podTemplate(o).metadata).labels) as Record<string, string>;
const byKind = (objs: K8sObject[], kind: string): K8sObject[] => objs.filter((o) => o.kind === kind);
const find = (objs: K8sObject[], kind: string, n: string): K8sObject | undefined => objs.find((o) => o.kind === kind && o.metadata.name === n);
const matches = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);
const podSpecsOf = (objs: K8sObject[]): { owner: string; spec: Obj }[] =>
  objs.filter((o) => [...WORKLOAD_KINDS, 'Job'].includes(o.kind)).map((o) => ({ owner: name(o), spec: podSpec(o) }));
const seconds = (d: string): number => {
  const m = /^(\d+)(ms|s|m)$/.exec(d);
  expect(m, `duration ${d}`).to.not.equal(null);
  const n = Number(m![1]);
  return m![2] === 'ms' ? n / 1000 : m![2] === 'm' ? n * 60 : n;
};
/** Registers the test only where it applies (instead of a pile of pending tests). */
const itIf = (cond: boolean, title: string, fn: () => void | Promise<void>): void => {
  if (cond) it(title, fn);
};
const isHook = (o: K8sObject): boolean => o.metadata.annotations?.['helm.sh/hook'] !== undefined;

describe('Helm chart users-service', function () {
  this.timeout(120_000);

  before(async () => {
    await Promise.all(cases.map(render));
  });

  describe('helm lint --strict', () => {
    for (const files of [[], ...['dev', 'staging', 'production'].map(envValues)]) {
      it(files.length === 0 ? 'values.yaml' : path.relative(chartDir, files[0]!), async () => {
        const out = await lintChart(files);
        expect(out).to.match(/1 chart\(s\) linted, 0 chart\(s\) failed/);
      });
    }
  });

  for (const c of cases) {
    describe(c.label, () => {
      let objs: K8sObject[] = [];
      before(async () => {
        objs = await render(c);
      });

      it('every object validates against its schema (no unknown kinds or fields)', async () => {
        const errors: string[] = [];
        for (const o of objs) for (const e of await validateObject(o)) errors.push(`${name(o)}: ${e}`);
        expect(errors).to.deep.equal([]);
      });

      it('renders the expected kinds for this mode', () => {
        const kinds = new Set(objs.map((o) => o.kind));
        expect(kinds.has('Rollout')).to.equal(c.rollout);
        expect(kinds.has('Deployment')).to.equal(!c.rollout);
        expect(kinds.has('HorizontalPodAutoscaler')).to.equal(c.hpa);
        expect(kinds.has('ExternalSecret')).to.equal(c.externalSecret);
        expect(kinds.has('SecretStore')).to.equal(c.externalSecret);
        expect(kinds.has('ServiceMonitor')).to.equal(c.monitoring);
        expect(kinds.has('PrometheusRule')).to.equal(c.monitoring);
        expect(kinds.has('AnalysisTemplate')).to.equal(c.rollout);
        expect(kinds.has('PodDisruptionBudget')).to.equal(c.maxReplicas > 1);
        expect(byKind(objs, 'Service').some((s) => s.metadata.name.endsWith('-preview'))).to.equal(c.rollout);
      });

      it('every object carries the standard app.kubernetes.io labels', () => {
        for (const o of objs) {
          const l = o.metadata.labels ?? {};
          for (const k of ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/managed-by', 'helm.sh/chart']) {
            expect(l, `${name(o)} ${k}`).to.have.property(k);
          }
          expect(l['app.kubernetes.io/name']).to.equal('users-service');
        }
      });

      it('every container: non-root, read-only root, no privilege escalation, drop ALL, seccomp, requests+limits', () => {
        const specs = podSpecsOf(objs);
        expect(specs.length).to.be.at.least(1);
        for (const { owner, spec } of specs) {
          const podSc = asObj(spec.securityContext);
          expect(spec.automountServiceAccountToken, owner).to.equal(false);
          for (const ctr of [...asArr(spec.containers), ...asArr(spec.initContainers)]) {
            const sc = asObj(ctr.securityContext);
            const where = `${owner}/${String(ctr.name)}`;
            expect(sc.runAsNonRoot ?? podSc.runAsNonRoot, where).to.equal(true);
            expect(Number(sc.runAsUser ?? podSc.runAsUser), where).to.be.greaterThan(0);
            expect(sc.readOnlyRootFilesystem, where).to.equal(true);
            expect(sc.allowPrivilegeEscalation, where).to.equal(false);
            expect(asObj(sc.capabilities).drop, where).to.deep.equal(['ALL']);
            expect(asObj(sc.seccompProfile ?? podSc.seccompProfile).type, where).to.equal('RuntimeDefault');
            const res = asObj(ctr.resources);
            for (const k of ['cpu', 'memory']) {
              expect(asObj(res.limits), `${where} limits`).to.have.property(k);
              expect(asObj(res.requests), `${where} requests`).to.have.property(k);
            }
            const image = String(ctr.image);
            expect(image, where).to.match(/^[^:@]+(:[^:@/]+|@sha256:[a-f0-9]{64})$/);
            expect(image, where).to.not.match(/:latest(@|$)/);
            expect(ctr.imagePullPolicy, where).to.equal('IfNotPresent');
            const mounts = asArr(ctr.volumeMounts);
            expect(mounts.some((m) => m.mountPath === '/tmp'), `${where} /tmp emptyDir`).to.equal(true);
          }
          expect(asArr(spec.volumes).some((v) => v.name === 'tmp' && v.emptyDir !== undefined), owner).to.equal(true);
        }
      });

      it('the app container has startup, liveness (/health) and readiness (/ready) probes on the http port', () => {
        const w = workloadOf(objs);
        const [ctr] = asArr(podSpec(w).containers);
        expect(asArr(ctr!.ports).find((p) => p.name === 'http')?.containerPort).to.equal(8080);
        expect(asArr(ctr!.ports).find((p) => p.name === 'metrics')?.containerPort, 'METRICS_PORT').to.equal(9464);
        expect(asObj(configOf(objs, w)?.data).METRICS_PORT).to.equal('9464');
        for (const [probe, p] of [['startupProbe', '/health'], ['livenessProbe', '/health'], ['readinessProbe', '/ready']] as const) {
          const get = asObj(asObj(ctr![probe]).httpGet);
          expect(get.path, probe).to.equal(p);
          expect(get.port, probe).to.equal('http');
        }
        expect(ctr!.command).to.deep.equal(['node']);
        expect(ctr!.args).to.deep.equal(['dist/service/main.js']);
      });

      it('terminationGracePeriodSeconds > preStop sleep + SHUTDOWN_DRAIN_DELAY + SHUTDOWN_TIMEOUT', () => {
        const w = workloadOf(objs);
        const spec = podSpec(w);
        const cm = configOf(objs, w);
        const [ctr] = asArr(spec.containers);
        const preStop = asObj(asObj(ctr!.lifecycle).preStop);
        const sleep = preStop.sleep !== undefined ? Number(asObj(preStop.sleep).seconds) : Number(asArr(asObj(preStop.exec).command)[1] ?? 0);
        const data = asObj(cm?.data) as Record<string, string>;
        const total = sleep + seconds(data.SHUTDOWN_DRAIN_DELAY!) + seconds(data.SHUTDOWN_TIMEOUT!);
        expect(Number(spec.terminationGracePeriodSeconds)).to.be.greaterThan(total);
        expect(sleep).to.be.greaterThan(0);
      });

      it('renders contract env vars with units; DATABASE_URL only ever from a Secret', () => {
        const w = workloadOf(objs);
        const cm = configOf(objs, w);
        const data = asObj(cm?.data) as Record<string, string>;
        expect(data.PORT).to.equal('8080');
        for (const k of ['SHUTDOWN_DRAIN_DELAY', 'SHUTDOWN_TIMEOUT', 'DB_CONN_MAX_LIFETIME', 'DB_ACQUIRE_TIMEOUT', 'RATE_LIMIT_REDIS_TIMEOUT']) {
          expect(data[k], k).to.match(/^\d+(ms|s)$/);
        }
        expect(data, 'no secret in the ConfigMap').to.not.have.property('DATABASE_URL');
        expect(cm, 'the ConfigMap the pods read is rendered').to.not.equal(undefined);
        for (const { owner, spec } of podSpecsOf(objs)) {
          for (const ctr of asArr(spec.containers)) {
            for (const env of asArr(ctr.env)) {
              if (env.name === 'DATABASE_URL' || env.name === 'REDIS_URL') {
                const what = `${owner} ${env.name}`;
                expect(env.value, what).to.equal(undefined);
                expect(asObj(env.valueFrom).secretKeyRef, what).to.not.equal(undefined);
              }
            }
            expect(asArr(ctr.env).some((e) => e.name === 'DATABASE_URL'), `${owner} has DATABASE_URL`).to.equal(c.hasDb);
          }
        }
        for (const o of objs.filter((x) => x.kind !== 'ExternalSecret')) {
          expect(JSON.stringify(o), name(o)).to.not.match(/postgres(ql)?:\/\/|rediss?:\/\/[^"]*@/);
        }
      });

      it('Services select the pod labels; no Service selects the migration Job pods', () => {
        const w = workloadOf(objs);
        const labels = podLabels(w);
        const jobLabels = byKind(objs, 'Job').map((j) => podLabels(j));
        const services = byKind(objs, 'Service');
        expect(services.length).to.be.at.least(1);
        for (const s of services) {
          const sel = asObj(asObj(s.spec).selector) as Record<string, string>;
          expect(matches(sel, labels), `${name(s)} selects the pods`).to.equal(true);
          for (const jl of jobLabels) expect(matches(sel, jl), `${name(s)} must not select the Job`).to.equal(false);
          const metricsService = s.metadata.labels?.['app.kubernetes.io/component'] === 'metrics';
          expect(asArr(asObj(s.spec).ports).map((p) => p.targetPort)).to.deep.equal([metricsService ? 'metrics' : 'http']);
        }
        const wSel = asObj(asObj(w.spec).selector).matchLabels as Record<string, string>;
        expect(matches(wSel, labels)).to.equal(true);
        for (const jl of jobLabels) expect(matches(wSel, jl)).to.equal(false);
      });

      it('replicas: omitted when the HPA is on; the HPA targets the rendered workload kind and name', () => {
        const w = workloadOf(objs);
        const hpa = byKind(objs, 'HorizontalPodAutoscaler')[0];
        if (!c.hpa) {
          expect(asObj(w.spec).replicas).to.be.a('number');
          expect(hpa).to.equal(undefined);
          return;
        }
        expect(asObj(w.spec)).to.not.have.property('replicas');
        const ref = asObj(asObj(hpa!.spec).scaleTargetRef);
        expect(ref).to.deep.equal({ apiVersion: w.apiVersion, kind: w.kind, name: w.metadata.name });
        const metrics = asArr(asObj(hpa!.spec).metrics).map((m) => asObj(m.resource).name);
        expect(metrics).to.have.members(['cpu', 'memory']);
      });

      it('PDB only when more than one replica is possible, selecting the pods', () => {
        const pdbs = byKind(objs, 'PodDisruptionBudget');
        expect(pdbs).to.have.length(c.maxReplicas > 1 ? 1 : 0);
        for (const pdb of pdbs) {
          const sel = asObj(asObj(pdb.spec).selector).matchLabels as Record<string, string>;
          expect(matches(sel, podLabels(workloadOf(objs)))).to.equal(true);
        }
      });

      itIf(!c.rollout, 'Deployment: RollingUpdate with maxUnavailable 0', () => {
        const strategy = asObj(asObj(workloadOf(objs).spec).strategy);
        expect(strategy.type).to.equal('RollingUpdate');
        expect(asObj(strategy.rollingUpdate).maxUnavailable).to.equal(0);
      });

      itIf(c.rollout, 'Rollout: blueGreen with existing active/preview Services and AnalysisTemplates scoped to the new pods', () => {
        const w = workloadOf(objs);
        const bg = asObj(asObj(asObj(w.spec).strategy).blueGreen);
        const active = find(objs, 'Service', String(bg.activeService));
        const preview = find(objs, 'Service', String(bg.previewService));
        expect(active, 'active Service').to.not.equal(undefined);
        expect(preview, 'preview Service').to.not.equal(undefined);
        expect(active).to.not.equal(preview);
        expect(bg.autoPromotionEnabled).to.be.a('boolean');
        expect(bg.scaleDownDelaySeconds).to.be.a('number');
        // The smoke test gates promotion with or without Prometheus; the post-promotion queries need the scraped series.
        expect(bg).to.have.property('prePromotionAnalysis');
        expect(Object.prototype.hasOwnProperty.call(bg, 'postPromotionAnalysis')).to.equal(c.monitoring);
        const analyses = ['prePromotionAnalysis', 'postPromotionAnalysis'].filter((k) => bg[k] !== undefined).map((k) => asObj(bg[k]));
        for (const a of analyses) {
          const templates = asArr(a.templates);
          expect(templates).to.have.length(1);
          const tpl = find(objs, 'AnalysisTemplate', String(templates[0]!.templateName));
          expect(tpl, String(templates[0]!.templateName)).to.not.equal(undefined);
          const declared = asArr(asObj(tpl!.spec).args).map((x) => x.name);
          const passed = asArr(a.args);
          expect(passed.map((x) => x.name)).to.have.members(declared as string[]);
          if (c.monitoring) expect(asObj(passed.find((x) => x.name === 'pod-template-hash')?.valueFrom)).to.deep.equal({ podTemplateHashValue: 'Latest' });
          if (c.monitoring) {
            const svcArg = String(passed.find((x) => x.name === 'service-name')?.value);
            expect(find(objs, 'Service', svcArg), 'service-name arg names the scraped Service').to.not.equal(undefined);
          }
          const metrics = asArr(asObj(tpl!.spec).metrics);
          expect(metrics.some((m) => asObj(m.provider).prometheus !== undefined), 'Prometheus queries exactly with the ServiceMonitor').to.equal(c.monitoring);
          for (const m of metrics.filter((x) => asObj(x.provider).prometheus !== undefined)) {
            const prom = asObj(asObj(m.provider).prometheus);
            const q = String(prom.query);
            expect(q).to.include('rollouts_pod_template_hash="{{args.pod-template-hash}}"');
            expect(q).to.match(/or vector\(-?\d\)\s*$/);
            expect(String(prom.address)).to.match(/^https?:\/\//);
          }
        }
      });

      itIf(c.monitoring, 'ServiceMonitor: selects a Service that has its port, job label from app.kubernetes.io/name, relabels the pod-template hash', () => {
        const sm = byKind(objs, 'ServiceMonitor')[0]!;
        const spec = asObj(sm.spec);
        expect(spec.jobLabel).to.equal('app.kubernetes.io/name');
        const sel = asObj(spec.selector).matchLabels as Record<string, string>;
        const selected = byKind(objs, 'Service').filter((s) => matches(sel, s.metadata.labels ?? {}));
        expect(selected, 'exactly one Service scraped (no double scraping of active + preview)').to.have.length(1);
        const [endpoint] = asArr(spec.endpoints);
        expect(endpoint!.path).to.equal('/metrics');
        expect(endpoint!.port).to.equal('metrics');
        expect(asArr(asObj(selected[0]!.spec).ports).find((p) => p.name === 'metrics')?.port).to.equal(9464);
        expect(asArr(asObj(selected[0]!.spec).ports).map((p) => p.name)).to.include(endpoint!.port);
        expect(selected[0]!.metadata.labels?.['app.kubernetes.io/name']).to.equal('users-service');
        expect(asArr(endpoint!.relabelings)).to.deep.include({
          action: 'replace',
          sourceLabels: ['__meta_kubernetes_pod_label_rollouts_pod_template_hash'],
          targetLabel: 'rollouts_pod_template_hash',
        });
        const rule = byKind(objs, 'PrometheusRule')[0]!;
        const file = parseYaml(readFileSync(path.join(chartDir, 'files', 'prometheus-rules.yaml'), 'utf8')) as Obj;
        expect(asObj(rule.spec).groups).to.deep.equal(file.groups);
        const dash = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1');
        expect(dash, 'dashboard ConfigMap').to.not.equal(undefined);
        for (const v of Object.values(asObj(dash!.data))) expect(() => JSON.parse(String(v)) as unknown).to.not.throw();
      });

      it('Ingress, when enabled, exposes /api and /openapi.json only (never /metrics); none otherwise', () => {
        const ingresses = byKind(objs, 'Ingress');
        expect(ingresses, 'one Ingress exactly when ingress.enabled').to.have.length(c.ingress ? 1 : 0);
        for (const ing of ingresses) {
          const paths = asArr(asObj(ing.spec).rules).flatMap((r) => asArr(asObj(r.http).paths).map((p) => String(p.path)));
          expect(new Set(paths)).to.deep.equal(new Set(['/api', '/openapi.json']));
          expect(paths.join()).to.not.match(/metrics|health|ready/);
        }
      });

      it('migration Job: hook before the new version, same image, and every dependency exists earlier in the hook order', () => {
        const jobs = byKind(objs, 'Job');
        expect(jobs).to.have.length(c.hasDb ? 1 : 0);
        if (!c.hasDb) return;
        const job = jobs[0]!;
        const a = job.metadata.annotations ?? {};
        // Helm: before the release's resources when the Secret pre-exists, after install when the release creates it.
        expect(a['helm.sh/hook']).to.equal(c.externalSecret ? 'post-install,pre-upgrade' : 'pre-install,pre-upgrade');
        expect(a['argocd.argoproj.io/hook']).to.equal('Sync');
        expect(a['helm.sh/hook-delete-policy']).to.equal('before-hook-creation,hook-succeeded');
        expect(asObj(job.spec).backoffLimit).to.be.a('number');
        expect(asObj(job.spec).activeDeadlineSeconds).to.be.a('number');
        const spec = podSpec(job);
        const [ctr] = asArr(spec.containers);
        const [appCtr] = asArr(podSpec(workloadOf(objs)).containers);
        expect(ctr!.image).to.equal(appCtr!.image);
        expect([...asArr(ctr!.command), ...asArr(ctr!.args)]).to.deep.equal(['node', 'dist/service/migrate.js']);
        expect(ctr!.securityContext).to.deep.equal(appCtr!.securityContext);
        const wave = (o: K8sObject): number => Number(o.metadata.annotations?.['argocd.argoproj.io/sync-wave'] ?? 0);
        expect(wave(job), 'the workload starts after the migration').to.be.lessThan(wave(workloadOf(objs)));
        // Secret plumbing: ORDINARY resources (Argo CD diffs and heals them), ordered by sync wave before the Job.
        const before = (o: K8sObject | undefined, what: string): void => {
          expect(o, what).to.not.equal(undefined);
          expect(isHook(o!), `${what} is no Helm hook`).to.equal(false);
          expect(o!.metadata.annotations?.['argocd.argoproj.io/hook'], `${what} is no Argo CD hook`).to.equal(undefined);
          expect(wave(o!), `${what} argo wave`).to.be.lessThan(wave(job));
        };
        const jobSa = find(objs, 'ServiceAccount', String(spec.serviceAccountName));
        expect(jobSa, 'Job ServiceAccount').to.not.equal(undefined);
        expect(jobSa!.metadata.annotations?.['helm.sh/hook'], 'exists before a Helm pre-install Job').to.equal('pre-install,pre-upgrade');
        expect(jobSa!.metadata.annotations?.['argocd.argoproj.io/hook']).to.equal('Sync');
        expect(wave(jobSa!)).to.be.lessThan(wave(job));
        expect(JSON.stringify(spec), 'no ConfigMap (ordinary resource) referenced by the hook').to.not.include('configMapRef');
        const secretName = String(asObj(asObj(asArr(ctr!.env).find((e) => e.name === 'DATABASE_URL')?.valueFrom).secretKeyRef).name);
        if (c.externalSecret) {
          const es = byKind(objs, 'ExternalSecret').find((e) => asObj(asObj(e.spec).target).name === secretName);
          before(es, 'ExternalSecret producing the Secret');
          const store = asObj(asObj(es!.spec).secretStoreRef);
          const ss = find(objs, String(store.kind), String(store.name));
          before(ss, 'SecretStore');
          expect(wave(ss!)).to.be.lessThan(wave(es!));
          const jwt = asObj(asObj(asObj(asObj(asObj(ss!.spec).provider).aws).auth).jwt);
          const saName = String(asObj(jwt.serviceAccountRef).name);
          const sa = find(objs, 'ServiceAccount', saName);
          before(sa, 'secrets ServiceAccount');
          expect(wave(sa!)).to.be.lessThan(wave(ss!));
          expect(sa!.metadata.annotations?.['eks.amazonaws.com/role-arn']).to.match(/^arn:aws:iam::\d{12}:role\//);
          expect(asObj(asObj(es!.spec).target).creationPolicy, 'Secret outlives its ExternalSecret').to.equal('Orphan');
        } else {
          expect(secretName).to.equal('users-service-db');
        }
      });

      itIf(c.externalSecret, 'ExternalSecret: v1, template v2, remoteRefs pinned to defaults, password URL-escaped', () => {
        const es = byKind(objs, 'ExternalSecret')[0]!;
        const spec = asObj(es.spec);
        const tpl = asObj(asObj(spec.target).template);
        expect(tpl.engineVersion).to.equal('v2');
        const url = String(asObj(tpl.data).DATABASE_URL);
        expect(url).to.match(/^postgres:\/\/\{\{ \.username \| urlquery \}\}:\{\{ \.password \| urlquery \}\}@\{\{ \.host \}\}:\{\{ \.port \}\}\/\{\{ \.dbname \}\}\?sslmode=/);
        for (const d of asArr(spec.data)) {
          expect(asObj(d.remoteRef)).to.include({ conversionStrategy: 'Default', decodingStrategy: 'None', metadataPolicy: 'None' });
        }
        const sa = byKind(objs, 'ServiceAccount').find((s) => s.metadata.annotations?.['eks.amazonaws.com/role-arn']);
        expect(sa?.metadata.name).to.equal('users-service-secrets');
        const appSa = find(objs, 'ServiceAccount', 'users-service');
        expect(appSa?.metadata.annotations ?? {}, 'app SA has no cloud role').to.not.have.property('eks.amazonaws.com/role-arn');
      });

      itIf(c.monitoring, 'NetworkPolicy: app port from the ingress controller and the smoke test, metrics port from Prometheus only, numeric ports', () => {
        const nps = byKind(objs, 'NetworkPolicy');
        expect(nps).to.have.length(1);
        const spec = asObj(nps[0]!.spec);
        expect(spec.policyTypes).to.deep.equal(['Ingress', 'Egress']);
        const [app, metrics] = asArr(spec.ingress);
        expect(asArr(app!.ports)).to.deep.equal([{ protocol: 'TCP', port: 8080 }]);
        expect(asArr(app!.from).some((f) => asObj(asObj(f.podSelector).matchLabels)['app.kubernetes.io/component'] === 'smoke')).to.equal(true);
        expect(asArr(metrics!.ports)).to.deep.equal([{ protocol: 'TCP', port: 9464 }]);
        expect(asArr(metrics!.from)).to.have.length(1);
        expect(asObj(asObj(asArr(metrics!.from)[0]!.namespaceSelector).matchLabels)).to.deep.equal({ 'kubernetes.io/metadata.name': 'monitoring' });
        const ports = asArr(spec.egress).flatMap((e) => asArr(e.ports).map((p) => Number(p.port)));
        const data = asObj(configOf(objs, workloadOf(objs))?.data);
        const expected = [53, 5432, 6379, 8080, ...(data.AUTH_ISSUER === undefined ? [] : [443]), ...(data.OTEL_EXPORTER_OTLP_ENDPOINT === undefined ? [] : [4318])];
        expect(new Set(ports)).to.deep.equal(new Set(expected));
      });

      it('NetworkPolicies name no port: every port is a number', () => {
        const named: string[] = [];
        const walk = (v: unknown, at: string): void => {
          if (Array.isArray(v)) v.forEach((x, i) => { walk(x, `${at}[${i}]`); });
          else if (v !== null && typeof v === 'object') {
            for (const [k, x] of Object.entries(v)) {
              if ((k === 'port' || k === 'endPort') && typeof x !== 'number') named.push(`${at}.${k}=${JSON.stringify(x)}`);
              walk(x, `${at}.${k}`);
            }
          }
        };
        for (const np of byKind(objs, 'NetworkPolicy')) walk(np.spec, name(np));
        expect(named).to.deep.equal([]);
      });
    });
  }

  describe('environment files', () => {
    const get = async (env: string): Promise<K8sObject[]> => render(cases.find((c) => c.label === `env/${env}.yaml`)!);
    it('dev: Deployment, 1 replica, existing Secret users-service-db, in-cluster Redis, nginx host users.localtest.me', async () => {
      const objs = await get('dev');
      const w = workloadOf(objs);
      expect(w.kind).to.equal('Deployment');
      expect(asObj(w.spec).replicas).to.equal(1);
      expect(asObj(configOf(objs, w)?.data).REDIS_URL).to.equal('redis://redis:6379');
      const ing = byKind(objs, 'Ingress')[0]!;
      expect(asObj(ing.spec).ingressClassName).to.equal('nginx');
      expect(asArr(asObj(ing.spec).rules)[0]!.host).to.equal('users.localtest.me');
    });
    it('staging promotes automatically after analysis; production waits for a human', async () => {
      for (const [env, auto] of [['staging', true], ['production', false]] as const) {
        const w = workloadOf(await get(env));
        const bg = asObj(asObj(asObj(w.spec).strategy).blueGreen);
        expect(bg.autoPromotionEnabled, env).to.equal(auto);
        expect(bg, env).to.have.property('prePromotionAnalysis');
        expect(bg, env).to.have.property('postPromotionAnalysis');
      }
    });
    it('staging and production: HPA min 3, TLS ingress, REDIS_URL from the ExternalSecret', async () => {
      for (const env of ['staging', 'production']) {
        const objs = await get(env);
        expect(asObj(byKind(objs, 'HorizontalPodAutoscaler')[0]!.spec).minReplicas, env).to.equal(3);
        expect(asArr(asObj(byKind(objs, 'Ingress')[0]!.spec).tls), env).to.have.length(1);
        const es = byKind(objs, 'ExternalSecret')[0]!;
        expect(String(asObj(asObj(asObj(asObj(es.spec).target).template).data).REDIS_URL), env).to.match(/^rediss:\/\/:\{\{ \.authToken \| urlquery \}\}@/);
        expect(asArr(asObj(es.spec).data).map((d) => asObj(d.remoteRef).key), env).to.include(`users-service/${env}/database`);
      }
    });
  });

  describe('credential rotation (multi-user rotation in infra, Stakater Reloader here)', () => {
    const RELOAD = 'secret.reloader.stakater.com/reload';
    const STRATEGY = 'reloader.stakater.com/rollout-strategy';
    const podAnnotationsOf = (o: K8sObject): Record<string, string> => asObj(asObj(podTemplate(o).metadata).annotations) as Record<string, string>;
    it('staging and production: the pods restart when the ExternalSecret target changes, which ESO refreshes every 15 minutes', async () => {
      for (const env of ['staging', 'production']) {
        const objs = await render(cases.find((c) => c.label === `env/${env}.yaml`)!);
        const es = byKind(objs, 'ExternalSecret')[0]!;
        const target = String(asObj(asObj(es.spec).target).name);
        expect(asObj(es.spec).refreshInterval, env).to.equal('15m');
        const w = workloadOf(objs);
        expect(podAnnotationsOf(w)[RELOAD], env).to.equal(target);
        // The Secret the annotation names is the one the container reads DATABASE_URL from.
        const env0 = asArr(asArr(podSpec(w).containers)[0]!.env).find((e) => e.name === 'DATABASE_URL');
        expect(asObj(asObj(env0?.valueFrom).secretKeyRef).name, env).to.equal(target);
        // A Rollout is restarted in place (spec.restartAt), not sent through a new blue/green revision.
        expect(w.metadata.annotations?.[STRATEGY], env).to.equal('restart');
      }
    });
    it('a Deployment with an existing Secret gets the pod annotation naming that Secret, and no Rollout-only annotation', async () => {
      const w = workloadOf(await render(cases.find((c) => c.label.startsWith('reloadOnSecretChange'))!));
      expect(w.kind).to.equal('Deployment');
      expect(podAnnotationsOf(w)[RELOAD]).to.equal('users-service-db');
      expect(w.metadata.annotations?.[STRATEGY]).to.equal(undefined);
    });
    it('off by default: no Reloader annotation anywhere (dev and the values.yaml defaults)', async () => {
      for (const label of ['env/dev.yaml', 'values.yaml defaults']) {
        const objs = await render(cases.find((c) => c.label === label)!);
        expect(JSON.stringify(objs), label).to.not.include('reloader.stakater.com');
      }
    });
  });


  describe('in a real cluster (issue 14: what Argo CD, Argo Rollouts and Prometheus actually do with the objects)', () => {
    const get = (label: string): Promise<K8sObject[]> => render(cases.find((c) => c.label === label)!);
    const wave = (o: K8sObject): number => Number(o.metadata.annotations?.['argocd.argoproj.io/sync-wave'] ?? 0);

    it('Argo CD label tracking (app.kubernetes.io/instance := Application name) leaves the ServiceMonitor, Services, PDB and NetworkPolicy matching', async () => {
      for (const env of ['staging', 'production']) {
        // What argo-cd util/kube SetAppInstanceLabel does: top-level metadata.labels only (pod templates untouched since v0.11).
        const objs = structuredClone(await get(`env/${env}.yaml`));
        for (const o of objs) o.metadata.labels = { ...o.metadata.labels, 'app.kubernetes.io/instance': `users-service-${env}` };
        const sm = byKind(objs, 'ServiceMonitor')[0]!;
        const sel = asObj(asObj(sm.spec).selector).matchLabels as Record<string, string>;
        const scraped = byKind(objs, 'Service').filter((svc) => matches(sel, svc.metadata.labels ?? {}));
        expect(scraped.map((x) => x.metadata.name), env).to.deep.equal(['users-service-metrics']);
        const pods = podLabels(workloadOf(objs));
        for (const svc of byKind(objs, 'Service')) expect(matches(asObj(asObj(svc.spec).selector) as Record<string, string>, pods), name(svc)).to.equal(true);
        const pdb = byKind(objs, 'PodDisruptionBudget')[0]!;
        expect(matches(asObj(asObj(pdb.spec).selector).matchLabels as Record<string, string>, pods)).to.equal(true);
        const np = byKind(objs, 'NetworkPolicy')[0]!;
        expect(matches(asObj(asObj(np.spec).podSelector).matchLabels as Record<string, string>, pods)).to.equal(true);
      }
    });

    it('secret plumbing syncs like any resource: a changed sslmode or remoteKey changes an ordinary (diffed) object', async () => {
      const base = await renderChart([], { ...esOn, 'database.sslmode': 'verify-full' });
      const changed = await renderChart([], { ...esOn, 'database.sslmode': 'require', 'externalSecret.database.remoteKey': 'other/key' });
      const es = (objs: K8sObject[]): K8sObject => byKind(objs, 'ExternalSecret')[0]!;
      expect(JSON.stringify(es(base).spec)).to.not.equal(JSON.stringify(es(changed).spec));
      for (const o of [es(changed), byKind(changed, 'SecretStore')[0]!]) {
        expect(isHook(o), name(o)).to.equal(false);
        expect(o.metadata.annotations?.['argocd.argoproj.io/hook'], name(o)).to.equal(undefined);
      }
    });

    it('post-promotion analysis waits for traffic: initialDelay of at least two scrape intervals', async () => {
      for (const env of ['staging', 'production']) {
        const objs = await get(`env/${env}.yaml`);
        const sm = byKind(objs, 'ServiceMonitor')[0]!;
        const scrape = seconds(String(asArr(asObj(sm.spec).endpoints)[0]!.interval));
        const post = find(objs, 'AnalysisTemplate', 'users-service-post-promotion')!;
        for (const m of asArr(asObj(post.spec).metrics)) {
          expect(m.initialDelay, `${env} ${String(m.name)}`).to.be.a('string');
          expect(seconds(String(m.initialDelay)), `${env} ${String(m.name)}`).to.be.at.least(2 * scrape);
        }
      }
    });

    it('pre-promotion runs the smoke test from the image under test against the preview Service, as a Job metric', async () => {
      for (const label of ['env/staging.yaml', 'env/production.yaml', 'values.yaml defaults with --set rollout.enabled=true']) {
        const objs = await get(label);
        const w = workloadOf(objs);
        const bg = asObj(asObj(asObj(w.spec).strategy).blueGreen);
        const pre = find(objs, 'AnalysisTemplate', String(asArr(asObj(bg.prePromotionAnalysis).templates)[0]!.templateName))!;
        const smoke = asArr(asObj(pre.spec).metrics).find((m) => m.name === 'smoke');
        expect(smoke, label).to.not.equal(undefined);
        expect(smoke!.failureLimit, label).to.equal(0);
        const jobSpec = asObj(asObj(asObj(smoke!.provider).job).spec);
        const pod = asObj(asObj(jobSpec.template).spec);
        const ctr = asArr(pod.containers)[0]!;
        expect(ctr.image, label).to.equal(asArr(podSpec(w).containers)[0]!.image);
        expect([...asArr(ctr.command), ...asArr(ctr.args)]).to.deep.equal(['node', 'dist/service/smoke.js']);
        const env = Object.fromEntries(asArr(ctr.env).map((e) => [String(e.name), e]));
        expect(env.SMOKE_BASE_URL?.value, label).to.equal(`http://${String(bg.previewService)}.users-service-test.svc:80`);
        expect(asObj(ctr.securityContext)).to.deep.equal(asObj(asArr(podSpec(w).containers)[0]!.securityContext));
        expect(pod.automountServiceAccountToken).to.equal(false);
      }
      // Writes only where allowed; a token from the secret store where auth is on.
      const staging = await get('env/staging.yaml');
      const envOf = (objs: K8sObject[]): Record<string, Obj> => {
        const pre = find(objs, 'AnalysisTemplate', 'users-service-pre-promotion')!;
        const smoke = asArr(asObj(pre.spec).metrics).find((m) => m.name === 'smoke')!;
        const ctr = asArr(asObj(asObj(asObj(asObj(asObj(smoke.provider).job).spec).template).spec).containers)[0]!;
        return Object.fromEntries(asArr(ctr.env).map((e) => [String(e.name), e]));
      };
      expect(envOf(staging).SMOKE_WRITE_CYCLE?.value).to.equal('true');
      expect(envOf(await get('env/production.yaml')).SMOKE_WRITE_CYCLE?.value).to.equal('false');
      const secretName = String(asObj(asObj(envOf(staging).SMOKE_CLIENT_SECRET?.valueFrom).secretKeyRef).name);
      const es = byKind(staging, 'ExternalSecret').find((e) => asObj(asObj(e.spec).target).name === secretName);
      expect(es, 'the smoke client comes from the secret store').to.not.equal(undefined);
      expect(asArr(asObj(es!.spec).data).map((d) => asObj(d.remoteRef).key)).to.deep.equal(['users-service/staging/smoke-client', 'users-service/staging/smoke-client']);
    });

    it('each release has its own ConfigMap, named by content and kept while a ReplicaSet uses it', async () => {
      const a = await renderChart([], {});
      const b = await renderChart([], { 'config.logLevel': 'debug' });
      const c2 = await renderChart([], { 'image.tag': 'c0ffee' });
      const cmName = (objs: K8sObject[]): string => configOf(objs, workloadOf(objs))!.metadata.name;
      expect(cmName(a)).to.match(/^users-service-config-[0-9a-f]{10}$/);
      expect(cmName(b), 'new config, new name: old pods keep the old one').to.not.equal(cmName(a));
      expect(cmName(c2), 'same config, same name').to.equal(cmName(a));
      const cm = configOf(a, workloadOf(a))!;
      expect(cm.metadata.annotations).to.include({
        'argocd.argoproj.io/sync-options': 'Prune=false',
        // A superseded ConfigMap must not keep the app OutOfSync (self-heal would sync for ever).
        'argocd.argoproj.io/compare-options': 'IgnoreExtraneous',
        'helm.sh/resource-policy': 'keep',
      });
      expect(cm.immutable).to.equal(true);
    });

    it('pod templates do not change on a chart version bump', async () => {
      const { cpSync, mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
      const { tmpdir } = await import('node:os');
      const dir = mkdtempSync(path.join(tmpdir(), 'chart-bump-'));
      try {
        const copy = path.join(dir, 'users-service');
        cpSync(chartDir, copy, { recursive: true });
        const chartYaml = readFileSync(path.join(copy, 'Chart.yaml'), 'utf8').replace(/^version: .*$/m, 'version: 9.9.9');
        writeFileSync(path.join(copy, 'Chart.yaml'), chartYaml);
        for (const env of ['staging', 'production']) {
          const before = workloadOf(await get(`env/${env}.yaml`));
          const after = workloadOf(await renderChart(envValues(env), {}, { chart: copy, namespace: 'users-service-test' }));
          expect(after.metadata.labels?.['helm.sh/chart']).to.equal('users-service-9.9.9');
          expect(podTemplate(after), env).to.deep.equal(podTemplate(before));
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('HPA: memory target above the V8 heap cap, limit above both, slow scale-down - in every environment', async () => {
      const mib = (q: string): number => {
        const m = /^(\d+)(Mi|Gi)$/.exec(q);
        expect(m, q).to.not.equal(null);
        return Number(m![1]) * (m![2] === 'Gi' ? 1024 : 1);
      };
      for (const env of ['dev', 'staging', 'production']) {
        // dev runs without an HPA; its numbers must still hold when someone turns it on.
        const objs = await renderChart(envValues(env), { 'autoscaling.enabled': 'true' }, { namespace: 'users-service-test' });
        const w = workloadOf(objs);
        const ctr = asArr(podSpec(w).containers)[0]!;
        const heap = Number(/--max-old-space-size=(\d+)/.exec(String(asObj(configOf(objs, w)?.data).NODE_OPTIONS))?.[1]);
        const request = mib(String(asObj(asObj(ctr.resources).requests).memory));
        const limit = mib(String(asObj(asObj(ctr.resources).limits).memory));
        const hpa = asObj(byKind(objs, 'HorizontalPodAutoscaler')[0]!.spec);
        const memory = asArr(hpa.metrics).find((m) => asObj(m.resource).name === 'memory')!;
        const target = (Number(asObj(asObj(memory.resource).target).averageUtilization) / 100) * request;
        const numbers = `${env}: heap ${heap} MiB, target ${target.toFixed(0)} MiB, limit ${limit} MiB`;
        expect(heap, numbers).to.be.greaterThan(0);
        expect(target, numbers).to.be.greaterThan(heap);
        expect(limit, numbers).to.be.greaterThan(target);
        expect(heap, `${numbers}: heap at most 65 % of the limit (young generation, code, buffers)`).to.be.at.most(0.65 * limit);
        const down = asObj(asObj(hpa.behavior).scaleDown);
        expect(Number(down.stabilizationWindowSeconds), env).to.be.at.least(300);
        expect(asArr(down.policies).length, env).to.be.at.least(1);
      }
    });

    it('caps V8\'s young generation in every environment, so a pod under load stays near its heap cap', async () => {
      // Node 24's V8 grows the young generation to about 100 MB under load when left alone (bench/: RSS 246 MB
      // against 150 MB with --max-semi-space-size=8), beyond the memory request the HPA and the scheduler count on.
      for (const env of ['dev', 'staging', 'production']) {
        const objs = await renderChart(envValues(env), {}, { namespace: 'users-service-test' });
        const nodeOptions = String(asObj(configOf(objs, workloadOf(objs))?.data).NODE_OPTIONS);
        const semiSpace = Number(/--max-semi-space-size=(\d+)/.exec(nodeOptions)?.[1]);
        expect(semiSpace, `${env}: ${nodeOptions}`).to.be.within(1, 16);
      }
    });

    it('limits glibc\'s malloc arenas in every environment (RSS V8\'s and libuv\'s threads would otherwise keep)', async () => {
      for (const env of ['dev', 'staging', 'production']) {
        const objs = await renderChart(envValues(env), {}, { namespace: 'users-service-test' });
        expect(asObj(configOf(objs, workloadOf(objs))?.data).MALLOC_ARENA_MAX, env).to.equal('2');
      }
    });

    it('alerts and the dashboard follow the Prometheus job the ServiceMonitor produces (nameOverride)', async () => {
      const objs = await renderChart([], { nameOverride: 'people', 'metrics.prometheusRule.enabled': 'true', 'metrics.dashboard.enabled': 'true', 'metrics.serviceMonitor.enabled': 'true' });
      const metricsSvc = byKind(objs, 'Service').find((x) => x.metadata.labels?.['app.kubernetes.io/component'] === 'metrics')!;
      const job = metricsSvc.metadata.labels?.[String(asObj(byKind(objs, 'ServiceMonitor')[0]!.spec).jobLabel)];
      expect(job).to.equal('people');
      const rules = JSON.stringify(byKind(objs, 'PrometheusRule')[0]!.spec);
      const dash = JSON.stringify(objs.find((o) => o.metadata.labels?.grafana_dashboard === '1')!.data);
      for (const [what, text] of [['rules', rules], ['dashboard', dash]] as const) {
        expect(text, what).to.not.match(/job=\\*"users-service/);
        expect(text, what).to.match(/job=\\*"people\\*"/);
      }
    });

    it('DNS egress also reaches NodeLocal DNSCache (169.254.20.10)', async () => {
      const np = byKind(await get('env/production.yaml'), 'NetworkPolicy')[0]!;
      const dns = asArr(asObj(np.spec).egress).find((e) => asArr(e.ports).some((p) => p.port === 53))!;
      expect(asArr(dns.to).map((t) => asObj(t.ipBlock).cidr)).to.include('169.254.20.10/32');
    });

    it('the workload is applied after the migration Job, which follows the secret plumbing (sync waves)', async () => {
      const objs = await get('env/production.yaml');
      const order = ['ServiceAccount/users-service-secrets', 'SecretStore/users-service-aws', 'ExternalSecret/users-service-env', 'Job/users-service-migrations', 'Rollout/users-service'];
      const waves = order.map((n) => wave(objs.find((o) => name(o) === n)!));
      expect(waves).to.deep.equal([...waves].sort((x, y) => x - y));
      expect(new Set(waves).size).to.equal(order.length);
    });
  });

  describe('service settings (auth, metrics port, tracing, image digest)', () => {
    const get = (label: string): Promise<K8sObject[]> => render(cases.find((c) => c.label === label)!);
    it('staging and production: auth on, issuer and audience in the ConfigMap; dev and defaults: off', async () => {
      for (const [label, on] of [['env/staging.yaml', true], ['env/production.yaml', true], ['env/dev.yaml', false], ['values.yaml defaults', false]] as const) {
        const objs = await get(label);
        const data = asObj(configOf(objs, workloadOf(objs))?.data);
        if (on) {
          expect(String(data.AUTH_ISSUER), label).to.match(/^https:\/\//);
          expect(String(data.AUTH_AUDIENCE), label).to.not.equal('');
        } else expect(data, label).to.not.have.property('AUTH_ISSUER');
      }
      const objs = await renderChart([], { 'auth.enabled': 'true', 'auth.issuer': 'https://idp.test/', 'auth.audience': 'users', 'auth.jwksUrl': 'https://idp.test/jwks' });
      expect(asObj(configOf(objs, workloadOf(objs))?.data)).to.include({ AUTH_ISSUER: 'https://idp.test/', AUTH_AUDIENCE: 'users', AUTH_JWKS_URL: 'https://idp.test/jwks' });
    });

    it('tracing: OTEL_* from values, resource attributes from the downward API, egress to the collector port', async () => {
      const objs = await renderChart([], {
        'tracing.enabled': 'true',
        'tracing.endpoint': 'http://otel.observability.svc:4318',
        environment: 'dev',
        'networkPolicy.enabled': 'true',
      }, { extraArgs: ['--set-json', 'tracing.sampleRatio=0.25'] });
      const w = workloadOf(objs);
      expect(asObj(configOf(objs, w)?.data)).to.include({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel.observability.svc:4318',
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '0.25',
        OTEL_SERVICE_NAME: 'users-service',
      });
      const env = asArr(asArr(podSpec(w).containers)[0]!.env);
      const field = (n: string): unknown => asObj(asObj(env.find((e) => e.name === n)?.valueFrom).fieldRef).fieldPath;
      expect(field('POD_NAME')).to.equal('metadata.name');
      expect(field('POD_NAMESPACE')).to.equal('metadata.namespace');
      expect(field('SERVICE_VERSION')).to.equal("metadata.labels['app.kubernetes.io/version']");
      const attrs = env.find((e) => e.name === 'OTEL_RESOURCE_ATTRIBUTES');
      expect(attrs?.value).to.equal('k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME),service.version=$(SERVICE_VERSION),deployment.environment.name=dev');
      // $(VAR) expands only variables defined earlier in the list.
      const idx = (n: string): number => env.findIndex((e) => e.name === n);
      expect(idx('OTEL_RESOURCE_ATTRIBUTES')).to.be.greaterThan(Math.max(idx('POD_NAME'), idx('POD_NAMESPACE'), idx('SERVICE_VERSION')));
      const egress = asArr(asObj(byKind(objs, 'NetworkPolicy')[0]!.spec).egress);
      const collector = egress.find((e) => asArr(e.to).some((t) => asObj(asObj(t.namespaceSelector).matchLabels)['kubernetes.io/metadata.name'] === 'observability'));
      expect(asArr(collector?.ports)).to.deep.equal([{ protocol: 'TCP', port: 4318 }]);
      const off = await get('values.yaml defaults');
      expect(JSON.stringify(off)).to.not.include('OTEL_');
    });

    it('a digest makes every container run repository@digest; production renders one from argocd/production/image.yaml', async () => {
      const digest = `sha256:${'a'.repeat(64)}`;
      const objs = await renderChart([], { ...esOff, 'image.repository': 'r.example/users-service', 'image.tag': 'abc', 'image.digest': digest });
      for (const { owner, spec } of podSpecsOf(objs)) for (const ctr of asArr(spec.containers)) expect(ctr.image, owner).to.equal(`r.example/users-service@${digest}`);
      expect(podLabels(workloadOf(objs))['app.kubernetes.io/version'], 'the tag still names the version').to.equal('abc');
      const prod = await get('env/production.yaml');
      for (const { owner, spec } of podSpecsOf(prod)) for (const ctr of asArr(spec.containers)) expect(String(ctr.image), owner).to.match(/@sha256:[0-9a-f]{64}$/);
    });
  });

  describe('admission policy (Kyverno)', () => {
    const get = (label: string): Promise<K8sObject[]> => render(cases.find((c) => c.label === label)!);
    it('staging and production render it; it validates against the vendored Kyverno CRD schema', async () => {
      for (const env of ['staging', 'production']) {
        const policies = byKind(await get(`env/${env}.yaml`), 'Policy');
        expect(policies, env).to.have.length(1);
        expect(await validateObject(policies[0]!), env).to.deep.equal([]);
      }
      expect(byKind(await get('values.yaml defaults'), 'Policy')).to.have.length(0);
    });
    it('admits only images signed keyless by the release workflow, with SLSA provenance from this repository and an SBOM', async () => {
      const policy = byKind(await get('env/production.yaml'), 'Policy')[0]!;
      const spec = asObj(policy.spec);
      expect(spec.validationFailureAction).to.equal('Enforce');
      const rule = asArr(spec.rules)[0]!;
      expect(asArr(asObj(rule.match).any).map((m) => asObj(m.resources).kinds)).to.deep.equal([['Pod']]);
      const verify = asArr(rule.verifyImages);
      expect(verify.map((v) => v.type)).to.deep.equal(['Cosign', 'SigstoreBundle']);
      const attestations: Record<string, Obj> = {};
      for (const vi of verify) {
        expect(vi.imageReferences, 'every image, whatever its registry').to.deep.equal(['*']);
        expect(vi).to.include({ required: true, verifyDigest: true });
        for (const attestor of [...asArr(vi.attestors), ...asArr(vi.attestations).flatMap((a) => asArr(a.attestors))]) {
          const keyless = asObj(asArr(attestor.entries)[0]!.keyless);
          expect(keyless.subject).to.equal('https://github.com/example/users-service/.github/workflows/ci.yaml@refs/heads/main');
          expect(keyless.issuer).to.equal('https://token.actions.githubusercontent.com');
        }
        for (const a of asArr(vi.attestations)) attestations[String(a.type)] = a;
      }
      expect(Object.keys(attestations).sort()).to.deep.equal(['https://cyclonedx.org/bom', 'https://slsa.dev/provenance/v1']);
      expect(JSON.stringify(attestations['https://slsa.dev/provenance/v1']!.conditions)).to.include('"value":"https://github.com/example/users-service"');
    });
    it('the vendored-schema validator reports an unknown field (negative control)', async () => {
      const policy = structuredClone(byKind(await get('env/production.yaml'), 'Policy')[0]!);
      asObj(asArr(asArr(asObj(policy.spec).rules)[0]!.verifyImages)[0]).verifyDigests = true;
      expect((await validateObject(policy)).join()).to.include('unknown field /spec/rules/0/verifyImages/0/verifyDigests');
    });
  });

  describe('values validation (values.schema.json and template guards)', () => {
    const rejects: [string, Record<string, string>, RegExp][] = [
      ['replicaCount: "two"', { replicaCount: 'two' }, /replicaCount.*(string|integer)/],
      ['an unknown top-level key', { replicas: '3' }, /additional propert.*replicas/],
      ['an unknown nested key', { 'rollout.autoPromotion': 'true' }, /additional propert.*autoPromotion/],
      ['image.tag latest', { 'image.tag': 'latest' }, /\/image\/tag/],
      ['redis.url with credentials', { 'redis.url': 'redis://:secret@redis:6379' }, /redis\.url|pattern/],
      ['DATABASE_URL in extraEnv', { 'extraEnv[0].name': 'DATABASE_URL', 'extraEnv[0].value': 'x' }, /extraEnv/],
      ['a grace period not above preStop + drain + timeout', { 'shutdown.terminationGracePeriodSeconds': '40' }, /terminationGracePeriodSeconds/],
      ['auth.enabled without issuer and audience', { 'auth.enabled': 'true' }, /^(?=[\s\S]*\/auth\/issuer)(?=[\s\S]*\/auth\/audience)/],
      ['an auth issuer that is not https', { 'auth.enabled': 'true', 'auth.issuer': 'http://idp', 'auth.audience': 'a' }, /\/auth\/issuer/],
      ['staging or production without auth', { environment: 'staging' }, /\/auth\/enabled/],
      ['production without an image digest', { environment: 'production', 'auth.enabled': 'true', 'auth.issuer': 'https://idp', 'auth.audience': 'a' }, /\/image\/digest/],
      ['a malformed digest', { 'image.digest': 'sha256:abc' }, /\/image\/digest/],
      ['the admission policy without a digest', { 'admission.enabled': 'true' }, /admission\.enabled needs image\.digest/],
      ['auth with the smoke test but no client credentials', { 'rollout.enabled': 'true', 'auth.enabled': 'true', 'auth.issuer': 'https://idp', 'auth.audience': 'a' }, /rollout\.analysis\.smoke\.credentials/],
      ['ExternalSecret without a remote key', { 'externalSecret.enabled': 'true', 'externalSecret.serviceAccount.roleArn': 'arn:aws:iam::123456789012:role/x' }, /remoteKey/],
      ['ExternalSecret store without an IRSA role', { 'externalSecret.enabled': 'true', 'externalSecret.database.remoteKey': 'a/b' }, /roleArn/],
      ['ingress without hosts', { 'ingress.enabled': 'true' }, /ingress\.hosts/],
    ];
    for (const [what, set, re] of rejects) {
      it(`helm template fails on ${what}`, async () => {
        expect(await helmFails([], set)).to.match(re);
      });
    }
  });

  describe('schema validator self-test', () => {
    it('reports a misspelt field that the generated schemas would otherwise accept', async () => {
      const objs = await render(cases.find((c) => c.label === 'env/production.yaml')!);
      const rollout = structuredClone(workloadOf(objs));
      asObj(asObj(rollout.spec).strategy).blueGreen = { ...asObj(asObj(asObj(rollout.spec).strategy).blueGreen), autoPromotionEnable: false };
      expect((await validateObject(rollout)).join()).to.include('unknown field /spec/strategy/blueGreen/autoPromotionEnable');
    });
    it('reports an unknown kind', async () => {
      expect(await validateObject({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } })).to.deep.equal([
        'no schema for example.com/v1 Widget',
      ]);
    });
  });
});
