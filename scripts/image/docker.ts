// The Docker client the image scripts and the container suite drive, and how it builds with BuildKit.
//
// `docker build` needs BuildKit here (cache and secret mounts). Clients from Docker 23 on hand builds to the
// buildx plugin and fall back to the legacy builder without it; clients before 23 carry BuildKit themselves
// (DOCKER_BUILDKIT=1). Debian bookworm's docker.io (20.10) is the latter, and a machine may also have a newer
// client without buildx earlier on PATH, so the first client that can build with BuildKit wins.
// DOCKER=<path> picks one explicitly.
import { spawnSync } from 'node:child_process';

export interface DockerClient {
  bin: string;
  /** The argv (after `bin`) and environment of a BuildKit build that loads its result into the engine. */
  build: (args: string[]) => { argv: string[]; env: NodeJS.ProcessEnv };
}

function ok(bin: string, args: string[]): string | undefined {
  const result = spawnSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

function client(bin: string): DockerClient | undefined {
  if (ok(bin, ['buildx', 'version']) !== undefined) {
    return { bin, build: (args) => ({ argv: ['buildx', 'build', '--load', ...args], env: process.env }) };
  }
  const version = ok(bin, ['version', '--format', '{{.Client.Version}}']);
  if (version !== undefined && Number(version.split('.')[0]) < 23) {
    return { bin, build: (args) => ({ argv: ['build', ...args], env: { ...process.env, DOCKER_BUILDKIT: '1' } }) };
  }
  return undefined;
}

let chosen: DockerClient | undefined;

export function dockerClient(): DockerClient {
  if (chosen) return chosen;
  const candidates = process.env.DOCKER ? [process.env.DOCKER] : ['docker', '/usr/bin/docker'];
  for (const bin of candidates) {
    chosen = client(bin);
    if (chosen) return chosen;
  }
  throw new Error(`no Docker client that builds with BuildKit among ${candidates.join(', ')} (install docker.io, or buildx)`);
}

/** Runs docker with the given arguments; returns stdout, throws with stderr on a non-zero exit. */
export function docker(args: string[], options: { input?: string } = {}): string {
  const result = spawnSync(dockerClient().bin, args, { encoding: 'utf8', input: options.input, maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`docker ${args.join(' ')} exited ${String(result.status)}: ${result.stderr}`);
  return result.stdout;
}

export function imageExists(ref: string): boolean {
  return spawnSync(dockerClient().bin, ['image', 'inspect', ref], { stdio: 'ignore' }).status === 0;
}
