import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { environments } from '../lib/config.js';
import { asArray, asObject, ENVIRONMENTS, isObject, referencedId, referencedType, resources, single, synthesized, text, type JsonObject, type Resource } from './support.js';

function alarmsOn(template: JsonObject, metricName: string): Resource[] {
  return resources(template, 'AWS::CloudWatch::Alarm').filter((a) => a.properties['MetricName'] === metricName);
}

function dimension(alarm: Resource, name: string): string | undefined {
  const found = asArray(alarm.properties['Dimensions']).find((d) => isObject(d) && d['Name'] === name);
  return isObject(found) ? (typeof found['Value'] === 'string' ? found['Value'] : referencedId(found['Value'])) : undefined;
}

for (const name of ENVIRONMENTS) {
  const config = environments[name];
  const t = (): JsonObject => synthesized().json(synthesized().built.environments[name].main);
  const topicId = (): string => single(t(), 'AWS::SNS::Topic').logicalId;
  const redisNodes = Array.from({ length: config.cache.nodes }, (_, i) => `users-service-${name}-00${i + 1}`);

  describe(`${name} data-tier monitoring`, () => {
    it('sends every alarm, and its recovery, to the alarm topic', () => {
      const alarms = resources(t(), 'AWS::CloudWatch::Alarm');
      assert.ok(alarms.length >= 4);
      for (const a of alarms) {
        assert.deepEqual(asArray(a.properties['AlarmActions']).map(referencedId), [topicId()], a.logicalId);
        assert.deepEqual(asArray(a.properties['OKActions']).map(referencedId), [topicId()], a.logicalId);
      }
    });

    it('encrypts the alarm topic with a customer-managed key that CloudWatch and EventBridge may use, and refuses plain HTTP', () => {
      const template = t();
      const topic = single(template, 'AWS::SNS::Topic');
      assert.equal(referencedType(template, topic.properties['KmsMasterKeyId']), 'AWS::KMS::Key');
      const key = resources(template, 'AWS::KMS::Key').find((k) => k.logicalId === referencedId(topic.properties['KmsMasterKeyId']))!;
      const statements = asArray(asObject(key.properties['KeyPolicy'], 'policy')['Statement']).map((s) => asObject(s, 's'));
      const grantTo = (service: string): string[] => {
        const statement = statements.find((s) => isObject(s['Principal']) && s['Principal']['Service'] === service);
        assert.ok(statement, `key policy statement for ${service}`);
        return asArray(statement['Action']).map(String).sort();
      };
      assert.deepEqual(grantTo('cloudwatch.amazonaws.com'), ['kms:Decrypt', 'kms:GenerateDataKey']);
      assert.deepEqual(grantTo('events.amazonaws.com'), ['kms:Decrypt', 'kms:GenerateDataKey*']);
      const topicPolicy = JSON.stringify(single(template, 'AWS::SNS::TopicPolicy').properties);
      assert.match(topicPolicy, /"aws:SecureTransport":"false"/);
    });

    it('alarms on PostgreSQL free storage below 10 % of the autoscaling ceiling', () => {
      const [alarm] = alarmsOn(t(), 'FreeStorageSpace');
      assert.ok(alarm);
      assert.equal(alarm.properties['Threshold'], config.database.maxAllocatedStorageGiB * 0.1 * 1024 ** 3);
      assert.equal(alarm.properties['ComparisonOperator'], 'LessThanThreshold');
      assert.equal(dimension(alarm, 'DBInstanceIdentifier'), single(t(), 'AWS::RDS::DBInstance').logicalId);
    });

    it(`alarms on the CPU credit balance of the burstable db.${config.database.instanceType}`, () => {
      const alarms = alarmsOn(t(), 'CPUCreditBalance');
      assert.equal(alarms.length, config.database.instanceType.startsWith('t') ? 1 : 0);
      if (alarms[0]) assert.equal(alarms[0].properties['ComparisonOperator'], 'LessThanThreshold');
    });

    it('alarms on memory and on evictions of every Redis node', () => {
      for (const metric of ['DatabaseMemoryUsagePercentage', 'Evictions']) {
        assert.deepEqual(alarmsOn(t(), metric).map((a) => dimension(a, 'CacheClusterId')).sort(), redisNodes, metric);
        for (const a of alarmsOn(t(), metric)) assert.equal(a.properties['Namespace'], 'AWS/ElastiCache');
      }
      assert.ok(alarmsOn(t(), 'Evictions').every((a) => a.properties['Threshold'] === 0 && a.properties['Statistic'] === 'Sum'));
    });

    it(config.cache.nodes > 1 ? 'alarms on replication lag of every Redis node (whichever is the replica)' : 'has no replication-lag alarm: there is no replica', () => {
      const alarms = alarmsOn(t(), 'ReplicationLag');
      assert.deepEqual(alarms.map((a) => dimension(a, 'CacheClusterId')).sort(), config.cache.nodes > 1 ? redisNodes : []);
      for (const a of alarms) assert.equal(a.properties['TreatMissingData'], 'notBreaching');
    });

    const rule = (detailType: string): JsonObject => {
      const found = resources(t(), 'AWS::Events::Rule').filter((r) => JSON.stringify(r.properties['EventPattern']).includes(`"${detailType}"`));
      assert.equal(found.length, 1, detailType);
      const properties = found[0]!.properties;
      assert.deepEqual(asArray(properties['Targets']).map((target) => referencedId(asObject(target, 'target')['Arn'])), [topicId()]);
      return asObject(properties['EventPattern'], 'pattern');
    };

    it('routes failed, aborted and expired AWS Backup jobs of this environment\'s vault to the topic', () => {
      const pattern = rule('Backup Job State Change');
      assert.deepEqual(pattern['source'], ['aws.backup']);
      const detail = asObject(pattern['detail'], 'detail');
      assert.deepEqual(detail['state'], ['FAILED', 'ABORTED', 'EXPIRED']);
      assert.equal(referencedId(asArray(detail['backupVaultArn'])[0]), single(t(), 'AWS::Backup::BackupVault').logicalId);
    });

    it('routes failed copy jobs out of this environment\'s vault to the topic', () => {
      const detail = asObject(rule('Copy Job State Change')['detail'], 'detail');
      assert.deepEqual(detail['state'], ['FAILED', 'PARTIAL']);
      assert.equal(referencedId(asArray(detail['sourceBackupVaultArn'])[0]), single(t(), 'AWS::Backup::BackupVault').logicalId);
    });

    it(`routes failed or abandoned rotations of users-service/${name}/ secrets to the topic`, () => {
      const pattern = rule('AWS Service Event via CloudTrail');
      assert.deepEqual(pattern['source'], ['aws.secretsmanager']);
      const detail = asObject(pattern['detail'], 'detail');
      assert.deepEqual(detail['eventName'], ['RotationFailed', 'RotationAbandoned']);
      const prefix = JSON.stringify(asObject(detail['additionalEventData'], 'additionalEventData')['SecretId']);
      assert.match(prefix, /"prefix"/);
      assert.ok(prefix.includes(`:secretsmanager:${config.region}:${config.account}:secret:users-service/${name}/`), prefix);
    });

    it('exports the topic ARN for the on-call subscription', () => {
      const output = asObject(asObject(t()['Outputs'], 'Outputs')['AlarmTopicArn'], 'output');
      assert.equal(referencedId(output['Value']), topicId());
      assert.ok(text(output['Description']).length > 0);
    });
  });
}
