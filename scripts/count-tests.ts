// Counts the suite honestly: the chart checks that run once per render configuration are one behaviour each,
// however many renders repeat them. Prints the figures the README quotes.
//
//   npx tsx scripts/count-tests.ts
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { PER_RENDER } from './chart-renders.js';

interface Listed {
  tests: { title: string; fullTitle: string; file: string }[];
}

function list(config: string): Listed['tests'] {
  const mocha = path.resolve('node_modules/mocha/bin/mocha.js');
  const out = execFileSync(process.execPath, [mocha, '--config', config, '--dry-run', '--reporter', 'json'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return (JSON.parse(out.slice(out.indexOf('{\n  "stats"'))) as Listed).tests;
}


const main = list('.mocharc.json');
const reliability = list('test/reliability/.mocharc.json');
const perRender = main.filter((t) => PER_RENDER.test(t.fullTitle));
const renders = new Set(perRender.map((t) => PER_RENDER.exec(t.fullTitle)?.[1])).size;
const checks = new Set(perRender.map((t) => t.title)).size;
const behaviours = main.length - perRender.length + checks;
process.stdout.write(
  `npm test: ${main.length} tests = ${behaviours} distinct behaviours + ${perRender.length - checks} repeats ` +
    `(${checks} chart checks run on ${renders} render configurations: ${perRender.length} tests)\n` +
    `npm run test:reliability: ${reliability.length} tests\n`,
);
