// Runs every test on its own, in a fresh process, with only its own file loaded and only its own hooks run: a
// test that passes in the full suite but fails here depends on another test (its data, its counters, its side
// effects). Each test is selected by its full title, anchored.
//
//   npx tsx scripts/each-test-alone.ts [--config test/reliability/.mocharc.json] [--jobs 2] [path filter...]
//   npx tsx scripts/each-test-alone.ts --node-test infra          # infra/'s node:test specs
//   npx tsx scripts/each-test-alone.ts --group chart test/chart/    # the chart's per-render blocks (or --group REGEX)
//   npx tsx scripts/each-test-alone.ts --node-test infra --last-of-block
//
// Mocha suites: the tests come from `mocha --dry-run`. node:test suites (infra/) have no dry run: each spec file is
// first run whole, alone (which lists its tests and checks the file does not lean on another), then each test by
// `--test-name-pattern` on its full name.
//
// For suites too large to run test by test on a small machine:
// - `--group REGEX` (capture 1 names a block of tests that repeat the same checks, e.g. the chart's per-render
//   blocks): each such block runs alone, and each distinct check runs alone once, in a block that rotates over the
//   render configurations. Tests outside the groups still run one by one.
// - `--last-of-block`: only the last test of each describe block runs alone (it is the one that would see side
//   effects of its siblings, since tests run in declaration order); with --node-test every file still runs alone.
//
// Exits 1 if any test fails alone, or if a title selects more than one test (a title is how a test is named in
// a report and rerun with --grep, so it must be unique).
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { PER_RENDER } from './chart-renders.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    config: { type: 'string', default: '.mocharc.json' },
    'node-test': { type: 'string' },
    group: { type: 'string' },
    'last-of-block': { type: 'boolean', default: false },
    jobs: { type: 'string', default: '1' },
  },
});
const jobs = Math.max(1, Number(values.jobs));
const scratch = mkdtempSync(path.join(tmpdir(), 'each-test-alone-'));
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], cwd = process.cwd()): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => { resolve({ code, stdout, stderr }); });
  });
}

/** One test as listed: its full title (describe titles and its own, space-joined), its own title, its file. */
interface Listed {
  fullTitle: string;
  title: string;
  file: string;
}

/** What one isolated run did: how many tests ran and passed, and the first failure's message. */
interface RunResult {
  ran: number;
  passed: number;
  failure?: string;
}

/** A selection to run alone: one test (by its full title) or one block (by a full-title prefix). */
interface Job {
  label: string;
  file: string;
  pattern: string;
  expected: number;
}

interface Runner {
  list(): Promise<{ tests: Listed[]; problems: string[] }>;
  runAlone(job: Job): Promise<RunResult>;
}

// ---- mocha ------------------------------------------------------------------------------------------------------

interface MochaReport {
  stats: { tests: number; passes: number; failures: number };
  tests: { title: string; fullTitle: string; file: string }[];
  failures: { err?: { message?: string } }[];
}

/** mocha's JSON report is the last JSON document on stdout (tests may print lines before it). */
function mochaReport(stdout: string): MochaReport | undefined {
  const start = stdout.indexOf('{\n  "stats"');
  if (start < 0) return undefined;
  try {
    return JSON.parse(stdout.slice(start)) as MochaReport;
  } catch {
    return undefined;
  }
}

function mochaRunner(configFile: string): Runner {
  const configPath = path.resolve(configFile);
  const mochaBin = path.resolve('node_modules/mocha/bin/mocha.js');
  /** The same configuration with one file as its whole spec (a spec given on the command line is added to the config's, not put in its place). */
  const configFor = (file: string): string => {
    const config = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    const target = path.join(scratch, `${path.basename(file)}-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(target, JSON.stringify({ ...config, spec: [file], ignore: [] }));
    return target;
  };
  return {
    async list() {
      const listing = await run([mochaBin, '--config', configPath, '--dry-run', '--reporter', 'json']);
      const listed = mochaReport(listing.stdout);
      if (!listed) throw new Error(`mocha --dry-run gave no report:\n${listing.stderr}`);
      return { tests: listed.tests.map((t) => ({ ...t, file: path.relative(process.cwd(), t.file) })), problems: [] };
    },
    async runAlone(job) {
      const result = await run([mochaBin, '--config', configFor(job.file), '--reporter', 'json', '--grep', job.pattern]);
      const r = mochaReport(result.stdout);
      if (r === undefined) return { ran: 0, passed: 0, failure: `no report (exit ${result.code}): ${tail(result.stderr)}` };
      const failure = r.failures[0]?.err?.message ?? (result.code === 0 ? undefined : `exit ${result.code}`);
      return { ran: r.stats.tests, passed: r.stats.passes, ...(failure === undefined ? {} : { failure }) };
    },
  };
}

// ---- node:test (infra/) -----------------------------------------------------------------------------------------

/** A node:test reporter that prints one JSON line per finished test, named by its full (space-joined) title. */
const NODE_REPORTER = `
export default async function* reporter(source) {
  const names = [];
  for await (const event of source) {
    if (event.type === 'test:start') names[event.data.nesting] = event.data.name;
    if ((event.type === 'test:pass' || event.type === 'test:fail') && event.data.details?.type !== 'suite') {
      const fullTitle = [...names.slice(0, event.data.nesting), event.data.name].join(' ');
      const error = event.data.details?.error;
      yield JSON.stringify({ each: event.type === 'test:pass' ? 'pass' : 'fail', fullTitle, title: event.data.name,
        message: error ? String(error.cause?.message ?? error.message) : undefined }) + '\\n';
    }
  }
}
`;

interface NodeLine {
  each: 'pass' | 'fail';
  fullTitle: string;
  title: string;
  message?: string;
}

function nodeTestRunner(dir: string): Runner {
  const cwd = path.resolve(dir);
  const reporter = path.join(scratch, 'reporter.mjs');
  writeFileSync(reporter, NODE_REPORTER);
  const lines = (stdout: string): NodeLine[] =>
    stdout.split('\n').filter((l) => l.startsWith('{"each"')).map((l) => JSON.parse(l) as NodeLine);
  const runFile = (file: string, pattern?: string) =>
    run(['--import', 'tsx', '--test', `--test-reporter=${reporter}`, ...(pattern === undefined ? [] : [`--test-name-pattern=${pattern}`]), file], cwd);
  return {
    async list() {
      const files = readdirSync(path.join(cwd, 'test')).filter((f) => f.endsWith('.spec.ts')).map((f) => path.join('test', f));
      const tests: Listed[] = [];
      const problems: string[] = [];
      // Each file whole and alone: it lists the file's tests and proves the file needs no other spec file.
      await pool(files, async (file) => {
        const result = await runFile(file);
        const ran = lines(result.stdout);
        tests.push(...ran.map((t) => ({ fullTitle: t.fullTitle, title: t.title, file })));
        const failed = ran.filter((t) => t.each === 'fail');
        if (result.code !== 0 || failed.length > 0 || ran.length === 0) {
          problems.push(`${dir}/${file} (the whole file alone)\n    ${failed.map((t) => `${t.fullTitle}: ${t.message ?? ''}`).join('\n    ') || tail(result.stderr)}`);
        }
        process.stderr.write(`${problems.length === 0 ? 'ok  ' : 'FAIL'} file ${file}: ${ran.length} tests\n`);
      });
      return { tests, problems };
    },
    async runAlone(job) {
      const result = await runFile(job.file, job.pattern);
      const ran = lines(result.stdout);
      const failed = ran.find((t) => t.each === 'fail');
      const failure = failed?.message ?? (result.code === 0 ? undefined : `exit ${result.code}: ${tail(result.stderr)}`);
      return { ran: ran.length, passed: ran.filter((t) => t.each === 'pass').length, ...(failure === undefined ? {} : { failure }) };
    },
  };
}

// ---- selection and run ------------------------------------------------------------------------------------------

const tail = (text: string) => text.trim().split('\n').slice(-5).join(' | ');
const blockOf = (t: Listed) => t.fullTitle.slice(0, t.fullTitle.length - t.title.length).trimEnd();

async function pool<T>(items: T[], work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const worker = async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
  };
  await Promise.all(Array.from({ length: jobs }, worker));
}

/** What runs alone: every test, or (see the header) whole blocks plus one run of each repeated check, or the last test of each block. */
function jobsFor(tests: Listed[]): Job[] {
  const one = (t: Listed): Job => ({ label: t.fullTitle, file: t.file, pattern: `^${escapeRegExp(t.fullTitle)}$`, expected: 1 });
  const group = values.group === undefined ? undefined : values.group === 'chart' ? PER_RENDER : new RegExp(values.group);
  const grouped = new Map<string, Listed[]>();
  const single: Listed[] = [];
  for (const t of tests) {
    const name = group?.exec(t.fullTitle)?.[1];
    if (name === undefined) single.push(t);
    else grouped.set(name, [...(grouped.get(name) ?? []), t]);
  }
  let picked = single;
  if (values['last-of-block']) {
    const last = new Map<string, Listed>();
    for (const t of single) last.set(`${t.file}\0${blockOf(t)}`, t);
    picked = [...last.values()];
  }
  const jobList = picked.map(one);
  const blocks = [...grouped.values()];
  for (const [name, members] of grouped) {
    jobList.push({ label: `${name} (whole block)`, file: members[0]?.file ?? '', pattern: `^${escapeRegExp(name)} `, expected: members.length });
  }
  // Each repeated check alone once, the k-th in the k-th block that has it, so the configurations take turns.
  const checks = [...new Set(blocks.flat().map((t) => t.title))];
  checks.forEach((title, k) => {
    const hosts = blocks.flatMap((members) => members.filter((t) => t.title === title));
    const host = hosts[k % hosts.length];
    if (host !== undefined) jobList.push(one(host));
  });
  return jobList;
}

const runner = values['node-test'] === undefined ? mochaRunner(values.config) : nodeTestRunner(values['node-test']);
const started = performance.now();
const listed = await runner.list();
const tests = listed.tests.filter((t) => positionals.length === 0 || positionals.some((p) => t.file.includes(p)));

const titles = new Map<string, number>();
for (const t of tests) titles.set(t.fullTitle, (titles.get(t.fullTitle) ?? 0) + 1);
const duplicates = new Set([...titles].filter(([, n]) => n > 1).map(([title]) => title));
const problems: string[] = [...listed.problems, ...[...duplicates].map((title) => `duplicate title: ${title}`)];
const work = jobsFor(tests.filter((t) => !duplicates.has(t.fullTitle)));

let done = 0;
await pool(work, async (job) => {
  const r = await runner.runAlone(job);
  done += 1;
  const ok = r.failure === undefined && r.ran === job.expected && r.passed === job.expected;
  if (!ok) {
    const why = r.failure ?? `${r.ran} tests ran, ${r.passed} passed, ${job.expected} expected`;
    problems.push(`${job.file} :: ${job.label}\n    ${why.split('\n').slice(0, 6).join('\n    ')}`);
  }
  process.stderr.write(`${ok ? 'ok  ' : 'FAIL'} ${done}/${work.length} ${job.label}\n`);
});

rmSync(scratch, { recursive: true, force: true });
const minutes = ((performance.now() - started) / 60_000).toFixed(1);
process.stdout.write(
  `${tests.length} tests; ${work.length} runs alone (${work.filter((j) => j.expected === 1).length} single tests, ` +
    `${work.filter((j) => j.expected !== 1).length} whole blocks) in ${minutes} min: ${problems.length === 0 ? 'all pass' : `${problems.length} problem(s)`}\n`,
);
for (const p of problems) process.stdout.write(`- ${p}\n`);
process.exitCode = problems.length === 0 ? 0 : 1;
