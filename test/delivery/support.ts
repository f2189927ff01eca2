// Shared helpers for the delivery tests (Argo CD, skaffold/kind, CI workflow).
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { repoRoot } from '../../scripts/k8s-tools.js';
import { parseManifests } from '../chart/render.js';
import type { K8sObject } from '../chart/render.js';

export { repoRoot };
export type Obj = Record<string, unknown>;
export const asObj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
export const asArr = (v: unknown): unknown[] => (Array.isArray(v) ? (v as unknown[]) : []);
export const asObjArr = (v: unknown): Obj[] => asArr(v).map(asObj);
/** A string (or number) field as a string; anything else becomes `fallback`. */
export const str = (v: unknown, fallback = ''): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : fallback);

export const repoPath = (...parts: string[]): string => path.join(repoRoot, ...parts);
export const readText = (rel: string): string => readFileSync(repoPath(rel), 'utf8');
export const readYaml = (rel: string): unknown => parseYaml(readText(rel)) as unknown;
export const readManifests = (rel: string): K8sObject[] => parseManifests(readText(rel));

/** `group` of an apiVersion ("" for the core group). */
export const groupOf = (apiVersion: string): string => (apiVersion.includes('/') ? apiVersion.split('/')[0]! : '');

/** "apps/Deployment" style key for a group/kind pair. */
export const gk = (group: string, kind: string): string => `${group}/${kind}`;

// ---------------------------------------------------------------------------------------------------------------
// Argo CD sync windows: which minutes of a week a set of windows covers.

const DAY_MINUTES = 24 * 60;
export const WEEK_MINUTES = 7 * DAY_MINUTES;

function cronField(field: string, min: number, max: number): Set<number> {
  const out = new Set<number>();
  for (const part of field.split(',')) {
    if (part === '*') {
      for (let i = min; i <= max; i++) out.add(i);
      continue;
    }
    const range = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!range) throw new Error(`unsupported cron field "${field}"`);
    const from = Number(range[1]);
    const to = range[2] === undefined ? from : Number(range[2]);
    for (let i = from; i <= to; i++) out.add(i);
  }
  return out;
}

function durationMinutes(d: string): number {
  const m = /^(\d+)(m|h)$/.exec(d);
  if (!m) throw new Error(`unsupported duration "${d}"`);
  return Number(m[1]) * (m[2] === 'h' ? 60 : 1);
}

/**
 * Minutes of the week (0 = Sunday 00:00, cron day-of-week numbering) covered by windows with schedules of the
 * form "M H * * DOW" (the only form used here; anything else throws rather than being misread).
 */
export function coveredMinutes(windows: { schedule: string; duration: string }[]): Set<number> {
  const covered = new Set<number>();
  for (const w of windows) {
    const fields = w.schedule.trim().split(/\s+/);
    if (fields.length !== 5 || fields[2] !== '*' || fields[3] !== '*') throw new Error(`unsupported schedule "${w.schedule}"`);
    const minutes = cronField(fields[0]!, 0, 59);
    const hours = cronField(fields[1]!, 0, 23);
    const days = cronField(fields[4]!, 0, 6);
    const length = durationMinutes(w.duration);
    for (const d of days) for (const h of hours) for (const m of minutes) {
      const start = d * DAY_MINUTES + h * 60 + m;
      for (let i = 0; i < length; i++) covered.add((start + i) % WEEK_MINUTES);
    }
  }
  return covered;
}

// ---------------------------------------------------------------------------------------------------------------
// A stub Kubernetes API server: just enough discovery for kubectl to map kinds to resources, and 404 for every
// object, so `kubectl apply --dry-run=client` runs for real without a cluster.

export interface StubResource {
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

export interface StubServer {
  url: string;
  requests: string[];
  close(): Promise<void>;
}

export async function startStubApiServer(resources: StubResource[]): Promise<StubServer> {
  const verbs = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
  const lists = new Map<string, Obj[]>();
  for (const r of resources) {
    const gv = r.group === '' ? r.version : `${r.group}/${r.version}`;
    const list = lists.get(gv) ?? [];
    list.push({ name: r.plural, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs });
    lists.set(gv, list);
  }
  const groups = [...lists.keys()].filter((gv) => gv.includes('/'));
  const docs = new Map<string, unknown>([
    ['/api', { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] }],
    [
      '/apis',
      {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: groups.map((gv) => {
          const [name, version] = gv.split('/') as [string, string];
          return { name, versions: [{ groupVersion: gv, version }], preferredVersion: { groupVersion: gv, version } };
        }),
      },
    ],
  ]);
  for (const [gv, list] of lists) {
    docs.set(gv.includes('/') ? `/apis/${gv}` : `/api/${gv}`, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv, resources: list });
  }
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const p = new URL(req.url ?? '/', 'http://stub').pathname;
    requests.push(`${req.method ?? '?'} ${p}`);
    const doc = docs.get(p);
    if (req.method === 'GET' && doc !== undefined) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(doc));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: `${p} not found` }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => {
          if (err) reject(err);
          else resolve();
        });
      }),
  };
}

/** A kubeconfig pointing at `server`, with a dummy token (the stub ignores authentication). */
export function kubeconfigFor(server: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '  - name: stub',
    `    cluster: {server: "${server}"}`,
    'users:',
    '  - name: stub',
    '    user: {token: stub}',
    'contexts:',
    '  - name: stub',
    '    context: {cluster: stub, user: stub}',
    'current-context: stub',
    '',
  ].join('\n');
}
