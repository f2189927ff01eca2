import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { createTestDatabase, type TestDatabase } from './database.js';

/** The repository root, whatever directory the tests are started from. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ServiceProcess {
  child: ChildProcess;
  port: number;
  /** METRICS_PORT as bound (0 is asked for: a free port). */
  metricsPort: number;
  baseUrl: string;
  /** Every JSON log line the process wrote to stdout, parsed, in order. */
  lines: Record<string, unknown>[];
  /** Everything it wrote, stdout and stderr, raw (for "this must never appear" assertions). */
  output(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** Sends `signal` (SIGTERM by default) and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const STARTUP_GIVE_UP_MS = 50_000;

/** Every service process started here that has not exited yet, including ones still starting. */
const running = new Set<ChildProcess>();

/**
 * Kills (SIGKILL) every service process a test left running and waits for them to go: for an `afterEach`, so a
 * test that fails or times out before it stops its service leaks no process into the next test or past the run.
 */
export async function killLeftoverServices(): Promise<void> {
  await Promise.all([...running].map(async (child) => {
    const gone = once(child, 'exit');
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await gone;
  }));
}

export interface StartOptions {
  /** `built`: `node dist/service/main.js` as the image runs it (run `npm run build` first); `source`: tsx. */
  entry?: 'built' | 'source';
  /** Lowers RLIMIT_NOFILE for the child (ulimit -n), to exhaust file descriptors on purpose. */
  maxOpenFiles?: number;
  /** false: keep no log lines or output after `listening` (long runs, like the soak). */
  retainLogs?: boolean;
}

/**
 * The service as operators run it: its own process, configured only by the environment, PORT=0,
 * the port read from the JSON `listening` log line.
 */
export async function startServiceProcess(env: Record<string, string>, options: StartOptions = {}): Promise<ServiceProcess> {
  const args = options.entry === 'source' ? ['--import', 'tsx', 'service/main.ts'] : ['dist/service/main.js'];
  const fullEnv = { PATH: process.env.PATH ?? '', PORT: '0', METRICS_PORT: '0', LOG_LEVEL: 'info', ...env };
  const child =
    options.maxOpenFiles === undefined
      ? spawn(process.execPath, args, { cwd: REPO_ROOT, env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('sh', ['-c', `ulimit -n ${options.maxOpenFiles} && exec "$0" "$@"`, process.execPath, ...args], {
          cwd: REPO_ROOT,
          env: fullEnv,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
  running.add(child);
  child.once('exit', () => running.delete(child));
  const lines: Record<string, unknown>[] = [];
  let raw = '';
  child.stderr.on('data', (chunk: Buffer) => (raw += chunk.toString('utf8')));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const started = new Promise<[number, number]>((resolve, reject) => {
    let listening = false;
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (listening && options.retainLogs === false) return;
      raw += `${line}\n`;
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      lines.push(entry);
      if (entry.msg === 'listening') {
        listening = true;
        resolve([entry.port as number, entry.metricsPort as number]);
      }
    });
    void exited.then((code) => { reject(new Error(`service exited with ${String(code)} before listening:\n${raw}`)); });
    // The `listening` line is at level info: a LOG_LEVEL above that would leave us waiting here.
    // A give-up point, not a speed claim: from source (tsx) with the embedded PGlite, start-up took
    // over 20 s on a loaded two-core machine.
    setTimeout(() => { reject(new Error(`no 'listening' log line within ${STARTUP_GIVE_UP_MS / 1000} s:\n${raw}`)); }, STARTUP_GIVE_UP_MS).unref();
  });
  // A service that never said it listens is nobody's to stop: kill it here rather than leave it running.
  const [port, metricsPort] = await started.catch(async (error: unknown) => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    throw error;
  });
  return {
    child,
    port,
    metricsPort,
    baseUrl: `http://127.0.0.1:${port}`,
    lines,
    output: () => raw,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/**
 * A fresh migrated database and the built service on it, for suites that fault the service
 * itself. The limiter is out of the way (huge budget) unless `env` says otherwise.
 */
export async function startServiceOnFreshDatabase(env: Record<string, string>): Promise<{ db: TestDatabase; service: ServiceProcess }> {
  const db = await createTestDatabase();
  const service = await startServiceProcess({ RATE_LIMIT_RPS: '1000000', RATE_LIMIT_BURST: '1000000', ...env, DATABASE_URL: db.url });
  return { db, service };
}
