// The production image run the way the chart runs it, against the host's PostgreSQL and Redis.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import knexFactory from 'knex';
import { parse } from 'yaml';
import { repoRoot } from '../../scripts/k8s-tools.js';
import { LOCAL_IMAGE } from '../../scripts/image/build.js';
import { docker, dockerClient } from '../../scripts/image/docker.js';
import { ADMIN_URL } from '../support/database.js';
import { freePort, sleep } from '../ratelimit/support.js';
import { send } from '../reliability/support.js';

export const IMAGE = process.env.IMAGE ?? LOCAL_IMAGE;
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

interface ChartValues {
  resources: { limits: { memory: string } };
  securityContext: { runAsUser: number; runAsGroup: number };
  tmpSizeLimit: string;
  nodeOptions: string;
  shutdown: { preStopSleepSeconds: number; drainDelaySeconds: number; timeoutSeconds: number; terminationGracePeriodSeconds: number };
}

/** The chart's defaults: the pod the image must work in. */
export const chart = parse(readFileSync(path.join(repoRoot, 'chart/users-service/values.yaml'), 'utf8')) as ChartValues;

/** Kubernetes quantities (Mi) as docker sizes (m). */
function dockerSize(quantity: string): string {
  const match = /^(\d+)Mi$/.exec(quantity);
  if (!match?.[1]) throw new Error(`unexpected quantity ${quantity}`);
  return `${match[1]}m`;
}

/**
 * The chart's container securityContext and limits as `docker run` flags: read-only root with only /tmp
 * writable, the chart's numeric non-root user, no capabilities, no privilege escalation, the memory limit.
 * Host networking: PostgreSQL and Redis are on the host's loopback.
 */
export function chartFlags(): string[] {
  const { runAsUser, runAsGroup } = chart.securityContext;
  return [
    '--read-only',
    '--tmpfs', `/tmp:rw,size=${dockerSize(chart.tmpSizeLimit)},mode=1777`,
    '--user', `${runAsUser}:${runAsGroup}`,
    '--cap-drop', 'ALL',
    '--security-opt', 'no-new-privileges',
    '--memory', dockerSize(chart.resources.limits.memory),
    '--network', 'host',
  ];
}

/** The environment as `--env` flags, on top of what the chart's ConfigMap always sets (the heap cap). */
export function envFlags(env: Record<string, string>): string[] {
  return Object.entries({ NODE_OPTIONS: chart.nodeOptions, ...env }).flatMap(([k, v]) => ['--env', `${k}=${v}`]);
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `docker run --rm` with the chart's flags, to completion. */
export function runOnce(env: Record<string, string>, args: string[] = []): RunResult {
  const result = spawnSync(dockerClient().bin, ['run', '--rm', ...chartFlags(), ...envFlags(env), IMAGE, ...args], { encoding: 'utf8' });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A database that exists but has never been migrated: the image's own migration step fills it. */
export async function createEmptyDatabase(): Promise<{ url: string; tables(): Promise<string[]>; drop(): Promise<void> }> {
  const name = `users_container_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: ADMIN_URL, pool: { min: 0, max: 1 } });
  await admin.raw(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const db = knexFactory({ client: 'pg', connection: url.toString(), pool: { min: 0, max: 2 } });
  return {
    url: url.toString(),
    async tables() {
      const { rows } = await db.raw<{ rows: { tablename: string }[] }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
      return rows.map((r) => r.tablename).sort();
    },
    async drop() {
      await db.destroy();
      await admin.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.destroy();
    },
  };
}

export interface ServiceContainer {
  name: string;
  port: number;
  /** The container's stdout so far, one parsed JSON log line each. */
  logLines(): Record<string, unknown>[];
  /** `docker stop -t <grace>`: SIGTERM, then SIGKILL after the pod's grace period. Resolves when it returns. */
  stop(): Promise<void>;
  exitCode(): number;
  remove(): void;
}

/** Starts the image's default command (the service) detached, and waits until /health answers. */
export async function startService(env: Record<string, string>): Promise<ServiceContainer> {
  const name = `users-service-test-${process.pid}-${randomBytes(3).toString('hex')}`;
  const port = await freePort();
  // METRICS_PORT: the metrics listener (own port) must not collide with anything else on the host network.
  const fullEnv = { PORT: String(port), METRICS_PORT: String(await freePort()), REDIS_URL, ...env };
  docker(['run', '--detach', '--name', name, ...chartFlags(), ...envFlags(fullEnv), IMAGE]);
  const container: ServiceContainer = {
    name,
    port,
    logLines: () =>
      docker(['logs', name])
        .split('\n')
        .flatMap((line) => {
          try {
            return [JSON.parse(line) as Record<string, unknown>];
          } catch {
            return [];
          }
        }),
    stop: () =>
      new Promise((resolve, reject) => {
        const child = spawn(dockerClient().bin, ['stop', '--time', String(chart.shutdown.terminationGracePeriodSeconds), name], { stdio: 'ignore' });
        child.on('error', reject);
        child.on('exit', () => { resolve(); });
      }),
    exitCode: () => Number(docker(['inspect', '--format', '{{.State.ExitCode}}', name]).trim()),
    remove: () => { spawnSync(dockerClient().bin, ['rm', '--force', name], { stdio: 'ignore' }); },
  };
  for (let i = 0; i < 200; i++) {
    const reply = await send(port, { path: '/health' }).catch(() => undefined);
    if (reply?.status === 200) return container;
    if (docker(['inspect', '--format', '{{.State.Running}}', name]).trim() !== 'true') break;
    await sleep(100);
  }
  const logs = spawnSync(dockerClient().bin, ['logs', name], { encoding: 'utf8' });
  container.remove();
  throw new Error(`the service container did not become healthy:\n${logs.stdout}${logs.stderr}`);
}

export interface InstalledPackage {
  /** Relative to /app, e.g. node_modules/@koa/router or node_modules/a/node_modules/b. */
  path: string;
  name: string;
  version: string;
}

/** Every package installed in the image's /app/node_modules (nested ones too), read inside the image. */
export function installedPackages(): InstalledPackage[] {
  const script = `
    const fs = require('node:fs'); const path = require('node:path');
    const found = [];
    const walk = (dir) => {
      if (!fs.existsSync(dir)) return;
      for (const entry of fs.readdirSync(dir)) {
        if (entry.startsWith('.')) continue;
        const full = path.join(dir, entry);
        if (entry.startsWith('@')) { walk(full); continue; }
        const manifest = path.join(full, 'package.json');
        if (!fs.existsSync(manifest)) continue;
        const { name, version } = JSON.parse(fs.readFileSync(manifest, 'utf8'));
        found.push({ path: path.relative('/app', full), name, version });
        walk(path.join(full, 'node_modules'));
      }
    };
    walk('/app/node_modules');
    process.stdout.write(JSON.stringify(found));`;
  return JSON.parse(docker(['run', '--rm', '--network', 'none', IMAGE, '-e', script])) as InstalledPackage[];
}

/** Every path in the image's file system (from `docker export`), without the leading slash. */
export function imageFiles(): string[] {
  const id = docker(['create', IMAGE]).trim();
  try {
    const listing = spawnSync('sh', ['-c', '"$0" export "$1" | tar -t', dockerClient().bin, id], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
    if (listing.status !== 0) throw new Error(`docker export | tar -t failed: ${listing.stderr}`);
    return listing.stdout.split('\n').filter((p) => p !== '').map((p) => p.replace(/^\.?\//, '').replace(/\/$/, ''));
  } finally {
    docker(['rm', id]);
  }
}

export function imageSize(ref: string): number {
  return Number(docker(['image', 'inspect', '--format', '{{.Size}}', ref]).trim());
}

export function imageLabel(ref: string, label: string): string {
  return docker(['image', 'inspect', '--format', `{{index .Config.Labels "${label}"}}`, ref]).trim();
}
