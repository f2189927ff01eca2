// What the repository's Dockerfile pins: the official Node.js image, by tag and digest, in one build argument.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../k8s-tools.js';

export const BASE_IMAGE_ARG = 'NODE_IMAGE';

export interface BaseImage {
  /** The full default, `node:<version>-<flavour>@sha256:<digest>`. */
  ref: string;
  /** `node:<version>-<flavour>`: the name a local stand-in takes. */
  tagged: string;
  nodeVersion: string;
  digest: string;
}

const PINNED = /^(?<tagged>node:(?<version>\d+\.\d+\.\d+)-[a-z0-9.-]+)@(?<digest>sha256:[0-9a-f]{64})$/;

export function dockerfileText(): string {
  return readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
}

/** The default of `ARG NODE_IMAGE=…`; throws unless it is a full Node version tag plus a digest. */
export function pinnedBaseImage(text = dockerfileText()): BaseImage {
  const line = text.split('\n').find((l) => l.startsWith(`ARG ${BASE_IMAGE_ARG}=`));
  const ref = line?.slice(`ARG ${BASE_IMAGE_ARG}=`.length).trim() ?? '';
  const match = PINNED.exec(ref);
  if (!match?.groups) throw new Error(`Dockerfile: ARG ${BASE_IMAGE_ARG} must default to node:<x.y.z>-<flavour>@sha256:<digest>, found "${ref}"`);
  const { tagged, version, digest } = match.groups as { tagged: string; version: string; digest: string };
  return { ref, tagged, nodeVersion: version, digest };
}
