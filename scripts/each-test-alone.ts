// Runs every mocha test on its own, in a fresh process, with only its own file loaded and only its own hooks
// run: a test that passes in the full suite but fails here depends on another test (its data, its counters,
// its side effects). The tests come from `mocha --dry-run`; each is selected by its full title, anchored.
//
//   npx tsx scripts/each-test-alone.ts [--config test/reliability/.mocharc.json] [--jobs 2] [path filter...]
//
// Exits 1 if any test fails alone, or if a title selects more than one test (a title is how a test is
// named in a report and rerun with --grep, so it must be unique).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { config: { type: 'string', default: '.mocharc.json' }, jobs: { type: 'string', default: '1' } },
});
const configPath = path.resolve(values.config);
const jobs = Math.max(1, Number(values.jobs));
const mochaBin = path.resolve('node_modules/mocha/bin/mocha.js');
const scratch = mkdtempSync(path.join(tmpdir(), 'each-test-alone-'));

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [mochaBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => { resolve({ code, stdout, stderr }); });
  });
}

interface ReportedTest {
  fullTitle: string;
  file: string;
  err?: { message?: string; stack?: string };
}
interface Report {
  stats: { tests: number; passes: number; failures: number; pending: number };
  tests: ReportedTest[];
  failures: ReportedTest[];
}

/** mocha's JSON report is the last JSON document on stdout (tests may print lines before it). */
function report(stdout: string): Report | undefined {
  const start = stdout.indexOf('{\n  "stats"');
  if (start < 0) return undefined;
  try {
    return JSON.parse(stdout.slice(start)) as Report;
  } catch {
    return undefined;
  }
}

/** The same configuration with one file as its whole spec (a spec given on the command line is added to the config's, not put in its place). */
function configFor(file: string): string {
  const config = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
  const target = path.join(scratch, `${path.basename(file)}-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(target, JSON.stringify({ ...config, spec: [file], ignore: [] }));
  return target;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const listing = await run(['--config', configPath, '--dry-run', '--reporter', 'json']);
const listed = report(listing.stdout);
if (!listed) throw new Error(`mocha --dry-run gave no report:\n${listing.stderr}`);
const tests = listed.tests.filter((t) => positionals.length === 0 || positionals.some((p) => t.file.includes(p)));

const titles = new Map<string, number>();
for (const t of tests) titles.set(t.fullTitle, (titles.get(t.fullTitle) ?? 0) + 1);
const duplicates = [...titles].filter(([, n]) => n > 1).map(([title]) => title);

const problems: string[] = duplicates.map((title) => `duplicate title: ${title}`);
let done = 0;
const started = performance.now();
const queue = tests.filter((t) => !duplicates.includes(t.fullTitle));

async function worker(): Promise<void> {
  for (let t = queue.shift(); t; t = queue.shift()) {
    const file = path.relative(process.cwd(), t.file);
    const config = configFor(file);
    const result = await run(['--config', config, '--reporter', 'json', '--grep', `^${escapeRegExp(t.fullTitle)}$`]);
    const r = report(result.stdout);
    done += 1;
    const ok = r !== undefined && r.stats.tests === 1 && r.stats.passes === 1 && result.code === 0;
    if (!ok) {
      const why = r === undefined
        ? `no report (exit ${result.code}): ${result.stderr.trim().split('\n').slice(-5).join(' | ')}`
        : r.stats.tests !== 1
          ? `${r.stats.tests} tests ran`
          : (r.failures[0]?.err?.message ?? `exit ${result.code}`);
      problems.push(`${file} :: ${t.fullTitle}\n    ${why.split('\n').slice(0, 6).join('\n    ')}`);
    }
    process.stderr.write(`${ok ? 'ok  ' : 'FAIL'} ${done}/${tests.length - duplicates.length} ${t.fullTitle}\n`);
  }
}

await Promise.all(Array.from({ length: jobs }, worker));
rmSync(scratch, { recursive: true, force: true });
const minutes = ((performance.now() - started) / 60_000).toFixed(1);
process.stdout.write(`${tests.length} tests, each run alone in ${minutes} min: ${problems.length === 0 ? 'all pass' : `${problems.length} problem(s)`}\n`);
for (const p of problems) process.stdout.write(`- ${p}\n`);
process.exitCode = problems.length === 0 ? 0 : 1;
