import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as rds from 'aws-cdk-lib/aws-rds';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { connectionBudget, isBurstable } from './capacity.js';
import type { EnvironmentConfig } from './config.js';

/** Thresholds that are not derived from the configuration; each says why in the README ("Alarms"). */
export const ALARM_THRESHOLDS = {
  /** Credits left on a burstable instance; below this it runs on surplus credits (billed) within hours. */
  cpuCreditBalance: 50,
  /** Per cent of a node's maxmemory; evictions start at 100. */
  redisMemoryPercent: 80,
  /** Seconds a Redis replica may trail its primary. */
  redisReplicationLagSeconds: 10,
  /** Free storage below this share of the autoscaling ceiling: autoscaling cannot keep up, or the ceiling is near. */
  freeStorageShareOfMax: 0.1,
} as const;

export interface DataTierMonitoringProps {
  readonly config: EnvironmentConfig;
  /** Encrypts the topic; its policy must let CloudWatch and EventBridge use it. */
  readonly topicKey: kms.Key;
  readonly database: rds.DatabaseInstance;
  readonly redisReplicationGroupId: string;
  readonly backupVaultName: string;
  readonly backupVaultArn: string;
}

/**
 * What watches the data tier: CloudWatch alarms on PostgreSQL and Redis, and
 * EventBridge rules for AWS Backup and Secrets Manager rotation failures, all
 * sent to one SNS topic that on-call subscribes to.
 */
export class DataTierMonitoring extends Construct {
  public readonly topic: sns.Topic;

  constructor(scope: Construct, id: string, props: DataTierMonitoringProps) {
    super(scope, id);
    const { config, database } = props;
    const env = config.name;
    const stack = Stack.of(this);

    this.topic = new sns.Topic(this, 'Topic', {
      topicName: `users-service-${env}-data-tier-alarms`,
      masterKey: props.topicKey,
      enforceSSL: true,
    });
    // An encrypted topic accepts a publication only when the publisher may use
    // its key. CloudWatch needs this statement; the EventBridge target below
    // adds its own for events.amazonaws.com.
    props.topicKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AlarmPublisher',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
      }),
    );
    const notify = new actions.SnsAction(this.topic);
    const alarm = (alarmId: string, props: cloudwatch.AlarmProps): void => {
      const created = new cloudwatch.Alarm(this, alarmId, { ...props, alarmName: `users-service-${env}-${alarmId}` });
      created.addAlarmAction(notify);
      created.addOkAction(notify);
    };

    // --- PostgreSQL
    const budget = connectionBudget(config.database.instanceType);
    alarm('database-connections', {
      alarmDescription: `More than the pods' connection budget (${budget}, 80 % of max_connections): something else holds connections, or the chart outgrew the budget (README "Capacity")`,
      metric: database.metricDatabaseConnections({ statistic: 'Maximum', period: Duration.minutes(1) }),
      threshold: budget,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 5,
      datapointsToAlarm: 3,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    const freeStorageBytes = config.database.maxAllocatedStorageGiB * ALARM_THRESHOLDS.freeStorageShareOfMax * 1024 ** 3;
    alarm('database-free-storage', {
      alarmDescription: `Less than ${ALARM_THRESHOLDS.freeStorageShareOfMax * 100} % of the ${config.database.maxAllocatedStorageGiB} GiB storage ceiling free`,
      metric: database.metricFreeStorageSpace({ statistic: 'Minimum', period: Duration.minutes(5) }),
      threshold: freeStorageBytes,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 3,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    if (isBurstable(config.database.instanceType)) {
      alarm('database-cpu-credits', {
        alarmDescription: `db.${config.database.instanceType} has fewer than ${ALARM_THRESHOLDS.cpuCreditBalance} CPU credits left: sustained load above its baseline`,
        metric: database.metric('CPUCreditBalance', { statistic: 'Minimum', period: Duration.minutes(5) }),
        threshold: ALARM_THRESHOLDS.cpuCreditBalance,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: 3,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      });
    }

    // --- Redis: one alarm per node (member clusters are named <group>-001, -002, ...).
    const nodeIds = Array.from({ length: config.cache.nodes }, (_, i) => `${props.redisReplicationGroupId}-${String(i + 1).padStart(3, '0')}`);
    const redisMetric = (metricName: string, node: string, statistic: string): cloudwatch.Metric =>
      new cloudwatch.Metric({ namespace: 'AWS/ElastiCache', metricName, dimensionsMap: { CacheClusterId: node }, statistic, period: Duration.minutes(5) });
    nodeIds.forEach((node, i) => {
      const suffix = String(i + 1).padStart(3, '0');
      alarm(`redis-${suffix}-memory`, {
        alarmDescription: `Redis node ${node} above ${ALARM_THRESHOLDS.redisMemoryPercent} % of maxmemory: evictions of rate-limit counters are near`,
        metric: redisMetric('DatabaseMemoryUsagePercentage', node, 'Maximum'),
        threshold: ALARM_THRESHOLDS.redisMemoryPercent,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 3,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      });
      alarm(`redis-${suffix}-evictions`, {
        alarmDescription: `Redis node ${node} evicted keys: rate-limit counters are being lost`,
        metric: redisMetric('Evictions', node, 'Sum'),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      if (config.cache.nodes > 1) {
        // Only a node that is currently a replica reports the metric; the primary reports nothing.
        alarm(`redis-${suffix}-replication-lag`, {
          alarmDescription: `Redis node ${node}, while a replica, trails its primary by more than ${ALARM_THRESHOLDS.redisReplicationLagSeconds} s`,
          metric: redisMetric('ReplicationLag', node, 'Maximum'),
          threshold: ALARM_THRESHOLDS.redisReplicationLagSeconds,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          evaluationPeriods: 3,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        });
      }
    });

    // --- Events: AWS Backup jobs of this environment's vault, rotations of its secrets.
    const toTopic = new targets.SnsTopic(this.topic);
    new events.Rule(this, 'BackupJobFailed', {
      ruleName: `users-service-${env}-backup-job-failed`,
      description: `AWS Backup job into ${props.backupVaultName} failed, aborted or expired`,
      eventPattern: {
        source: ['aws.backup'],
        detailType: ['Backup Job State Change'],
        detail: { state: ['FAILED', 'ABORTED', 'EXPIRED'], backupVaultArn: [props.backupVaultArn] },
      },
      targets: [toTopic],
    });
    new events.Rule(this, 'BackupCopyJobFailed', {
      ruleName: `users-service-${env}-backup-copy-failed`,
      description: `Copy of a recovery point from ${props.backupVaultName} to ${config.backup.copyRegion} failed`,
      eventPattern: {
        source: ['aws.backup'],
        detailType: ['Copy Job State Change'],
        detail: { state: ['FAILED', 'PARTIAL'], sourceBackupVaultArn: [props.backupVaultArn] },
      },
      targets: [toTopic],
    });
    const secretArnPrefix = `arn:${stack.partition}:secretsmanager:${stack.region}:${stack.account}:secret:users-service/${env}/`;
    new events.Rule(this, 'RotationFailed', {
      ruleName: `users-service-${env}-rotation-failed`,
      description: `Secrets Manager rotation of a users-service/${env}/ secret failed or was abandoned`,
      eventPattern: {
        source: ['aws.secretsmanager'],
        detailType: ['AWS Service Event via CloudTrail'],
        detail: {
          eventName: ['RotationFailed', 'RotationAbandoned'],
          additionalEventData: { SecretId: events.Match.prefix(secretArnPrefix) },
        },
      },
      targets: [toTopic],
    });
  }
}
