import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { parse, stringify } from 'yaml';
import { createMetrics } from '../../service/observability/metrics.js';
import { promtool } from '../support/prometheus.js';

/**
 * The operator-facing half of observability: the Prometheus rules and the Grafana dashboard the chart
 * ships from chart/users-service/files/. Everything PromQL goes through the real promtool.
 */

const root = fileURLToPath(new URL('../../', import.meta.url));
const RULES_FILE = join(root, 'chart/users-service/files/prometheus-rules.yaml');
const RULES_TESTS = join(root, 'test/observability/alerts.test.yaml');
const DASHBOARD_FILE = join(root, 'chart/users-service/files/grafana-dashboard.json');
const RUNBOOK = 'https://github.com/example/users-service/blob/main/docs/operations.md#';
const SEVERITIES = ['page', 'ticket'];
const BURN_WINDOWS = ['5m', '30m', '1h', '2h', '6h', '1d', '3d'];

/** The metric names of the contract (/work/notes/contract.md, "Metrics"), with their types. */
const CONTRACT_METRICS: Record<string, 'counter' | 'gauge' | 'histogram'> = {
  http_request_duration_seconds: 'histogram',
  http_requests_in_flight: 'gauge',
  db_query_duration_seconds: 'histogram',
  db_pool_connections: 'gauge',
  db_pool_pending_acquires: 'gauge',
  db_pool_max_connections: 'gauge',
  db_pool_acquire_duration_seconds: 'histogram',
  ratelimit_decisions_total: 'counter',
  ratelimit_redis_errors_total: 'counter',
  users_created_total: 'counter',
  users_create_conflicts_total: 'counter',
  users_updated_total: 'counter',
  users_erased_total: 'counter',
  users_idempotent_replays_total: 'counter',
  idempotency_keys_purged_total: 'counter',
  validation_failures_total: 'counter',
  auth_requests_total: 'counter',
  auth_jwks_fetches_total: 'counter',
  tracing_spans_dropped_total: 'counter',
};
/** Series Prometheus itself produces. */
const PROMETHEUS_SERIES = ['up', 'ALERTS', 'ALERTS_FOR_STATE'];

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RulesFile {
  groups: { name: string; interval?: string; rules: Rule[] }[];
}
interface AlertTest {
  eval_time: string;
  alertname: string;
  exp_alerts?: { exp_labels?: Record<string, string>; exp_annotations?: Record<string, string> }[] | null;
}
interface RulesTestFile {
  rule_files: string[];
  tests: { name: string; alert_rule_test?: AlertTest[] }[];
}
interface Target {
  expr?: string;
  exemplar?: boolean;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id?: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
  gridPos?: { x: number; y: number; w: number; h: number };
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  datasource?: { type?: string; uid?: string };
}
interface Dashboard {
  id?: unknown;
  uid?: string;
  title?: string;
  schemaVersion?: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

const rulesFile = parse(readFileSync(RULES_FILE, 'utf8')) as RulesFile;
const rules = rulesFile.groups.flatMap((g) => g.rules);
const alerts = rules.filter((r): r is Rule & { alert: string } => typeof r.alert === 'string');
const recordings = rules.filter((r): r is Rule & { record: string } => typeof r.record === 'string');
const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
const allPanels = (panels: Panel[]): Panel[] => panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
const panels = allPanels(dashboard.panels);
const dashboardExprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr ?? '' })));

/** Concrete values for Grafana's template variables, so the expressions are plain PromQL. */
function substituteVariables(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__interval', '1m')
    .replaceAll('$__range', '6h')
    .replaceAll(/\$\{?namespace\}?/g, 'users-service-production')
    .replaceAll(/\$\{?route\}?/g, '/api/users|/api/users/\\\\{id\\\\}');
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/**
 * The metric names an expression selects: what is left once strings, label matchers, ranges,
 * grouping clauses, keywords and function calls are taken out.
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const match of bare.matchAll(/(?<![\w.:])[A-Za-z_:][\w:]*/g)) {
    const rest = bare.slice(match.index + match[0].length).trimStart();
    if (rest.startsWith('(') || KEYWORDS.has(match[0].toLowerCase())) continue;
    names.add(match[0]);
  }
  return [...names];
}

/** Every series name a scrape of users-service may contain, plus what Prometheus and our rules add. */
async function knownSeries(): Promise<Set<string>> {
  const expand = (name: string, type: string): string[] =>
    type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : type === 'summary' ? [name, `${name}_sum`, `${name}_count`] : [name];
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const defaults = (await registry.getMetricsAsJSON()).flatMap((m) => expand(m.name, String(m.type)));
  return new Set([
    ...Object.entries(CONTRACT_METRICS).flatMap(([name, type]) => expand(name, type)),
    ...defaults,
    ...PROMETHEUS_SERIES,
    ...recordings.map((r) => r.record),
  ]);
}

function checkRules(path: string): void {
  const { status, output } = promtool(['check', 'rules', path]);
  expect(status, `promtool check rules ${path}:\n${output}`).to.equal(0);
}

describe('observability: Prometheus rules and Grafana dashboard', function () {
  this.timeout(120_000);

  before(function () {
    // Fails with "promtool is not installed (apt-get install prometheus)" when it is missing.
    const { status, output } = promtool(['--version']);
    expect(status, output).to.equal(0);
  });

  describe('prometheus-rules.yaml', () => {
    it('passes promtool check rules', () => {
      checkRules(RULES_FILE);
    });

    it('passes its promtool unit tests (test/observability/alerts.test.yaml)', function () {
      // About 30 s of promtool CPU (measured): three minutes when four jobs share two cores, so this bound is
      // on a hang, not on speed.
      this.timeout(600_000);
      const { status, output } = promtool(['test', 'rules', RULES_TESTS]);
      expect(status, `promtool test rules:\n${output}`).to.equal(0);
      expect(output).to.contain('SUCCESS');
    });

    it('records the SLI error ratio over every burn-rate window', () => {
      const recorded = recordings.map((r) => r.record);
      for (const window of BURN_WINDOWS) {
        const name = `namespace_job:http_request_errors:ratio_rate${window}`;
        expect(recorded, name).to.include(name);
        const expr = recordings.find((r) => r.record === name)!.expr;
        expect(expr).to.contain(`[${window}]`);
        expect(expr).to.contain('status_code=~"5.."');
        expect(expr).to.contain('route!~"/health|/ready|/metrics"');
      }
    });

    it('gives every alert a severity, summary, description and a runbook_url anchored at its name', () => {
      expect(alerts).to.not.be.empty;
      for (const alert of alerts) {
        const what = `alert ${alert.alert}`;
        expect(alert.alert, what).to.match(/^UsersService[A-Za-z]+$/);
        expect(SEVERITIES, `${what} severity`).to.include(alert.labels?.severity);
        expect(alert.annotations?.summary, `${what} summary`).to.be.a('string').and.not.be.empty;
        expect(alert.annotations?.description, `${what} description`).to.be.a('string').and.not.be.empty;
        expect(alert.annotations?.runbook_url, `${what} runbook_url`).to.equal(`${RUNBOOK}${alert.alert.toLowerCase()}`);
      }
    });

    it('pages on the fast burn rates and tickets the slow ones (SRE workbook windows)', () => {
      const burns = alerts.filter((a) => a.alert === 'UsersServiceErrorBudgetBurn');
      const tiers = burns.map((a) => `${a.labels?.burn_rate ?? ''} ${a.labels?.long_window ?? ''}&${a.labels?.short_window ?? ''} ${a.labels?.severity ?? ''}`);
      expect(tiers).to.have.members(['14.4 1h&5m page', '6 6h&30m page', '3 1d&2h ticket', '1 3d&6h ticket']);
      for (const burn of burns) {
        expect(burn.expr).to.contain(`ratio_rate${burn.labels!.long_window!} > (${burn.labels!.burn_rate!} * 0.001)`);
        expect(burn.expr).to.contain(`ratio_rate${burn.labels!.short_window!} > (${burn.labels!.burn_rate!} * 0.001)`);
      }
    });

    it('has a unit test where each alert fires and one where it stays silent', () => {
      const testFile = parse(readFileSync(RULES_TESTS, 'utf8')) as RulesTestFile;
      expect(testFile.rule_files).to.deep.equal(['../../chart/users-service/files/prometheus-rules.yaml']);
      const cases = testFile.tests.flatMap((t) => t.alert_rule_test ?? []);
      for (const name of new Set(alerts.map((a) => a.alert))) {
        const own = cases.filter((c) => c.alertname === name);
        expect(own.some((c) => (c.exp_alerts ?? []).length > 0), `${name} fires in some test`).to.be.true;
        expect(own.some((c) => (c.exp_alerts ?? []).length === 0), `${name} stays silent in some test`).to.be.true;
      }
      // Every burn-rate tier is seen firing, with its own labels.
      const firedTiers = cases.flatMap((c) => (c.exp_alerts ?? []).map((a) => a.exp_labels?.long_window)).filter(Boolean);
      expect(new Set(firedTiers)).to.have.keys('1h', '6h', '1d', '3d');
    });

    it('aggregates across pods: no alert or SLI is grouped by pod or instance', () => {
      for (const rule of rules) {
        for (const [, labels] of rule.expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
          expect(labels, `${rule.alert ?? rule.record ?? ''}: ${rule.expr}`).to.not.match(/\b(?:pod|instance)\b/);
        }
      }
    });

    it('references only metrics from the contract, prom-client defaults or its own recording rules', async () => {
      const known = await knownSeries();
      for (const rule of rules) {
        for (const name of metricNames(rule.expr)) {
          expect(known.has(name), `${rule.alert ?? rule.record ?? ''} uses unknown metric ${name}`).to.be.true;
        }
      }
    });
  });

  describe('grafana-dashboard.json', () => {
    it('is importable as is: stable uid, no id, schemaVersion 39', () => {
      expect(dashboard).to.not.have.property('id');
      expect(dashboard.uid).to.equal('users-service-overview');
      expect(dashboard.title).to.equal('users-service');
      expect(dashboard.schemaVersion).to.equal(39);
      const ids = panels.map((p) => p.id);
      expect(new Set(ids).size, 'panel ids are unique').to.equal(ids.length);
    });

    it('lays every panel out in its own cells, none drawn over another', () => {
      const owner = new Map<string, string>();
      const overlaps: string[] = [];
      for (const { title, gridPos: g } of panels) {
        if (!g) continue;
        for (let y = g.y; y < g.y + g.h; y++) {
          for (let x = g.x; x < g.x + g.w; x++) {
            const cell = `${String(x)},${String(y)}`;
            const other = owner.get(cell);
            if (other !== undefined && !overlaps.includes(`${title} over ${other}`)) overlaps.push(`${title} over ${other}`);
            owner.set(cell, title);
          }
        }
      }
      expect(overlaps).to.deep.equal([]);
    });

    it('takes its data source and namespace/route from template variables', () => {
      const vars = Object.fromEntries(dashboard.templating.list.map((v) => [v.name, v]));
      expect(vars.datasource).to.include({ type: 'datasource', query: 'prometheus' });
      expect(vars.namespace?.type).to.equal('query');
      expect(vars.route?.type).to.equal('query');
      for (const v of [vars.namespace!, vars.route!]) expect(v.datasource).to.deep.equal({ type: 'prometheus', uid: '${datasource}' });
      for (const panel of panels.filter((p) => p.type !== 'row')) {
        expect(panel.datasource, panel.title).to.deep.equal({ type: 'prometheus', uid: '${datasource}' });
        for (const target of panel.targets ?? []) {
          expect(target.datasource, panel.title).to.deep.equal({ type: 'prometheus', uid: '${datasource}' });
          expect(target.expr, panel.title).to.contain('namespace="$namespace"');
        }
      }
    });

    it('has the golden-signal, saturation, business and rate-limiter rows', () => {
      const rows = panels.filter((p) => p.type === 'row').map((p) => p.title);
      for (const row of ['Golden signals per route', 'Saturation', 'Business', 'Rate limiter']) expect(rows).to.include(row);
      const latency = dashboardExprs.filter((e) => e.expr.startsWith('histogram_quantile') && e.expr.includes('http_request_duration_seconds_bucket'));
      expect(latency.map((e) => e.expr.slice(0, 'histogram_quantile(0.99'.length))).to.include.members([
        'histogram_quantile(0.5,',
        'histogram_quantile(0.95',
        'histogram_quantile(0.99',
      ]);
      for (const { expr } of latency) expect(expr).to.contain('sum by (le, route)');
    });

    it('shows updates, erasures and idempotent replays of the users resource', () => {
      for (const metric of ['users_updated_total', 'users_erased_total', 'users_idempotent_replays_total']) {
        expect(dashboardExprs.some((e) => e.expr.includes(metric)), metric).to.be.true;
      }
    });

    it('shows exemplars on the latency panels, so a slow bucket links to a trace', () => {
      const latencyPanels = panels.filter((p) => p.title.startsWith('Latency p'));
      expect(latencyPanels).to.have.length(3);
      for (const panel of latencyPanels) for (const target of panel.targets ?? []) expect(target.exemplar, panel.title).to.equal(true);
    });

    it('has only PromQL that the real parser accepts (promtool check rules)', () => {
      expect(dashboardExprs.length).to.be.greaterThan(20);
      const exprs = dashboardExprs.map(({ panel, expr }) => ({ panel, expr: substituteVariables(expr) }));
      for (const { panel, expr } of exprs) expect(expr, `${panel}: unresolved variable`).to.not.contain('$');
      const dir = mkdtempSync(join(tmpdir(), 'dashboard-promql-'));
      try {
        const file = join(dir, 'dashboard.rules.yaml');
        const group = { name: 'dashboard', rules: exprs.map(({ expr }, i) => ({ record: `dashboard:expr_${i}`, expr })) };
        writeFileSync(file, stringify({ groups: [group] }));
        const { status, output } = promtool(['check', 'rules', file]);
        const failed = [...output.matchAll(/dashboard:expr_(\d+)/g)].map((m) => exprs[Number(m[1])]);
        expect(status, `promtool rejected dashboard PromQL:\n${output}\n${JSON.stringify(failed, null, 2)}`).to.equal(0);
        expect(output).to.contain(`SUCCESS: ${exprs.length} rules found`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('references only metrics from the contract, prom-client defaults or the recording rules', async () => {
      const known = await knownSeries();
      const queries = dashboard.templating.list.map((v) => (typeof v.query === 'string' ? v.query : (v.query?.query ?? '')));
      const variableMetrics = queries.flatMap((q) => [...q.matchAll(/label_values\(\s*([A-Za-z_:][\w:]*)/g)].map((m) => m[1]!));
      expect(variableMetrics).to.not.be.empty;
      for (const name of variableMetrics) expect(known.has(name), `variable uses unknown metric ${name}`).to.be.true;
      for (const { panel, expr } of dashboardExprs) {
        const names = metricNames(expr);
        expect(names, `${panel}: ${expr}`).to.not.be.empty;
        for (const name of names) expect(known.has(name), `${panel} uses unknown metric ${name}`).to.be.true;
      }
    });
  });

  describe('metric names', () => {
    it('are extracted from PromQL without functions, labels, keywords or durations', () => {
      expect(
        metricNames(
          'histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{route=~"x|y", le!="1e3"}[5m] offset 1h))) > 0.5 and on(job) sum(b) by (pod) / ignoring(state) c or vector(0)',
        ),
      ).to.have.members(['a_bucket', 'b', 'c']);
    });

    it('of the contract are all registered by the service', async () => {
      const registry = new Registry();
      createMetrics(registry);
      const registered = (await registry.getMetricsAsJSON()).map((m) => m.name);
      expect(registered).to.include.members(Object.keys(CONTRACT_METRICS));
    });
  });
});
