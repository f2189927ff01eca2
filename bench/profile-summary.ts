/**
 * Where the service's CPU goes: summarises a V8 .cpuprofile by self time, grouped by owner
 * (the service's own code, each npm package, Node internals, GC) and by function.
 *
 *   BENCH_SERVICE_NODE_ARGS="--cpu-prof --cpu-prof-dir=bench/results/profile" \
 *     npm run bench -- --scenarios get --servers baseline,service --repetitions 1
 *   npx tsx bench/profile-summary.ts bench/results/profile/*.cpuprofile
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** `service/…` for our code, the package name for node_modules, `node:…` internals, or V8's own pseudo-frames. */
function owner(url: string, name: string): string {
  if (!url) return `(${name.replace(/[()]/g, '') || 'native'})`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] as string;
  if (url.startsWith('node:')) return url.split('/')[0] as string;
  const ours = /\/(service|dist\/service)\/(.*)$/.exec(url);
  return ours ? `service/${ours[2] as string}` : url;
}

function summarise(file: string): void {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const byOwner = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const frame = (byId.get(id) as ProfileNode).callFrame;
    const who = owner(frame.url, frame.functionName);
    byOwner.set(who, (byOwner.get(who) ?? 0) + us);
    const fn = `${frame.functionName || '(anonymous)'} ${who}:${String(frame.lineNumber + 1)}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  }
  // Inclusive time of the service's own functions (each middleware with everything it calls
  // synchronously), as a share of the time the thread was busy: what each layer costs.
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = (byId.get(at) as ProfileNode).callFrame;
      const who = owner(frame.url, frame.functionName);
      if (!who.startsWith('service/')) continue;
      const fn = `${frame.functionName || '(anonymous)'} ${who}:${String(frame.lineNumber + 1)}`;
      if (!seen.has(fn)) inclusive.set(fn, (inclusive.get(fn) ?? 0) + us);
      seen.add(fn);
    }
  }
  const busy = total - (byOwner.get('(idle)') ?? 0);
  const share = (us: number, of = total) => `${((100 * us) / of).toFixed(1).padStart(5)} %`;
  const top = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
  process.stdout.write(`${file}: ${(total / 1e6).toFixed(1)} s of samples, ${(busy / 1e6).toFixed(1)} s busy\n\nself time by owner\n`);
  for (const [who, us] of top(byOwner, 20)) process.stdout.write(`  ${share(us)}  ${who}\n`);
  process.stdout.write('\nself time by function\n');
  for (const [fn, us] of top(byFunction, 20)) process.stdout.write(`  ${share(us)}  ${fn}\n`);
  process.stdout.write('\ninclusive time of the service\'s functions, share of busy time (synchronous callees only)\n');
  for (const [fn, us] of top(inclusive, 25)) process.stdout.write(`  ${share(us, busy)}  ${fn}\n`);
}

const files = process.argv.slice(2);
if (files.length === 0) {
  process.stderr.write('usage: tsx bench/profile-summary.ts <file.cpuprofile>...\n');
  process.exit(2);
}
files.forEach(summarise);
