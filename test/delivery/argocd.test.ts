// Argo CD: the project and the two Applications, proven against the chart they deploy.
// - every object validates against @kubernetes-models/argo-cd (strict: unknown fields fail);
// - each Application's chart path and values files exist (resolved the way Argo CD resolves them);
// - the project allows exactly the destinations the Applications use, and exactly the kinds the chart renders
//   for staging and production (rendered here with the real helm, the env file and the image tag file);
// - replica counts owned by the HPA are ignored; the production sync windows cover exactly the off-hours.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { chartDir, describe as name, renderChart, validateObject } from '../chart/render.js';
import type { K8sObject } from '../chart/render.js';
import { WEEK_MINUTES, str, asArr, asObj, asObjArr, coveredMinutes, gk, groupOf, readManifests, readYaml, repoPath, repoRoot } from './support.js';

const ENVS = ['staging', 'production'] as const;
type Env = (typeof ENVS)[number];

const project = readManifests('argocd/project.yaml')[0]!;
const apps = new Map<Env, K8sObject>(ENVS.map((env) => [env, readManifests(`argocd/${env}/application.yaml`)[0]!]));
const app = (env: Env): K8sObject => apps.get(env)!;
const appsOfApps = readManifests('argocd/apps.yaml');
const spec = (o: K8sObject): Record<string, unknown> => asObj(o.spec);
const sources = (o: K8sObject): Record<string, unknown>[] => asObjArr(spec(o).sources);
/** The chart source (the one with a path). */
const source = (o: K8sObject): Record<string, unknown> => sources(o).find((x) => x.path !== undefined) ?? {};
/** The `ref` source valueFiles name as $<ref>. */
const refSource = (o: K8sObject, ref: string): Record<string, unknown> | undefined => sources(o).find((x) => x.ref === ref);
const helm = (o: K8sObject): Record<string, unknown> => asObj(source(o).helm);
const valueFiles = (o: K8sObject): string[] => asArr(helm(o).valueFiles).map(String);
/**
 * Argo CD resolves valueFiles relative to the chart source's path, and `$ref/...` relative to the root of the ref
 * source's checkout. Here both sources are this repository, so both resolve into the working tree.
 */
const resolveValueFile = (o: K8sObject, f: string): string => {
  const m = /^\$([a-z0-9-]+)\/(.*)$/.exec(f);
  if (m) {
    expect(refSource(o, m[1]!), `source with ref ${m[1]!}`).to.not.equal(undefined);
    return path.resolve(repoRoot, m[2]!);
  }
  return path.resolve(repoRoot, String(source(o).path), f);
};
const releaseFile = (env: Env): Record<string, unknown> => asObj(asObj(readYaml(`argocd/${env}/image.yaml`)).image);

const rendered = new Map<Env, Promise<K8sObject[]>>();
function renderEnv(env: Env): Promise<K8sObject[]> {
  let p = rendered.get(env);
  if (!p) {
    const a = app(env);
    p = renderChart(
      valueFiles(a).map((f) => resolveValueFile(a, f)),
      {},
      { release: String(helm(a).releaseName), namespace: String(asObj(spec(a).destination).namespace) },
    );
    rendered.set(env, p);
  }
  return p;
}

describe('Argo CD (argocd/)', function () {
  this.timeout(60_000);

  it('argocd/ holds exactly the app of apps, the project, one Application per environment and the release files', () => {
    const files = (dir: string): string[] =>
      readdirSync(dir).flatMap((f) => (statSync(path.join(dir, f)).isDirectory() ? files(path.join(dir, f)) : [path.join(dir, f)]));
    const rel = files(repoPath('argocd')).map((f) => path.relative(repoRoot, f)).sort();
    expect(rel).to.deep.equal([
      'argocd/apps.yaml',
      'argocd/production/application.yaml',
      'argocd/production/image.yaml',
      'argocd/project.yaml',
      'argocd/staging/application.yaml',
      'argocd/staging/image.yaml',
    ]);
  });

  it('every Argo CD object validates against its schema (no unknown fields)', async () => {
    const objs = [project, ...apps.values(), ...appsOfApps];
    expect(objs.map((o) => `${o.apiVersion} ${o.kind}`)).to.deep.equal([
      'argoproj.io/v1alpha1 AppProject',
      'argoproj.io/v1alpha1 Application',
      'argoproj.io/v1alpha1 Application',
      'argoproj.io/v1alpha1 AppProject',
      'argoproj.io/v1alpha1 Application',
    ]);
    const errors: string[] = [];
    for (const o of objs) for (const e of await validateObject(o)) errors.push(`${name(o)}: ${e}`);
    expect(errors).to.deep.equal([]);
  });

  it('the strict validator catches a misspelt Application field (negative control)', async () => {
    const broken = structuredClone(app('staging'));
    asObj(asObj(broken.spec).syncPolicy).automated = { prune: true, selfHeel: true };
    expect((await validateObject(broken)).join()).to.include('unknown field /spec/syncPolicy/automated/selfHeel');
  });

  it('the project lives in argocd and restricts sources to this repository', () => {
    expect(project.metadata.namespace).to.equal('argocd');
    expect(spec(project).sourceRepos).to.deep.equal(['https://github.com/example/users-service.git']);
    for (const env of ENVS) {
      expect(app(env).metadata.namespace).to.equal('argocd');
      expect(spec(app(env)).project).to.equal(project.metadata.name);
      expect(spec(project).sourceRepos).to.include(source(app(env)).repoURL);
    }
  });

  it('the project allows exactly the destinations the Applications use', () => {
    const key = (d: Record<string, unknown>): string => JSON.stringify({ name: d.name, server: d.server, namespace: d.namespace });
    const allowed = asObjArr(spec(project).destinations).map(key).sort();
    const used = ENVS.map((env) => key(asObj(spec(app(env)).destination))).sort();
    expect(allowed).to.deep.equal(used);
    for (const env of ENVS) {
      const d = asObj(spec(app(env)).destination);
      expect(d.namespace).to.equal(`users-service-${env}`);
      expect(d.name, 'cluster by name, not URL').to.equal(`platform-${env}`);
      expect(d).to.not.have.property('server');
    }
  });

  for (const env of ENVS) {
    describe(`Application users-service-${env}`, () => {
      it('points at the chart, its env file and the release file, all present in the repository', () => {
        const a = app(env);
        expect(a.metadata.name).to.equal(`users-service-${env}`);
        expect(spec(a), 'multi-source only').to.not.have.property('source');
        expect(path.resolve(repoRoot, String(source(a).path))).to.equal(chartDir);
        expect(existsSync(path.join(chartDir, 'Chart.yaml'))).to.equal(true);
        expect(helm(a).releaseName).to.equal('users-service');
        expect(valueFiles(a)).to.deep.equal([`env/${env}.yaml`, `$values/argocd/${env}/image.yaml`]);
        for (const f of valueFiles(a)) {
          const abs = resolveValueFile(a, f);
          expect(abs.startsWith(repoRoot + path.sep), `${f} stays inside the repository`).to.equal(true);
          expect(existsSync(abs), `${f} exists`).to.equal(true);
        }
      });

      it('the release file sets image.tag (a full git sha) and image.digest only', () => {
        const file = readYaml(`argocd/${env}/image.yaml`);
        expect(Object.keys(asObj(file))).to.deep.equal(['image']);
        expect(Object.keys(releaseFile(env))).to.deep.equal(['tag', 'digest']);
        expect(String(releaseFile(env).tag)).to.match(/^[0-9a-f]{40}$/);
        expect(String(releaseFile(env).digest)).to.match(/^sha256:[0-9a-f]{64}$/);
      });

      it('the release file comes from main (the $values ref), whatever revision the chart comes from', () => {
        const values = refSource(app(env), 'values');
        expect(values).to.deep.equal({ repoURL: source(app(env)).repoURL, targetRevision: 'main', ref: 'values' });
      });

      it('automated sync with prune and self-heal, CreateNamespace with the restricted Pod Security labels, cascade delete', () => {
        const a = app(env);
        const policy = asObj(spec(a).syncPolicy);
        expect(policy.automated).to.deep.equal({ prune: true, selfHeal: true });
        const options = asArr(policy.syncOptions);
        expect(options).to.include('CreateNamespace=true');
        expect(options).to.include('RespectIgnoreDifferences=true');
        const labels = asObj(asObj(policy.managedNamespaceMetadata).labels);
        expect(labels).to.include({
          'pod-security.kubernetes.io/enforce': 'restricted',
          'pod-security.kubernetes.io/audit': 'restricted',
          'pod-security.kubernetes.io/warn': 'restricted',
        });
        expect(a.metadata).to.have.property('finalizers').that.deep.equals(['resources-finalizer.argocd.argoproj.io']);
        expect(spec(a).revisionHistoryLimit).to.be.a('number').within(1, 50);
        expect(asObj(policy.retry).limit).to.be.a('number');
      });

      it('the dev namespace (k8s/dev) carries the same Pod Security labels as the namespace Argo CD creates', () => {
        const ns = readManifests('k8s/dev/00-namespace.yaml')[0]!;
        const argoLabels = asObj(asObj(asObj(spec(app(env)).syncPolicy).managedNamespaceMetadata).labels);
        for (const [k, v] of Object.entries(argoLabels)) if (k.startsWith('pod-security.')) expect(ns.metadata.labels?.[k], k).to.equal(v);
      });

      it('renders with the values Argo CD passes; every rendered object validates; the image is the tag from git', async () => {
        const objs = await renderEnv(env);
        const errors: string[] = [];
        for (const o of objs) for (const e of await validateObject(o)) errors.push(`${name(o)}: ${e}`);
        expect(errors).to.deep.equal([]);
        const digest = String(releaseFile(env).digest);
        const repository = String(asObj(asObj(readYaml(`chart/users-service/env/${env}.yaml`)).image).repository);
        const images = objs.flatMap((o) => {
          const pod = asObj(asObj(asObj(o.spec).template).spec);
          return asObjArr(pod.containers).map((c) => String(c.image));
        });
        expect(images.length).to.be.at.least(2);
        for (const image of images) expect(image).to.equal(`${repository}@${digest}`);
      });

      it('ignoreDifferences covers spec.replicas of the workload the HPA scales (and the chart leaves it unset)', async () => {
        const objs = await renderEnv(env);
        const hpas = objs.filter((o) => o.kind === 'HorizontalPodAutoscaler');
        expect(hpas, 'staging and production autoscale').to.have.length(1);
        const ref = asObj(asObj(hpas[0]!.spec).scaleTargetRef);
        const target = objs.find((o) => o.kind === ref.kind && o.metadata.name === ref.name && o.apiVersion === ref.apiVersion);
        expect(target, 'the HPA target is rendered').to.not.equal(undefined);
        expect(asObj(target!.spec)).to.not.have.property('replicas');
        const ignored = asObjArr(spec(app(env)).ignoreDifferences);
        const rule = ignored.find((d) => d.kind === ref.kind && str(d.group) === groupOf(String(ref.apiVersion)));
        expect(rule, `ignoreDifferences for ${String(ref.kind)}`).to.not.equal(undefined);
        expect(asArr(rule!.jsonPointers)).to.include('/spec/replicas');
        // Both workload kinds are covered, so switching rollout.enabled never makes the HPA and Argo CD fight.
        expect(ignored.map((d) => gk(str(d.group), str(d.kind))).sort()).to.deep.equal(['apps/Deployment', 'argoproj.io/Rollout']);
      });
    });
  }

  it('a release is promoted as a unit: staging follows main, production pins the chart to the commit its image was built from', () => {
    expect(source(app('staging')).targetRevision).to.equal('main');
    const pin = String(source(app('production')).targetRevision);
    expect(pin, 'a full commit sha, never a branch').to.match(/^[0-9a-f]{40}$/);
    // Image tags are the commit they were built from, so chart + values + image of production come from one commit.
    expect(pin).to.equal(String(releaseFile('production').tag));
  });

  it('the app of apps keeps the project and both Applications in step with main, and nothing else', () => {
    const [appsProject, root] = appsOfApps;
    expect(root!.kind).to.equal('Application');
    const src = asObj(spec(root!).source);
    expect(src).to.include({ repoURL: 'https://github.com/example/users-service.git', targetRevision: 'main', path: 'argocd' });
    const include = String(asObj(src.directory).include);
    const globs = /^\{(.*)\}$/.exec(include)![1]!.split(',');
    expect(globs.sort()).to.deep.equal(['production/application.yaml', 'project.yaml', 'staging/application.yaml']);
    expect(asObj(asObj(spec(root!).syncPolicy).automated)).to.deep.equal({ prune: false, selfHeal: true });
    expect(spec(root!).project).to.equal(appsProject!.metadata.name);
    expect(spec(appsProject!).destinations).to.deep.equal([{ name: 'in-cluster', namespace: 'argocd' }]);
    expect(spec(appsProject!).clusterResourceWhitelist).to.deep.equal([]);
    expect(asObjArr(spec(appsProject!).namespaceResourceWhitelist).map((r) => gk(str(r.group), str(r.kind))).sort()).to.deep.equal(['argoproj.io/AppProject', 'argoproj.io/Application']);
  });

  it('namespaceResourceWhitelist is exactly the set of kinds the chart renders for staging and production', async () => {
    const renderedKinds = new Set<string>();
    for (const env of ENVS) for (const o of await renderEnv(env)) renderedKinds.add(gk(groupOf(o.apiVersion), o.kind));
    const whitelisted = asObjArr(spec(project).namespaceResourceWhitelist).map((r) => gk(String(r.group), String(r.kind)));
    expect(new Set(whitelisted).size, 'no duplicates').to.equal(whitelisted.length);
    expect([...whitelisted].sort()).to.deep.equal([...renderedKinds].sort());
    expect(renderedKinds.has('/Namespace'), 'the chart renders no Namespace').to.equal(false);
  });

  it('the only cluster-scoped kind the project admits is Namespace (for CreateNamespace)', () => {
    expect(spec(project).clusterResourceWhitelist).to.deep.equal([{ group: '', kind: 'Namespace' }]);
    expect(spec(project)).to.not.have.property('clusterResourceBlacklist');
  });

  it('the ci role may only sync the applications of this project', () => {
    const roles = asObjArr(spec(project).roles);
    expect(roles.map((r) => r.name)).to.deep.equal(['ci']);
    const policies = asArr(roles[0]!.policies).map((p) => String(p).split(',').map((s) => s.trim()));
    expect(policies).to.deep.equal([['p', `proj:${project.metadata.name}:ci`, 'applications', 'sync', `${project.metadata.name}/*`, 'allow']]);
  });

  it('sync windows deny automated production syncs exactly outside Mon-Fri 09:00-18:00 UTC; manual syncs stay allowed', () => {
    const windows = asObjArr(spec(project).syncWindows);
    expect(windows.length).to.be.at.least(1);
    for (const w of windows) {
      expect(w.kind).to.equal('deny');
      expect(w.applications).to.deep.equal(['users-service-production']);
      expect(w.manualSync).to.equal(true);
      expect(w.timeZone).to.equal('UTC');
      expect(w).to.not.have.property('namespaces');
      expect(w).to.not.have.property('clusters');
    }
    const denied = coveredMinutes(windows.map((w) => ({ schedule: String(w.schedule), duration: String(w.duration) })));
    const mismatches: string[] = [];
    for (let minute = 0; minute < WEEK_MINUTES; minute++) {
      const day = Math.floor(minute / 1440);
      const hour = Math.floor((minute % 1440) / 60);
      const working = day >= 1 && day <= 5 && hour >= 9 && hour < 18;
      if (denied.has(minute) === working) mismatches.push(`day ${day} ${hour}:${String(minute % 60).padStart(2, '0')}`);
    }
    expect(mismatches.slice(0, 5), `${mismatches.length} minutes wrong`).to.deep.equal([]);
  });

  it('the sync window simulation itself detects a gap (negative control)', () => {
    const covered = coveredMinutes([{ schedule: '0 18 * * 1-5', duration: '15h' }]);
    // Saturday 12:00 is not covered by the weekday window alone.
    expect(covered.has(6 * 1440 + 12 * 60)).to.equal(false);
    expect(covered.has(2 * 1440 + 3 * 60)).to.equal(true); // Tuesday 03:00
  });
});
