import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import knexFactory from 'knex';
import { freePort } from '../ratelimit/support.js';

const run = promisify(execFile);

/** The newest PostgreSQL server binaries installed (Debian layout), or PG_BIN. */
function binDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (newest === undefined) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)');
  return join(root, newest, 'bin');
}

/** initdb refuses to run as root: then the cluster belongs to the `postgres` system user. */
const AS_ROOT = process.getuid?.() === 0;

/**
 * A throwaway PostgreSQL cluster on a temporary directory and a free loopback port, which a test
 * may stop (as a crash would) and start again. Trust authentication, no fsync: loopback only.
 */
export class PrivatePostgres {
  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  static async create(): Promise<PrivatePostgres> {
    const dir = mkdtempSync(join(tmpdir(), 'users-pg-'));
    if (AS_ROOT) chownSync(dir, Number((await run('id', ['-u', 'postgres'])).stdout.trim()), Number((await run('id', ['-g', 'postgres'])).stdout.trim()));
    const pg = new PrivatePostgres(dir, await freePort());
    await pg.exec('initdb', ['-D', pg.dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale', 'C']);
    await pg.start();
    return pg;
  }

  private get dataDir(): string {
    return join(this.dir, 'data');
  }

  private exec(tool: string, args: string[]) {
    const binary = join(binDir(), tool);
    return AS_ROOT ? run('runuser', ['-u', 'postgres', '--', binary, ...args]) : run(binary, args);
  }

  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** Starts the server; resolves once it accepts connections. */
  async start(): Promise<void> {
    const options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60`;
    await this.exec('pg_ctl', ['-D', this.dataDir, '-l', join(this.dir, 'server.log'), '-w', '-t', '30', '-o', options, 'start']);
  }

  /** `immediate` is a crash: connections are cut, no checkpoint; the next start replays the WAL. */
  async stop(mode: 'immediate' | 'fast' = 'immediate'): Promise<void> {
    await this.exec('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', '-t', '30', 'stop']);
  }

  async createDatabase(name: string): Promise<string> {
    const admin = knexFactory({ client: 'pg', connection: this.url(), pool: { min: 0, max: 1 } });
    try {
      await admin.raw(`CREATE DATABASE ${name}`);
    } finally {
      await admin.destroy();
    }
    return this.url(name);
  }

  async destroy(): Promise<void> {
    await this.stop('immediate').catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
