// The Helm chart, proven offline: the real helm binary renders every combination that matters, every object is
// validated against its schema (custom resources included, unknown kinds and fields fail), and policy
// assertions run over the rendered output. Each combination is rendered once and cached.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import { chartDir, describe as name, envFiles, helmFails, lintChart, renderChart, validateObject } from './render.js';
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
          // The analysis queries need the scraped series, so it is on exactly when monitoring is.
          'rollout.analysis.enabled': String(monitoring),
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
for (const [env, exp] of Object.entries(envExpect)) {
  cases.push({ label: `env/${env}.yaml`, files: [path.join(chartDir, 'env', `${env}.yaml`)], set: {}, hasDb: true, ingress: true, ...exp });
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
    for (const files of [[], ...envFiles.map((f) => [f])]) {
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
        expect(kinds.has('AnalysisTemplate')).to.equal(c.rollout && c.monitoring);
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
            expect(image, where).to.match(/^[^:@]+(:[^:@/]+)(@sha256:[a-f0-9]{64})?$/);
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
        const [ctr] = asArr(spec.containers);
        const preStop = asObj(asObj(ctr!.lifecycle).preStop);
        const sleep = preStop.sleep !== undefined ? Number(asObj(preStop.sleep).seconds) : Number(asArr(asObj(preStop.exec).command)[1] ?? 0);
        const cm = find(objs, 'ConfigMap', w.metadata.name);
        const data = asObj(cm?.data) as Record<string, string>;
        const total = sleep + seconds(data.SHUTDOWN_DRAIN_DELAY!) + seconds(data.SHUTDOWN_TIMEOUT!);
        expect(Number(spec.terminationGracePeriodSeconds)).to.be.greaterThan(total);
        expect(sleep).to.be.greaterThan(0);
      });

      it('renders contract env vars with units; DATABASE_URL only ever from a Secret', () => {
        const w = workloadOf(objs);
        const cm = find(objs, 'ConfigMap', w.metadata.name);
        const data = asObj(cm?.data) as Record<string, string>;
        expect(data.PORT).to.equal('8080');
        for (const k of ['SHUTDOWN_DRAIN_DELAY', 'SHUTDOWN_TIMEOUT', 'DB_CONN_MAX_LIFETIME', 'DB_ACQUIRE_TIMEOUT', 'RATE_LIMIT_REDIS_TIMEOUT']) {
          expect(data[k], k).to.match(/^\d+(ms|s)$/);
        }
        expect(data, 'no secret in the ConfigMap').to.not.have.property('DATABASE_URL');
        expect(asObj(podTemplate(w).metadata).annotations).to.have.property('checksum/config').that.matches(/^[a-f0-9]{64}$/);
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
          expect(asArr(asObj(s.spec).ports).map((p) => p.targetPort)).to.deep.equal(['http']);
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
        const analyses = ['prePromotionAnalysis', 'postPromotionAnalysis'].map((k) => asObj(bg[k]));
        if (!c.monitoring) {
          expect(bg).to.not.have.property('prePromotionAnalysis');
          return;
        }
        for (const a of analyses) {
          const templates = asArr(a.templates);
          expect(templates).to.have.length(1);
          const tpl = find(objs, 'AnalysisTemplate', String(templates[0]!.templateName));
          expect(tpl, String(templates[0]!.templateName)).to.not.equal(undefined);
          const declared = asArr(asObj(tpl!.spec).args).map((x) => x.name);
          const passed = asArr(a.args);
          expect(passed.map((x) => x.name)).to.have.members(declared as string[]);
          expect(asObj(passed.find((x) => x.name === 'pod-template-hash')?.valueFrom)).to.deep.equal({ podTemplateHashValue: 'Latest' });
          const svcArg = String(passed.find((x) => x.name === 'service-name')?.value);
          expect(find(objs, 'Service', svcArg), 'service-name arg names the scraped Service').to.not.equal(undefined);
          for (const m of asArr(asObj(tpl!.spec).metrics)) {
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
        expect(a['helm.sh/hook']).to.equal('pre-install,pre-upgrade');
        expect(a['argocd.argoproj.io/hook']).to.equal('PreSync');
        expect(a['helm.sh/hook-delete-policy']).to.equal('before-hook-creation,hook-succeeded');
        expect(asObj(job.spec).backoffLimit).to.be.a('number');
        expect(asObj(job.spec).activeDeadlineSeconds).to.be.a('number');
        const spec = podSpec(job);
        const [ctr] = asArr(spec.containers);
        const [appCtr] = asArr(podSpec(workloadOf(objs)).containers);
        expect(ctr!.image).to.equal(appCtr!.image);
        expect([...asArr(ctr!.command), ...asArr(ctr!.args)]).to.deep.equal(['node', 'dist/service/migrate.js']);
        expect(ctr!.securityContext).to.deep.equal(appCtr!.securityContext);
        const weight = (o: K8sObject): number => Number(o.metadata.annotations?.['helm.sh/hook-weight'] ?? NaN);
        const wave = (o: K8sObject): number => Number(o.metadata.annotations?.['argocd.argoproj.io/sync-wave'] ?? NaN);
        const before = (o: K8sObject | undefined, what: string): void => {
          expect(o, what).to.not.equal(undefined);
          expect(isHook(o!), `${what} is a pre-install hook`).to.equal(true);
          expect(o!.metadata.annotations?.['argocd.argoproj.io/hook'], what).to.equal('PreSync');
          expect(weight(o!), `${what} helm weight`).to.be.lessThan(weight(job));
          expect(wave(o!), `${what} argo wave`).to.be.lessThan(wave(job));
        };
        before(find(objs, 'ServiceAccount', String(spec.serviceAccountName)), 'Job ServiceAccount');
        expect(JSON.stringify(spec), 'no ConfigMap (ordinary resource) referenced by the hook').to.not.include('configMapRef');
        const secretName = String(asObj(asObj(asArr(ctr!.env).find((e) => e.name === 'DATABASE_URL')?.valueFrom).secretKeyRef).name);
        if (c.externalSecret) {
          const es = byKind(objs, 'ExternalSecret').find((e) => asObj(asObj(e.spec).target).name === secretName);
          before(es, 'ExternalSecret producing the Secret');
          const store = asObj(asObj(es!.spec).secretStoreRef);
          const ss = find(objs, String(store.kind), String(store.name));
          before(ss, 'SecretStore');
          expect(weight(ss!)).to.be.lessThan(weight(es!));
          const jwt = asObj(asObj(asObj(asObj(asObj(ss!.spec).provider).aws).auth).jwt);
          const saName = String(asObj(jwt.serviceAccountRef).name);
          const sa = find(objs, 'ServiceAccount', saName);
          before(sa, 'secrets ServiceAccount');
          expect(weight(sa!)).to.be.lessThan(weight(ss!));
          expect(sa!.metadata.annotations?.['eks.amazonaws.com/role-arn']).to.match(/^arn:aws:iam::\d{12}:role\//);
          expect(asObj(asObj(es!.spec).target).creationPolicy, 'Secret survives hook re-creation').to.equal('Orphan');
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

      itIf(c.monitoring, 'NetworkPolicy: ingress from ingress controller + Prometheus only, egress DNS/PostgreSQL/Redis only', () => {
        const nps = byKind(objs, 'NetworkPolicy');
        expect(nps).to.have.length(1);
        const spec = asObj(nps[0]!.spec);
        expect(spec.policyTypes).to.deep.equal(['Ingress', 'Egress']);
        const [ing] = asArr(spec.ingress);
        expect(asArr(ing!.from).length).to.be.at.least(2);
        expect(asArr(ing!.ports)).to.deep.equal([{ protocol: 'TCP', port: 'http' }]);
        const ports = asArr(spec.egress).flatMap((e) => asArr(e.ports).map((p) => Number(p.port)));
        expect(new Set(ports)).to.deep.equal(new Set([53, 5432, 6379]));
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
      expect(asObj(find(objs, 'ConfigMap', 'users-service')?.data).REDIS_URL).to.equal('redis://redis:6379');
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

  describe('values validation (values.schema.json and template guards)', () => {
    const rejects: [string, Record<string, string>, RegExp][] = [
      ['replicaCount: "two"', { replicaCount: 'two' }, /replicaCount.*(string|integer)/],
      ['an unknown top-level key', { replicas: '3' }, /additional propert.*replicas/],
      ['an unknown nested key', { 'rollout.autoPromotion': 'true' }, /additional propert.*autoPromotion/],
      ['image.tag latest', { 'image.tag': 'latest' }, /\/image\/tag/],
      ['redis.url with credentials', { 'redis.url': 'redis://:secret@redis:6379' }, /redis\.url|pattern/],
      ['DATABASE_URL in extraEnv', { 'extraEnv[0].name': 'DATABASE_URL', 'extraEnv[0].value': 'x' }, /extraEnv/],
      ['a grace period not above preStop + drain + timeout', { 'shutdown.terminationGracePeriodSeconds': '40' }, /terminationGracePeriodSeconds/],
      ['analysis without the ServiceMonitor', { 'rollout.enabled': 'true' }, /serviceMonitor/],
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
