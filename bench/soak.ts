/**
 * Soak: steady load on the built service for a while, sampling its memory from GET /metrics, to
 * show that RSS and heap stop growing (no leak per request, no unbounded cache or queue).
 *
 *   npm run soak                 60 s (default)
 *   npm run soak -- 3m           or SOAK_DURATION=3m; SOAK_RATE (req/s, default 400),
 *                                SOAK_CONNECTIONS (default 16), SOAK_SAMPLE (default 5s)
 *
 * Needs PostgreSQL as the tests do (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test):
 * a fresh database is created and dropped. Exits 1 when memory is still growing at the end, or
 * when any request failed.
 */
import { createTestDatabase } from '../test/support/database.js';
import { parseMetrics, sumOf } from '../test/support/prometheus.js';
import { startServiceProcess } from '../test/support/service-process.js';
import { autocannon } from './autocannon.js';


function seconds(value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const match = /^(\d+(?:\.\d+)?)(s|m)?$/.exec(value.trim());
  if (!match) throw new Error(`not a duration: ${value} (use 90, 90s or 3m)`);
  return Number(match[1]) * (match[2] === 'm' ? 60 : 1);
}

const DURATION_S = seconds(process.argv[2] ?? process.env.SOAK_DURATION, 60);
const RATE = Number(process.env.SOAK_RATE ?? '400');
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? '16');
const SAMPLE_S = Math.min(seconds(process.env.SOAK_SAMPLE, 5), DURATION_S / 27);

interface Sample {
  t: number;
  rssMb: number;
  heapMb: number;
  requests: number;
  lagMs: number;
}

/** Least-squares slope of y over t, per minute. */
function slopePerMinute<T extends { t: number }>(samples: T[], y: (s: T) => number): number {
  const n = samples.length;
  if (n < 2) return 0;
  const mt = samples.reduce((a, s) => a + s.t, 0) / n;
  const my = samples.reduce((a, s) => a + y(s), 0) / n;
  const num = samples.reduce((a, s) => a + (s.t - mt) * (y(s) - my), 0);
  const den = samples.reduce((a, s) => a + (s.t - mt) ** 2, 0);
  return den === 0 ? 0 : (num / den) * 60;
}

const mb = (bytes: number) => bytes / 1024 / 1024;
const pad = (value: string | number, width: number) => String(value).padStart(width);

async function main(): Promise<void> {
  const db = await createTestDatabase();
  const service = await startServiceProcess(
    { DATABASE_URL: db.url, RATE_LIMIT_RPS: '1000000', RATE_LIMIT_BURST: '1000000' },
    { retainLogs: false },
  );
  const base = service.baseUrl;
  let serial = 0;
  const sample = async (start: number): Promise<Sample> => {
    const samples = parseMetrics(await (await fetch(`${base}/metrics`)).text());
    return {
      t: (performance.now() - start) / 1000,
      rssMb: mb(sumOf(samples, 'process_resident_memory_bytes')),
      heapMb: mb(sumOf(samples, 'nodejs_heap_size_used_bytes')),
      requests: sumOf(samples, 'http_request_duration_seconds_count'),
      lagMs: sumOf(samples, 'nodejs_eventloop_lag_p99_seconds') * 1000,
    };
  };
  try {
    // A user to read, then a mix per connection: one create, two reads by id, one page.
    await fetch(`${base}/api/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Soak', email: 'soak@example.com' }) });
    console.log(`soak: ${DURATION_S} s at ${RATE} req/s over ${CONNECTIONS} connections against ${base} (pid ${String(service.child.pid)}), sampling every ${SAMPLE_S} s\n`);
    console.log(`${pad('t (s)', 7)} ${pad('RSS MB', 8)} ${pad('heap MB', 8)} ${pad('req/s', 7)} ${pad('lag p99 ms', 11)}`);
    const start = performance.now();
    const samples: Sample[] = [];
    const print = (s: Sample, previous: Sample | undefined) => {
      const rate = previous ? (s.requests - previous.requests) / (s.t - previous.t) : 0;
      console.log(`${pad(s.t.toFixed(0), 7)} ${pad(s.rssMb.toFixed(1), 8)} ${pad(s.heapMb.toFixed(1), 8)} ${pad(rate.toFixed(0), 7)} ${pad(s.lagMs.toFixed(1), 11)}`);
    };
    const first = await sample(start);
    samples.push(first);
    print(first, undefined);
    const sampler = setInterval(() => {
      void sample(start).then((s) => {
        print(s, samples.at(-1));
        samples.push(s);
      });
    }, SAMPLE_S * 1000);
    const result = await autocannon({
      url: base,
      connections: CONNECTIONS,
      duration: DURATION_S,
      overallRate: RATE,
      requests: [
        {
          method: 'POST',
          path: '/api/users',
          headers: { 'content-type': 'application/json' },
          setupRequest: (request) => ({ ...request, body: JSON.stringify({ name: 'Soak user', email: `soak-${String(serial++)}@example.com` }) }),
        },
        { method: 'GET', path: '/api/users/1' },
        { method: 'GET', path: '/api/users/1' },
        { method: 'GET', path: '/api/users?limit=20' },
      ],
    });
    clearInterval(sampler);
    const last = await sample(start);
    print(last, samples.at(-1));
    samples.push(last);

    // Judge the samples taken under load only, on the floor after garbage collection: the heap is a
    // sawtooth, and a leak is a floor that keeps rising. Blocks of 3 samples, the minimum of each.
    const loaded = samples.slice(1, -1);
    const blocks = Array.from({ length: Math.floor(loaded.length / 3) }, (_, i) => loaded.slice(i * 3, i * 3 + 3));
    const third = Math.max(2, Math.floor(blocks.length / 3));
    const verdict = (name: string, y: (s: Sample) => number) => {
      const floor = blocks.map((block) => ({ t: (block.at(-1) as Sample).t, floor: Math.min(...block.map(y)) }));
      const early = slopePerMinute(floor.slice(0, third), (s) => s.floor);
      const late = slopePerMinute(floor.slice(-third), (s) => s.floor);
      // Flat: the last third's floor grows by under 1 MB/min, or at most half as fast as the first third's.
      const flattens = late < 1 || late <= early / 2;
      const floors = floor.map((s) => s.floor);
      console.log(
        `${name.padEnd(5)} floor slope: first third ${early.toFixed(2)} MB/min, last third ${late.toFixed(2)} MB/min; ` +
          `floor ${(floors[0] ?? 0).toFixed(1)} → ${(floors.at(-1) ?? 0).toFixed(1)} MB, peak ${Math.max(...loaded.map(y)).toFixed(1)} MB: ${flattens ? 'flattens' : 'STILL GROWING'}`,
      );
      return flattens;
    };
    console.log(
      `\nload: ${result.requests.total} requests, ${result.requests.average.toFixed(0)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, ` +
        `non-2xx ${result.non2xx}, errors ${result.errors}, timeouts ${result.timeouts}`,
    );
    const rssFlat = verdict('RSS', (s) => s.rssMb);
    const heapFlat = verdict('heap', (s) => s.heapMb);
    const ok = rssFlat && heapFlat && result.errors === 0 && result.non2xx === 0;
    console.log(`verdict: ${ok ? 'PASS: memory growth flattens under steady load' : 'FAIL'}`);
    process.exitCode = ok ? 0 : 1;
  } finally {
    await service.stop('SIGTERM');
    await db.drop();
  }
}

await main();
