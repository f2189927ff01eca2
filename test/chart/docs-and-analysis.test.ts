// Documentation kept in sync with values.yaml, and the AnalysisTemplate PromQL proven with promtool:
// scoped to the new ReplicaSet, and the deliberate no-traffic answers (pre: pass, post: inconclusive).
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { repoRoot } from '../../scripts/k8s-tools.js';
import { envFiles, renderChart } from './render.js';
import type { K8sObject } from './render.js';
import { readValuesDocs, readmePath, readmeWithTable, valuesTable } from './values-doc.js';

const run = promisify(execFile);

describe('chart documentation', () => {
  it('every key in values.yaml has a comment', () => {
    const undocumented = readValuesDocs()
      .filter((d) => d.comment === '')
      .map((d) => d.key);
    expect(undocumented).to.deep.equal([]);
  });

  it('README.md values table is generated from values.yaml and up to date', async () => {
    const readme = await readFile(readmePath, 'utf8');
    expect(readmeWithTable(readme), 'run `npx tsx test/chart/values-doc.ts --write`').to.equal(readme);
    for (const d of readValuesDocs().filter((x) => x.leaf)) expect(valuesTable()).to.include(`| \`${d.key}\` |`);
  });

  it('README explains why blue/green does not run behind an AWS ALB and what to use on EKS', async () => {
    const readme = await readFile(readmePath, 'utf8');
    expect(readme).to.match(/blue-green strategy is not supported with an AWS ALB/i);
    expect(readme).to.match(/NLB/);
    expect(readme).to.match(/canary/);
    expect(readme).to.include('managedNamespaceMetadata');
  });
});

describe('AnalysisTemplate PromQL (promtool)', function () {
  this.timeout(60_000);
  const args = { namespace: 'users-service-production', 'service-name': 'users-service-metrics', 'pod-template-hash': 'new' };
  const rules: { record: string; expr: string }[] = [];
  let dir = '';

  before(async () => {
    const objs: K8sObject[] = await renderChart([envFiles[2]!, path.join(repoRoot, 'argocd', 'production', 'image.yaml')], {}, { namespace: args.namespace });
    for (const tpl of objs.filter((o) => o.kind === 'AnalysisTemplate')) {
      const phase = tpl.metadata.name.includes('pre-promotion') ? 'pre' : 'post';
      for (const m of (tpl.spec as { metrics: { name: string; provider: { prometheus?: { query: string } } }[] }).metrics) {
        if (m.provider.prometheus === undefined) continue; // the smoke test (Job metric)
        let expr = m.provider.prometheus.query;
        for (const [k, v] of Object.entries(args)) expr = expr.replaceAll(`{{args.${k}}}`, v);
        expect(expr, 'every {{args.*}} is declared').to.not.include('{{');
        rules.push({ record: `analysis:${phase}_${m.name.replace(/-/g, '_')}`, expr });
      }
    }
    expect(rules.map((r) => r.record)).to.have.members([
      'analysis:pre_success_ratio',
      'analysis:pre_latency_p99',
      'analysis:post_success_ratio',
      'analysis:post_latency_p99',
    ]);
    dir = await mkdtemp(path.join(tmpdir(), 'analysis-'));
    await writeFile(path.join(dir, 'rules.yaml'), stringify({ groups: [{ name: 'analysis', interval: '1m', rules }] }));
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the queries are valid PromQL (promtool check rules)', async () => {
    const { stdout } = await run('promtool', ['check', 'rules', path.join(dir, 'rules.yaml')]);
    expect(stdout).to.match(/SUCCESS: 4 rules found/);
  });

  it('new pods are judged on their own series; no traffic passes pre-promotion and is inconclusive post-promotion', async () => {
    const sel = (hash: string, status: string, extra = ''): string =>
      `{namespace="${args.namespace}", service="${args['service-name']}", rollouts_pod_template_hash="${hash}", route="/api/users", status_code="${status}"${extra}}`;
    const probeSel = `{namespace="${args.namespace}", service="${args['service-name']}", rollouts_pod_template_hash="new", route="/health", status_code="200"}`;
    const expectAll = (values: Record<string, number>): unknown[] =>
      Object.entries(values).map(([record, value]) => ({ expr: record, eval_time: '10m', exp_samples: [{ labels: record, value }] }));
    const tests = {
      rule_files: ['rules.yaml'],
      evaluation_interval: '1m',
      tests: [
        {
          // New pods: 2 % errors, all requests between 0.1 s and 0.25 s. Old pods: all 5xx (must not count).
          interval: '1m',
          input_series: [
            { series: `http_request_duration_seconds_count${sel('new', '200')}`, values: '0+98x15' },
            { series: `http_request_duration_seconds_count${sel('new', '500')}`, values: '0+2x15' },
            { series: `http_request_duration_seconds_bucket${sel('new', '200', ', le="0.1"')}`, values: '0+0x15' },
            { series: `http_request_duration_seconds_bucket${sel('new', '200', ', le="0.25"')}`, values: '0+98x15' },
            { series: `http_request_duration_seconds_bucket${sel('new', '200', ', le="+Inf"')}`, values: '0+98x15' },
            { series: `http_request_duration_seconds_bucket${sel('new', '500', ', le="0.1"')}`, values: '0+0x15' },
            { series: `http_request_duration_seconds_bucket${sel('new', '500', ', le="0.25"')}`, values: '0+2x15' },
            { series: `http_request_duration_seconds_bucket${sel('new', '500', ', le="+Inf"')}`, values: '0+2x15' },
            { series: `http_request_duration_seconds_count${sel('old', '500')}`, values: '0+1000x15' },
          ],
          promql_expr_test: expectAll({
            'analysis:pre_success_ratio': 0.98,
            'analysis:post_success_ratio': 0.98,
            'analysis:pre_latency_p99': 0.2485,
            'analysis:post_latency_p99': 0.2485,
          }),
        },
        {
          // New pods only answer probes; counters exist but do not move: 0/0 must not become NaN.
          interval: '1m',
          input_series: [
            { series: `http_request_duration_seconds_count${probeSel}`, values: '0+6x15' },
            { series: `http_request_duration_seconds_count${sel('new', '200')}`, values: '5x15' },
            { series: `http_request_duration_seconds_bucket${sel('new', '200', ', le="+Inf"')}`, values: '5x15' },
            { series: `http_request_duration_seconds_count${sel('old', '200')}`, values: '0+100x15' },
          ],
          promql_expr_test: expectAll({
            'analysis:pre_success_ratio': 1,
            'analysis:pre_latency_p99': 0,
            'analysis:post_success_ratio': -1,
            'analysis:post_latency_p99': -1,
          }),
        },
        {
          // No series at all for the new pods.
          interval: '1m',
          input_series: [{ series: `http_request_duration_seconds_count${sel('old', '200')}`, values: '0+100x15' }],
          promql_expr_test: expectAll({
            'analysis:pre_success_ratio': 1,
            'analysis:pre_latency_p99': 0,
            'analysis:post_success_ratio': -1,
            'analysis:post_latency_p99': -1,
          }),
        },
      ],
    };
    await writeFile(path.join(dir, 'tests.yaml'), stringify(tests));
    try {
      await run('promtool', ['test', 'rules', 'tests.yaml'], { cwd: dir });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      expect.fail(`promtool test rules failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    }
  });
});
