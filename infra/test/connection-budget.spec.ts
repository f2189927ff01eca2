/**
 * The connection budget across the chart and the infrastructure: at the
 * chart's largest scale, during a blue/green switch, the pods' pools together
 * stay within 80 % of the max_connections the synthesised parameter group sets.
 * It reads chart/users-service/values.yaml and env/<env>.yaml as helm merges
 * them, so a change on either side (replicas, pool size, rollout, instance
 * class) that breaks the budget fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { POOL_SHARE_OF_MAX_CONNECTIONS, RDS_CLASS_MEMORY_GIB } from '../lib/capacity.js';
import { environments, type EnvironmentName } from '../lib/config.js';
import { asObject, ENVIRONMENTS, resources, single, synthesized, text, type JsonObject } from './support.js';

const chartDir = new URL('../../chart/users-service/', import.meta.url);
type Values = { [key: string]: unknown };

const isPlainObject = (v: unknown): v is Values => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Helm's merge of a values file over the chart defaults: maps merge, everything else replaces. */
function merge(base: Values, override: Values): Values {
  const out: Values = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? merge(current, value) : value;
  }
  return out;
}

export function chartValues(env: EnvironmentName): Values {
  const read = (path: string): Values => parse(readFileSync(new URL(path, chartDir), 'utf8')) as Values;
  return merge(read('values.yaml'), read(`env/${env}.yaml`));
}

function at(values: Values, path: string): unknown {
  return path.split('.').reduce<unknown>((node, key) => (isPlainObject(node) ? node[key] : undefined), values);
}

function integerAt(values: Values, path: string): number {
  const value = at(values, path);
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new Error(`${path} is not an integer: ${JSON.stringify(value)}`);
  return value;
}

export interface ChartDemand {
  readonly maxPods: number;
  readonly peakPods: number;
  readonly poolMax: number;
  readonly peakConnections: number;
}

/**
 * What the rendered chart can open at most. A blue/green Rollout runs the
 * preview stack at full size (or previewReplicaCount, then full size on
 * promotion) while the old one waits scaleDownDelaySeconds, so both stacks are
 * at maxReplicas at the same moment; a Deployment surges one pod (maxSurge 1).
 * DB_POOL_MAX from extraEnv would override the chart key, so it counts too.
 */
export function chartDemand(values: Values): ChartDemand {
  const maxPods = at(values, 'autoscaling.enabled') === true ? integerAt(values, 'autoscaling.maxReplicas') : integerAt(values, 'replicaCount');
  const peakPods = at(values, 'rollout.enabled') === true ? 2 * maxPods : maxPods + 1;
  const extra = (at(values, 'extraEnv') as { name?: string; value?: string }[] | undefined ?? []).find((e) => e.name === 'DB_POOL_MAX');
  const poolMax = extra?.value !== undefined ? Number(extra.value) : integerAt(values, 'config.dbPool.max');
  if (!Number.isInteger(poolMax) || poolMax < 1) throw new Error(`DB_POOL_MAX is not a positive integer: ${JSON.stringify(extra?.value)}`);
  return { maxPods, peakPods, poolMax, peakConnections: peakPods * poolMax };
}

/** max_connections as the synthesised parameter group of an environment sets it. */
function templateMaxConnections(template: JsonObject): number {
  const parameters = asObject(single(template, 'AWS::RDS::DBParameterGroup').properties['Parameters'], 'Parameters');
  const value = Number(parameters['max_connections']);
  assert.ok(Number.isInteger(value) && value > 0, `max_connections is set explicitly: ${JSON.stringify(parameters['max_connections'])}`);
  return value;
}

describe('connection budget: chart at full scale against the PostgreSQL it runs on', () => {
  for (const env of ENVIRONMENTS) {
    const template = (): JsonObject => synthesized().json(synthesized().built.environments[env].main);

    it(`${env}: pods x 2 (blue/green) x DB_POOL_MAX stays within 80 % of max_connections`, () => {
      const demand = chartDemand(chartValues(env));
      const max = templateMaxConnections(template());
      const budget = Math.floor(max * POOL_SHARE_OF_MAX_CONNECTIONS);
      assert.ok(
        demand.peakConnections <= budget,
        `${env}: ${demand.peakPods} pods x ${demand.poolMax} = ${demand.peakConnections} connections, budget ${budget} (80 % of max_connections ${max})`,
      );
    });

    it(`${env}: max_connections is no higher than RDS's own default for the instance class`, () => {
      const instanceClass = text(single(template(), 'AWS::RDS::DBInstance').properties['DBInstanceClass']).replace(/^db\./, '');
      const memory = RDS_CLASS_MEMORY_GIB[instanceClass];
      assert.ok(memory !== undefined, instanceClass);
      // LEAST(DBInstanceClassMemory/9531392, 5000) with the whole class memory: an upper bound of the default.
      assert.ok(templateMaxConnections(template()) <= Math.min(Math.floor((memory * 1024 ** 3) / 9_531_392), 5000));
    });

    it(`${env}: alarms when PostgreSQL connections exceed that budget`, () => {
      const budget = Math.floor(templateMaxConnections(template()) * POOL_SHARE_OF_MAX_CONNECTIONS);
      const alarm = resources(template(), 'AWS::CloudWatch::Alarm').find((a) => a.properties['MetricName'] === 'DatabaseConnections');
      assert.ok(alarm, 'connections alarm');
      assert.equal(alarm.properties['Threshold'], budget);
      assert.equal(alarm.properties['ComparisonOperator'], 'GreaterThanThreshold');
    });
  }

  it('states the figures the README capacity section shows', () => {
    const figures = ENVIRONMENTS.map((env) => {
      const d = chartDemand(chartValues(env));
      const max = templateMaxConnections(synthesized().json(synthesized().built.environments[env].main));
      return `${env} db.${environments[env].database.instanceType}: ${d.maxPods} x 2 x ${d.poolMax} = ${d.peakConnections} <= ${Math.floor(max * POOL_SHARE_OF_MAX_CONNECTIONS)} (80 % of ${max})`;
    });
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const line of figures) assert.ok(readme.includes(line), `README.md lacks: ${line}`);
  });

  describe('the demand calculation (the checker itself)', () => {
    const production = (): Values => chartValues('production');

    it('counts both blue/green stacks at maxReplicas', () => {
      const values = merge(production(), { autoscaling: { enabled: true, maxReplicas: 20 }, config: { dbPool: { max: 7 } } });
      assert.equal(chartDemand(values).peakConnections, 280);
    });

    it('counts them at full size even with a small previewReplicaCount (promotion scales the new stack up while the old one waits)', () => {
      const values = merge(production(), { rollout: { previewReplicaCount: 1 } });
      assert.equal(chartDemand(values).peakPods, 2 * chartDemand(production()).maxPods);
    });

    it('uses replicaCount plus one surge pod for a Deployment without autoscaling', () => {
      const values = merge(production(), { rollout: { enabled: false }, autoscaling: { enabled: false }, replicaCount: 4 });
      assert.equal(chartDemand(values).peakPods, 5);
    });

    it('takes DB_POOL_MAX from extraEnv when set there', () => {
      const values = merge(production(), { extraEnv: [{ name: 'DB_POOL_MAX', value: '30' }] });
      assert.equal(chartDemand(values).poolMax, 30);
    });

    it('reports the production chart as over budget once the pool goes back to 25', () => {
      const values = merge(production(), { config: { dbPool: { max: 25 } } });
      const max = templateMaxConnections(synthesized().json(synthesized().built.environments.production.main));
      assert.ok(chartDemand(values).peakConnections > Math.floor(max * POOL_SHARE_OF_MAX_CONNECTIONS));
    });
  });
});
