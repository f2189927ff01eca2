// `npm run image`: builds users-service:local from the repository's Dockerfile with BuildKit, as CI does.
//
// When the pinned base image (tag + digest) is not in the local engine, which is always the case on a machine
// without a registry, the base is taken by tag instead (`node:<version>-<flavour>`), and if that is missing
// too a labelled test-fixture stand-in is built under that name first (base-fixture.ts). The Dockerfile
// itself is never changed: the stand-in goes in through the NODE_IMAGE build argument.
//
//   npm run image                    # users-service:local
//   IMAGE=users-service:x npm run image
//   BUILD_CA_BUNDLE=<file>           # CA bundle for npm inside the build (default: npm's cafile, else the
//                                    # system bundle); passed as the BuildKit secret `ca`, never in a layer
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../k8s-tools.js';
import { buildBaseFixture } from './base-fixture.js';
import { BASE_IMAGE_ARG, pinnedBaseImage } from './dockerfile.js';
import { dockerClient, imageExists } from './docker.js';

export const LOCAL_IMAGE = 'users-service:local';
const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

function caBundle(): string | undefined {
  const npmCafile = spawnSync('npm', ['config', 'get', 'cafile'], { encoding: 'utf8' }).stdout.trim();
  const candidates = [process.env.BUILD_CA_BUNDLE, npmCafile, SYSTEM_CA_BUNDLE];
  return candidates.find((file) => file !== undefined && file !== '' && file !== 'null' && existsSync(file));
}

/** The base to build on: the pinned reference when present, else the same name by tag (stand-in if need be). */
export function resolveBaseImage(): string {
  const pinned = pinnedBaseImage();
  if (imageExists(pinned.ref)) return pinned.ref;
  if (!imageExists(pinned.tagged)) buildBaseFixture(pinned.tagged, pinned.nodeVersion);
  return pinned.tagged;
}

export function buildImage(tag = LOCAL_IMAGE): { base: string; seconds: number } {
  const base = resolveBaseImage();
  const revision = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).stdout.trim() || 'unknown';
  const version = (JSON.parse(execFileSync('npm', ['pkg', 'get', 'version'], { cwd: repoRoot, encoding: 'utf8' })) as string);
  const args = ['--tag', tag, '--build-arg', `VERSION=${version}`, '--build-arg', `REVISION=${revision}`];
  if (base !== pinnedBaseImage().ref) args.push('--build-arg', `${BASE_IMAGE_ARG}=${base}`);
  const ca = caBundle();
  if (ca) args.push('--secret', `id=ca,src=${ca}`);
  const { bin, build } = dockerClient();
  const { argv, env } = build([...args, '--file', 'Dockerfile', '.']);
  console.log(`${bin} ${argv.join(' ')}`);
  const started = performance.now();
  execFileSync(bin, argv, { cwd: repoRoot, env, stdio: 'inherit' });
  return { base, seconds: (performance.now() - started) / 1000 };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { base, seconds } = buildImage(process.env.IMAGE);
  console.log(`built ${process.env.IMAGE ?? LOCAL_IMAGE} on ${base} in ${seconds.toFixed(1)} s (docker build only)`);
}
