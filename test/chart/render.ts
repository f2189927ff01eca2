// Reusable helpers for chart tests (also meant for the Argo CD / skaffold tests):
//   renderChart(valuesFiles, set)  -> parsed objects from `helm template` with the real helm binary
//   helmFails(valuesFiles, set)    -> stderr of a render that must fail (schema, `fail`)
//   parseManifests(text)           -> multi-document YAML to objects
//   validateObject(obj)            -> schema validation with kubernetes-models / @kubernetes-models CRDs,
//                                     unknown apiVersion/kind and unknown fields are errors
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Ajv } from 'ajv';
import { parseAllDocuments } from 'yaml';
import { k8sTool, repoRoot } from '../../scripts/k8s-tools.js';

const run = promisify(execFile);

export const chartDir = path.join(repoRoot, 'chart', 'users-service');
export const envFiles = ['dev', 'staging', 'production'].map((e) => path.join(chartDir, 'env', `${e}.yaml`));

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  chart?: string;
  /** Extra raw helm arguments, e.g. ['--kube-version', '1.30.0']. */
  extraArgs?: string[];
}

function helmArgs(valuesFiles: string[], set: Record<string, string>, opts: RenderOptions): string[] {
  const args = ['template', opts.release ?? 'users-service', opts.chart ?? chartDir, '--namespace', opts.namespace ?? 'users-service-test'];
  for (const f of valuesFiles) args.push('--values', f);
  for (const [k, v] of Object.entries(set)) args.push('--set', `${k}=${v}`);
  return [...args, ...(opts.extraArgs ?? [])];
}

export function parseManifests(text: string): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`YAML error: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`not an object: ${JSON.stringify(value)}`);
    objects.push(value as K8sObject);
  }
  return objects;
}

/** `helm template` with the real helm binary; rejects with helm's stderr on failure. */
export async function renderChart(valuesFiles: string[] = [], set: Record<string, string> = {}, opts: RenderOptions = {}): Promise<K8sObject[]> {
  const helm = await k8sTool('helm');
  try {
    const { stdout } = await run(helm, helmArgs(valuesFiles, set, opts), { maxBuffer: 64 * 1024 * 1024 });
    return parseManifests(stdout);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`helm template failed: ${stderr || String(err)}`);
  }
}

/** Renders expecting failure; resolves with helm's stderr, rejects if the render succeeded. */
export async function helmFails(valuesFiles: string[] = [], set: Record<string, string> = {}, opts: RenderOptions = {}): Promise<string> {
  const helm = await k8sTool('helm');
  try {
    await run(helm, helmArgs(valuesFiles, set, opts), { maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    return (err as { stderr?: string }).stderr ?? String(err);
  }
  throw new Error('helm template succeeded but was expected to fail');
}

/** `helm lint --strict` for one set of values files; resolves with the output, rejects on failure. */
export async function lintChart(valuesFiles: string[] = [], chart = chartDir): Promise<string> {
  const helm = await k8sTool('helm');
  const args = ['lint', '--strict', chart, ...valuesFiles.flatMap((f) => ['--values', f])];
  try {
    const { stdout } = await run(helm, args);
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    throw new Error(`helm lint failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Schema validation.

interface ModelClass {
  apiVersion: string;
  kind: string;
  prototype: { validate(this: unknown): void };
}

/** Where each API group's models live. Core/built-in groups come from kubernetes-models. */
function candidateModules(apiVersion: string, kind: string): string[] {
  const [group, version] = apiVersion.includes('/') ? (apiVersion.split('/') as [string, string]) : ['', apiVersion];
  if (!/^[a-z0-9.-]*$/.test(group) || !/^v[a-z0-9]+$/.test(version) || !/^[A-Z][A-Za-z0-9]*$/.test(kind)) return [];
  if (group === '') return [`kubernetes-models/${version}/${kind}`];
  const crdPackages: Record<string, string[]> = {
    'argoproj.io': ['@kubernetes-models/argo-rollouts', '@kubernetes-models/argo-cd'],
    'external-secrets.io': ['@kubernetes-models/external-secrets'],
    'generators.external-secrets.io': ['@kubernetes-models/external-secrets'],
    'monitoring.coreos.com': ['@kubernetes-models/prometheus-operator'],
  };
  const pkgs = crdPackages[group] ?? (group.includes('.') && !group.endsWith('.k8s.io') ? [] : ['kubernetes-models']);
  return pkgs.map((p) => `${p}/${group}/${version}/${kind}`);
}

const modelCache = new Map<string, Promise<ModelClass | undefined>>();

async function loadModel(apiVersion: string, kind: string): Promise<ModelClass | undefined> {
  for (const spec of candidateModules(apiVersion, kind)) {
    try {
      const mod = (await import(spec)) as Record<string, unknown>;
      const cls = mod[kind] as Partial<ModelClass> | undefined;
      if (cls?.apiVersion === apiVersion && cls.kind === kind) return cls as ModelClass;
    } catch {
      // not in this package: try the next one
    }
  }
  return undefined;
}

export function modelFor(apiVersion: string, kind: string): Promise<ModelClass | undefined> {
  const key = `${apiVersion}/${kind}`;
  let p = modelCache.get(key);
  if (!p) {
    p = loadModel(apiVersion, kind);
    modelCache.set(key, p);
  }
  return p;
}

/**
 * Runs the model's compiled JSON-schema validator on a Proxy of the object and records which properties the
 * validator looked at. The generated schemas do not forbid additional properties, so a misspelt field
 * (`autoPromotionEnable`) would otherwise pass; any own key the validator never read is reported as unknown.
 * Maps (labels, annotations, ConfigMap data) are enumerated by the validator, so their keys count as read.
 */
function validateStrict(cls: ModelClass, data: unknown): string[] {
  const read = new Map<string, Set<string>>();
  const proxies = new Map<string, unknown>();
  const keys = new Map<string, string[]>();
  const wrap = (value: unknown, at: string): unknown => {
    if (value === null || typeof value !== 'object') return value;
    const cached = proxies.get(at);
    if (cached !== undefined) return cached;
    const seen = new Set<string>();
    read.set(at, seen);
    if (!Array.isArray(value)) keys.set(at, Object.keys(value));
    const proxy = new Proxy(value, {
      get(target, prop, receiver) {
        const v: unknown = Reflect.get(target, prop, receiver);
        if (typeof prop !== 'string') return v;
        seen.add(prop);
        return wrap(v, `${at}/${prop}`);
      },
      has(target, prop) {
        if (typeof prop === 'string') seen.add(prop);
        return Reflect.has(target, prop);
      },
      ownKeys(target) {
        for (const k of Object.keys(target)) seen.add(k);
        return Reflect.ownKeys(target);
      },
    });
    proxies.set(at, proxy);
    return proxy;
  };
  const errors: string[] = [];
  try {
    cls.prototype.validate.call(wrap(data, ''));
  } catch (err) {
    errors.push((err as Error).message);
  }
  for (const [at, own] of keys) {
    const seen = read.get(at);
    for (const k of own) if (!seen?.has(k)) errors.push(`unknown field ${at}/${k}`);
  }
  return errors;
}

// ---------------------------------------------------------------------------------------------------------------------
// CRDs without a kubernetes-models package: the openAPIV3Schema vendored from the project's published CRD
// (test/chart/fixtures/<group>_<version>_<Kind>.schema.json, with its source commit in $comment).

interface OpenApiSchema {
  type?: string;
  properties?: Record<string, OpenApiSchema>;
  items?: OpenApiSchema;
  additionalProperties?: boolean | OpenApiSchema;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

const vendoredCrds: Record<string, string> = { 'kyverno.io/v1/Policy': 'kyverno.io_v1_Policy.schema.json' };
const vendoredValidators = new Map<string, { schema: OpenApiSchema; validate: ReturnType<Ajv['compile']> }>();

function vendoredValidator(apiVersion: string, kind: string): { schema: OpenApiSchema; validate: ReturnType<Ajv['compile']> } | undefined {
  const key = `${apiVersion}/${kind}`;
  const file = vendoredCrds[key];
  if (file === undefined) return undefined;
  let v = vendoredValidators.get(key);
  if (!v) {
    const doc = JSON.parse(readFileSync(path.join(import.meta.dirname, 'fixtures', file), 'utf8')) as { openAPIV3Schema: OpenApiSchema };
    // strict: false - the CRD schema carries x-kubernetes-* extensions ajv does not know.
    const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
    v = { schema: doc.openAPIV3Schema, validate: ajv.compile(doc.openAPIV3Schema) };
    vendoredValidators.set(key, v);
  }
  return v;
}

/** Fields the structural schema does not declare (the API server would prune them silently). */
function unknownFields(schema: OpenApiSchema | undefined, value: unknown, at: string): string[] {
  if (schema === undefined || schema['x-kubernetes-preserve-unknown-fields'] === true || value === null || typeof value !== 'object') return [];
  if (Array.isArray(value)) return value.flatMap((v, i) => unknownFields(schema.items, v, `${at}/${i}`));
  const props = schema.properties;
  if (props === undefined) {
    const ap = schema.additionalProperties;
    return typeof ap === 'object' ? Object.entries(value).flatMap(([k, v]) => unknownFields(ap, v, `${at}/${k}`)) : [];
  }
  return Object.entries(value).flatMap(([k, v]) => (props[k] === undefined ? [`unknown field ${at}/${k}`] : unknownFields(props[k], v, `${at}/${k}`)));
}

/** Validation errors of one object ([] = valid). An apiVersion/kind without a model is an error. */
export async function validateObject(obj: K8sObject): Promise<string[]> {
  const vendored = vendoredValidator(obj.apiVersion, obj.kind);
  if (vendored) {
    const errors = vendored.validate(obj) ? [] : (vendored.validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`);
    return [...errors, ...unknownFields(vendored.schema, obj, '')];
  }
  const cls = await modelFor(obj.apiVersion, obj.kind);
  if (!cls) return [`no schema for ${obj.apiVersion} ${obj.kind}`];
  return validateStrict(cls, obj);
}

export function describe(obj: K8sObject): string {
  return `${obj.kind}/${obj.metadata.name}`;
}
