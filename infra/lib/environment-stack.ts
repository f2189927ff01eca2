import { Aws, CfnOutput, Duration, Fn, RemovalPolicy, Stack, Tags, Validations, type StackProps } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { copyVaultArn, vaultLockConfiguration } from './backup-copy-stack.js';
import { maxConnections } from './capacity.js';
import { contract, PASSWORD_EXCLUDED_CHARACTERS, type EnvironmentConfig } from './config.js';
import { DataTierMonitoring } from './monitoring.js';

export interface EnvironmentStackProps extends StackProps {
  readonly config: EnvironmentConfig;
}

/** Subnet group names; tests and the README refer to them. */
export const SUBNETS = {
  rotation: 'rotation',
  data: 'data',
} as const;

/** A Secrets Manager rotation schedule: the given day of every month. */
function monthlyOn(dayOfMonth: number, hourUtc: number): string {
  return `cron(0 ${hourUtc} ${dayOfMonth} * ? *)`;
}

/** Log groups are named by the service that writes them, so their names are fixed. */
function rdsLogGroupName(instanceIdentifier: string, log: string): string {
  return `/aws/rds/instance/${instanceIdentifier}/${log}`;
}

/**
 * One environment's data tier and access: the data VPC peered with the
 * cluster's VPC, PostgreSQL, Redis, their secrets, backups and the IRSA role
 * External Secrets assumes. One stack per environment so that an environment
 * is deployed, diffed and destroyed as a unit and staging can never reference
 * a production resource.
 */
export class EnvironmentStack extends Stack {
  public readonly vpc: ec2.Vpc;
  public readonly database: rds.DatabaseInstance;
  /** The application user's secret (users-service/<env>/database): what External Secrets reads. */
  public readonly databaseSecret: secretsmanager.ISecret;
  /** The master user's secret (users-service/<env>/database-master): administrators and rotation only. */
  public readonly databaseMasterSecret: secretsmanager.ISecret;
  public readonly redisSecret: secretsmanager.Secret;
  public readonly redis: elasticache.CfnReplicationGroup;
  public readonly externalSecretsRole: iam.Role;
  private readonly configuredAzs: readonly string[];

  /**
   * The AZs come from the typed config. Without this override the VPC asks
   * `Stack.availabilityZones`, which records a context lookup that `cdk synth`
   * resolves by calling AWS; synthesis must work offline.
   */
  override get availabilityZones(): string[] {
    return [...this.configuredAzs];
  }

  constructor(scope: Construct, id: string, props: EnvironmentStackProps) {
    super(scope, id, { ...props, env: { account: props.config.account, region: props.config.region } });
    const { config } = props;
    const env = config.name;
    this.configuredAzs = config.availabilityZones;
    Tags.of(this).add('service', 'users-service');
    Tags.of(this).add('environment', env);

    // --- Keys: one per kind of data, so a key policy or a key deletion has a small blast radius.
    const key = (id: string, alias: string, purpose: string): kms.Key =>
      new kms.Key(this, id, {
        alias: `alias/users-service-${env}-${alias}`,
        description: `users-service ${env}: ${purpose}`,
        enableKeyRotation: true,
        // Deleting a key makes everything encrypted with it (snapshots included) unreadable.
        removalPolicy: RemovalPolicy.RETAIN,
        pendingWindow: Duration.days(30),
      });
    const dataKey = key('DataKey', 'data', 'RDS storage and ElastiCache at rest');
    const secretsKey = key('SecretsKey', 'secrets', 'Secrets Manager secrets (database credentials, Redis auth token)');
    const logsKey = key('LogsKey', 'logs', 'CloudWatch Logs (VPC flow logs, PostgreSQL logs)');
    const backupKey = key('BackupKey', 'backup', 'AWS Backup recovery points in the primary region');
    const alarmsKey = key('AlarmsKey', 'alarms', 'the alarm topic (CloudWatch alarms, AWS Backup and rotation failures)');
    // CloudWatch Logs encrypts with the key itself (no grant), so the key policy
    // must allow the regional logs service, limited to this account's log groups.
    logsKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchLogs',
        principals: [new iam.ServicePrincipal(`logs.${this.region}.amazonaws.com`)],
        actions: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncryptFrom', 'kms:ReEncryptTo', 'kms:GenerateDataKey', 'kms:DescribeKey'],
        resources: ['*'],
        conditions: {
          ArnLike: { 'kms:EncryptionContext:aws:logs:arn': `arn:aws:logs:${this.region}:${this.account}:log-group:*` },
        },
      }),
    );

    // --- Network
    // No internet gateway and no NAT: nothing here talks to the internet. The
    // pods egress through the cluster's own VPC, and the rotation functions
    // reach Secrets Manager through an interface endpoint.
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(config.vpcCidr),
      maxAzs: config.availabilityZones.length,
      natGateways: 0,
      subnetConfiguration: [
        // The secret-rotation functions and the Secrets Manager endpoint.
        { name: SUBNETS.rotation, subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 26 },
        // PostgreSQL and Redis: no route to or from the internet at all.
        { name: SUBNETS.data, subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
      // The default-SG restriction is implemented with a custom-resource Lambda
      // (its own role, managed policy and runtime to patch). Nothing here uses
      // the default SG: every resource gets a dedicated group below.
      restrictDefaultSecurityGroup: false,
    });
    Validations.of(this.vpc).acknowledge({
      id: 'CloudFormation-Validate::W3010',
      reason:
        'Availability zones are named in the typed config on purpose: synthesis must not call AWS to look them up, and the data tier should sit in the same zones as the cluster nodes (cross-AZ traffic is billed).',
    });
    const flowLogGroup = new logs.LogGroup(this, 'FlowLogGroup', {
      logGroupName: `/users-service/${env}/vpc-flow-logs`,
      retention: config.logRetention,
      encryptionKey: logsKey,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogGroup),
      trafficType: ec2.FlowLogTrafficType.ALL,
    });
    const dataSubnets = this.vpc.selectSubnets({ subnetGroupName: SUBNETS.data });

    // Peering to the cluster's VPC (same account and region: accepted on creation).
    const peering = new ec2.CfnVPCPeeringConnection(this, 'ClusterPeering', {
      vpcId: this.vpc.vpcId,
      peerVpcId: config.cluster.vpcId,
      tags: [{ key: 'Name', value: `users-service-${env}-data-to-${config.cluster.name}` }],
    });
    // Only the data subnets talk to the cluster; the route is what lets replies return.
    dataSubnets.subnets.forEach((subnet, i) => {
      new ec2.CfnRoute(this, `DataToClusterRoute${i}`, {
        routeTableId: subnet.routeTable.routeTableId,
        destinationCidrBlock: config.cluster.vpcCidr,
        vpcPeeringConnectionId: peering.ref,
      });
    });
    config.cluster.routeTableIds.forEach((routeTableId, i) => {
      new ec2.CfnRoute(this, `ClusterToDataRoute${i}`, {
        routeTableId,
        destinationCidrBlock: config.vpcCidr,
        vpcPeeringConnectionId: peering.ref,
      });
    });

    // Security-group references across a same-region peering are allowed, so
    // ingress names the pods' group rather than the whole cluster CIDR.
    const podPeer = ec2.Peer.securityGroupId(config.cluster.podSecurityGroupId);
    const databaseSg = new ec2.SecurityGroup(this, 'DatabaseSg', {
      vpc: this.vpc,
      description: `users-service ${env} PostgreSQL: ingress from the service pods only`,
      allowAllOutbound: false,
    });
    databaseSg.addIngressRule(podPeer, ec2.Port.tcp(contract.databasePort), 'users-service pods');
    const redisSg = new ec2.SecurityGroup(this, 'RedisSg', {
      vpc: this.vpc,
      description: `users-service ${env} Redis: ingress from the service pods only`,
      allowAllOutbound: false,
    });
    redisSg.addIngressRule(podPeer, ec2.Port.tcp(contract.redisPort), 'users-service pods');
    // EC2 accepts a group of the peer VPC only once the peering is active;
    // without the dependency CloudFormation creates both in parallel and the
    // first deploy fails.
    databaseSg.node.addDependency(peering);
    redisSg.node.addDependency(peering);

    // --- PostgreSQL
    const instanceIdentifier = `users-service-${env}`;
    // The major version only: minor upgrades are automatic, and a pinned minor
    // would make the template disagree with the instance after each one.
    const engine = rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.of('17', '17') });
    const parameterGroup = new rds.ParameterGroup(this, 'DatabaseParameters', {
      engine,
      description: `users-service ${env}: TLS only, slow-query logging without bind values, fixed connection limit`,
      parameters: {
        // Refuse unencrypted connections server-side, whatever sslmode a client asks for.
        'rds.force_ssl': '1',
        log_min_duration_statement: String(config.database.slowQueryThresholdMs),
        // Lock waits are the usual cause of a slow statement that is not itself slow.
        log_lock_waits: '1',
        // A logged statement must not carry its bind values: they are names and
        // e-mail addresses, and the log is kept for months.
        log_parameter_max_length: '0',
        log_parameter_max_length_on_error: '0',
        // Stated, not left to RDS's memory formula, so the connection budget
        // (README "Capacity", infra/test/connection-budget.spec.ts) is a fact.
        max_connections: String(maxConnections(config.database.instanceType)),
      },
    });
    // RDS creates these on first write with no retention and no CMK; creating
    // them first keeps the retention and encryption under our control.
    const rdsLogGroups = ['postgresql', 'upgrade'].map(
      (log) =>
        new logs.LogGroup(this, `DatabaseLogs-${log}`, {
          logGroupName: rdsLogGroupName(instanceIdentifier, log),
          retention: config.logRetention,
          encryptionKey: logsKey,
          removalPolicy: RemovalPolicy.DESTROY,
        }),
    );
    this.database = new rds.DatabaseInstance(this, 'Database', {
      instanceIdentifier,
      engine,
      instanceType: new ec2.InstanceType(config.database.instanceType),
      vpc: this.vpc,
      vpcSubnets: { subnetGroupName: SUBNETS.data },
      securityGroups: [databaseSg],
      publiclyAccessible: false,
      port: contract.databasePort,
      databaseName: contract.databaseName,
      credentials: rds.Credentials.fromGeneratedSecret(contract.databaseMasterUsername, {
        secretName: contract.databaseMasterSecretName(env),
        encryptionKey: secretsKey,
        excludeCharacters: PASSWORD_EXCLUDED_CHARACTERS,
      }),
      parameterGroup,
      multiAz: config.database.multiAz,
      storageType: rds.StorageType.GP3,
      allocatedStorage: config.database.allocatedStorageGiB,
      maxAllocatedStorage: config.database.maxAllocatedStorageGiB,
      storageEncrypted: true,
      storageEncryptionKey: dataKey,
      backupRetention: Duration.days(config.database.backupRetentionDays),
      preferredBackupWindow: '03:00-03:30',
      preferredMaintenanceWindow: 'sun:04:00-sun:04:30',
      // Keep automated backups (PITR) after an accidental instance deletion.
      deleteAutomatedBackups: false,
      copyTagsToSnapshot: true,
      deletionProtection: config.database.deletionProtection,
      removalPolicy: config.database.finalSnapshot ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY,
      cloudwatchLogsExports: ['postgresql', 'upgrade'],
      iamAuthentication: true,
      autoMinorVersionUpgrade: true,
      caCertificate: rds.CaCertificate.RDS_CA_RSA2048_G1,
      // 7 days of retention are free; encrypted like the data it samples (SQL text).
      enablePerformanceInsights: true,
      performanceInsightRetention: rds.PerformanceInsightRetention.DEFAULT,
      performanceInsightEncryptionKey: dataKey,
    });
    rdsLogGroups.forEach((group) => { this.database.node.addDependency(group); });
    if (config.database.crossRegionPitrKmsKeyArn !== undefined) {
      // No L2 property yet; the L1 properties are the documented CloudFormation ones.
      const cfnDatabase = this.database.node.defaultChild as rds.CfnDBInstance;
      cfnDatabase.automaticBackupReplicationRegion = config.backup.copyRegion;
      cfnDatabase.automaticBackupReplicationKmsKeyId = config.database.crossRegionPitrKmsKeyArn;
      cfnDatabase.automaticBackupReplicationRetentionPeriod = config.database.backupRetentionDays;
    }
    Validations.of(this.database).acknowledge({
      id: 'AwsSolutions-RDS11',
      reason:
        'Port 5432 is part of the service contract (DATABASE_URL); the instance is reachable only from the pods and rotation security groups in isolated subnets, so a non-default port would add no protection.',
    });
    if (!config.database.multiAz) {
      Validations.of(this.database).acknowledge({
        id: 'AwsSolutions-RDS3',
        reason:
          'Single-AZ by configuration (staging): an AZ outage there is tolerated; recovery is a point-in-time restore (docs/disaster-recovery.md). Production is Multi-AZ.',
      });
    }
    if (!config.database.deletionProtection) {
      Validations.of(this.database).acknowledge({
        id: 'AwsSolutions-RDS10',
        reason:
          'Deletion protection is off by configuration (staging) so the environment can be torn down and rebuilt. AWS Backup recovery points survive that: the unlocked staging vault is retained and named per stack instance (a rebuilt stack creates a new one), and every point is also copied to the second region. Production has it on.',
      });
    }
    const masterSecret = this.database.secret;
    if (masterSecret === undefined) {
      throw new Error('generated credentials always produce a secret');
    }
    this.databaseMasterSecret = masterSecret;
    // The application's own user. Its JSON has the same keys as the master
    // secret (attach() adds host, port, engine, dbname) plus `masterarn`, which
    // the multi-user rotation function uses to log in as master and change the
    // password of the user that is not current. The user itself is created once
    // by the bootstrap in infra/sql/bootstrap-app-user.sql (see README).
    const appSecret = new rds.DatabaseSecret(this, 'DatabaseAppSecret', {
      username: contract.databaseAppUsername,
      dbname: contract.databaseName,
      secretName: contract.databaseSecretName(env),
      encryptionKey: secretsKey,
      masterSecret,
      excludeCharacters: PASSWORD_EXCLUDED_CHARACTERS,
    });
    this.databaseSecret = appSecret.attach(this.database);
    // The rotation functions run in the rotation subnets and are the only other
    // clients the database security group admits (added by addRotation*).
    const rotationSg = new ec2.SecurityGroup(this, 'RotationSg', {
      vpc: this.vpc,
      description: `users-service ${env} secret rotation: Secrets Manager API and PostgreSQL only`,
      allowAllOutbound: false,
    });
    const endpointSg = new ec2.SecurityGroup(this, 'SecretsManagerEndpointSg', {
      vpc: this.vpc,
      description: `users-service ${env} Secrets Manager endpoint: HTTPS from the rotation functions only`,
      allowAllOutbound: false,
    });
    const secretsManagerEndpoint = this.vpc.addInterfaceEndpoint('SecretsManagerEndpoint', {
      service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
      subnets: { subnetGroupName: SUBNETS.rotation },
      securityGroups: [endpointSg],
      privateDnsEnabled: true,
      open: false,
    });
    endpointSg.addIngressRule(rotationSg, ec2.Port.tcp(443), 'secret rotation functions');
    rotationSg.addEgressRule(endpointSg, ec2.Port.tcp(443), 'Secrets Manager API through the interface endpoint');
    const rotation = {
      securityGroup: rotationSg,
      excludeCharacters: PASSWORD_EXCLUDED_CHARACTERS,
      vpcSubnets: { subnetGroupName: SUBNETS.rotation },
      endpoint: secretsManagerEndpoint,
    };
    // Master: single-user rotation. Only administrators and the rotation
    // functions use it, and they read the secret at the moment they need it.
    const masterRotation = this.database.addRotationSingleUser(rotation);
    // Application: alternating users (users_app, users_app_clone). Each rotation
    // sets a new password on the user that is NOT current and makes it current;
    // the credentials the pods still hold stay valid until the next rotation, so
    // a rotation never breaks a connection (docs/disaster-recovery.md, 4.5).
    // Not immediately on creation: the first user must exist before the
    // function can log in with it (bootstrap), so the first rotation is one
    // period after the deploy.
    const appRotation = this.database.addRotationMultiUser('RotationAppUser', {
      ...rotation,
      secret: this.databaseSecret,
      rotateImmediatelyOnUpdate: false,
    });
    // CDK only offers rate(n days), which starts counting at the deploy: both
    // schedules would fire on the same day, forever. Fixed, different days of
    // the month instead (config.ts).
    const schedule = (rotationConstruct: Construct, dayOfMonth: number): void => {
      const found = Stack.of(this).node.findAll().filter(
        (c): c is secretsmanager.CfnRotationSchedule =>
          c instanceof secretsmanager.CfnRotationSchedule && JSON.stringify(Stack.of(this).resolve(c.rotationLambdaArn)).includes(rotationConstruct.node.id),
      );
      const [rotationSchedule] = found;
      if (found.length !== 1 || rotationSchedule === undefined) throw new Error(`expected one rotation schedule for ${rotationConstruct.node.path}, found ${found.length}`);
      rotationSchedule.addPropertyOverride('RotationRules', {
        ScheduleExpression: monthlyOn(dayOfMonth, config.database.rotationHourUtc),
        Duration: '2h',
      });
    };
    schedule(masterRotation, config.database.masterRotationDayOfMonth);
    schedule(appRotation, config.database.appRotationDayOfMonth);

    // --- Redis
    this.redisSecret = new secretsmanager.Secret(this, 'RedisAuthToken', {
      secretName: contract.redisSecretName(env),
      description: `users-service ${env}: ElastiCache AUTH token ({"authToken": ...})`,
      encryptionKey: secretsKey,
      generateSecretString: {
        secretStringTemplate: '{}',
        generateStringKey: 'authToken',
        excludeCharacters: PASSWORD_EXCLUDED_CHARACTERS,
        passwordLength: 64,
      },
    });
    Validations.of(this.redisSecret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'ElastiCache has no managed rotation function for AUTH tokens; rotation is a two-step ModifyReplicationGroup (ROTATE then SET) done by the runbook in docs/disaster-recovery.md, so both tokens stay valid while pods restart.',
    });
    if (config.database.retainSecrets) {
      // Without a retain policy CloudFormation deletes a secret at once, with
      // no recovery window, while the final snapshot it opens survives.
      const masterSecretResource = this.database.node.findChild('Secret');
      for (const secret of [masterSecretResource, appSecret, this.redisSecret]) {
        secret.node.findAll().filter((c) => c instanceof secretsmanager.CfnSecret).forEach((c) => {
          c.applyRemovalPolicy(RemovalPolicy.RETAIN);
        });
      }
    }
    const redisSubnetGroup = new elasticache.CfnSubnetGroup(this, 'RedisSubnets', {
      description: `users-service ${env} Redis: data subnets`,
      subnetIds: dataSubnets.subnetIds,
    });
    const failover = config.cache.nodes > 1;
    this.redis = new elasticache.CfnReplicationGroup(this, 'Redis', {
      // A fixed id makes the primary endpoint predictable: master.users-service-<env>.<hash>.<region>.cache.amazonaws.com.
      replicationGroupId: `users-service-${env}`,
      replicationGroupDescription: `users-service ${env} rate-limit state`,
      engine: 'redis',
      engineVersion: '7.1',
      cacheNodeType: config.cache.nodeType,
      numCacheClusters: config.cache.nodes,
      automaticFailoverEnabled: failover,
      multiAzEnabled: failover,
      port: contract.redisPort,
      cacheSubnetGroupName: redisSubnetGroup.ref,
      securityGroupIds: [redisSg.securityGroupId],
      atRestEncryptionEnabled: true,
      kmsKeyId: dataKey.keyArn,
      transitEncryptionEnabled: true,
      transitEncryptionMode: 'required',
      // A dynamic reference: CloudFormation resolves it at deploy time, the
      // token never appears in the template.
      authToken: this.redisSecret.secretValueFromJson('authToken').unsafeUnwrap(),
      autoMinorVersionUpgrade: true,
      // Rate-limit counters live for a second; a snapshot would be stale before
      // it finished. The service falls back to in-process limiting on loss.
      snapshotRetentionLimit: 0,
      preferredMaintenanceWindow: 'sun:04:30-sun:05:30',
    });
    if (!failover) {
      Validations.of(this.redis).acknowledge({
        id: 'AwsSolutions-AEC4',
        reason:
          'Staging runs a single cache node to save cost: Redis only holds rate-limit counters and the service falls back to in-process limiting when it is unreachable.',
      });
    }
    Validations.of(this.redis).acknowledge({
      id: 'AwsSolutions-AEC5',
      reason:
        'Port 6379 is part of the service contract (REDIS_URL, chart values); the cache is reachable only from the pods security group over the peering, so a non-default port would add no protection.',
    });

    // --- AWS Backup: daily recovery points beyond the RDS automated backups, copied to a second region.
    // A locked vault is never torn down, so it keeps its fixed name. An
    // unlocked one (staging) is retained with its recovery points when the
    // stack is deleted, so a rebuilt stack must not reuse the name: it takes
    // the first group of the stack id's UUID (the BackupVaultName output has
    // it; vault names are at most 50 characters, the whole UUID would not fit).
    const stackUuid = Fn.select(2, Fn.split('/', Aws.STACK_ID));
    const vaultName = config.backup.vaultLock !== undefined
      ? `users-service-${env}`
      : `users-service-${env}-${Fn.select(0, Fn.split('-', stackUuid))}`;
    const vault = new backup.BackupVault(this, 'BackupVault', {
      backupVaultName: vaultName,
      encryptionKey: backupKey,
      removalPolicy: RemovalPolicy.RETAIN,
      // A vault access policy an administrator can remove; Vault Lock (production) is what nobody can lift.
      blockRecoveryPointDeletion: true,
      lockConfiguration: vaultLockConfiguration(config),
    });
    const plan = new backup.BackupPlan(this, 'BackupPlan', {
      backupPlanName: `users-service-${env}`,
      backupVault: vault,
    });
    plan.addRule(
      new backup.BackupPlanRule({
        ruleName: 'daily-with-cross-region-copy',
        scheduleExpression: events.Schedule.cron({ hour: String(config.backup.dailyStartHourUtc), minute: '0' }),
        startWindow: Duration.hours(1),
        completionWindow: Duration.hours(4),
        deleteAfter: Duration.days(config.backup.retentionDays),
        copyActions: [
          {
            destinationBackupVault: backup.BackupVault.fromBackupVaultArn(this, 'CopyVault', copyVaultArn(config)),
            deleteAfter: Duration.days(config.backup.copyRetentionDays),
          },
        ],
      }),
    );
    const backupRole = new iam.Role(this, 'BackupRole', {
      roleName: `users-service-${env}-backup`,
      description: `AWS Backup: back up and restore users-service ${env}`,
      assumedBy: new iam.ServicePrincipal('backup.amazonaws.com'),
      managedPolicies: [
        iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSBackupServiceRolePolicyForBackup'),
        iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSBackupServiceRolePolicyForRestores'),
      ],
    });
    Validations.of(backupRole).acknowledge(
      {
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup]',
        reason:
          'AWS-maintained policy for the AWS Backup service role: it follows new resource types and KMS/copy requirements, which a hand-copied policy would silently miss, failing backups.',
      },
      {
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores]',
        reason: 'AWS-maintained policy for AWS Backup restores, for the same reason as the backup policy.',
      },
    );
    plan.addSelection('Database', {
      backupSelectionName: 'postgresql',
      resources: [backup.BackupResource.fromRdsDatabaseInstance(this.database)],
      role: backupRole,
    });

    const monitoring = new DataTierMonitoring(this, 'Monitoring', {
      config,
      topicKey: alarmsKey,
      database: this.database,
      redisReplicationGroupId: this.redis.replicationGroupId ?? `users-service-${env}`,
      backupVaultName: vault.backupVaultName,
      backupVaultArn: vault.backupVaultArn,
    });
    monitoring.node.addDependency(this.redis);

    // --- IRSA role for External Secrets: exactly one service account, exactly two
    // secrets: the application user's and Redis's. Never the master secret.
    const issuer = config.cluster.oidcIssuer;
    this.externalSecretsRole = new iam.Role(this, 'ExternalSecretsRole', {
      roleName: `users-service-${env}-secrets`,
      description: `External Secrets (${contract.namespace(env)}/${contract.externalSecretsServiceAccount}) reads the users-service ${env} secrets`,
      assumedBy: new iam.WebIdentityPrincipal(config.cluster.oidcProviderArn, {
        StringEquals: {
          [`${issuer}:sub`]: `system:serviceaccount:${contract.namespace(env)}:${contract.externalSecretsServiceAccount}`,
          [`${issuer}:aud`]: 'sts.amazonaws.com',
        },
      }),
      maxSessionDuration: Duration.hours(1),
    });
    this.externalSecretsRole.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadServiceSecrets',
        actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
        resources: [this.databaseSecret.secretArn, this.redisSecret.secretArn],
      }),
    );
    this.externalSecretsRole.addToPolicy(
      new iam.PolicyStatement({
        sid: 'DecryptSecretsThroughSecretsManager',
        actions: ['kms:Decrypt'],
        resources: [secretsKey.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${this.region}.amazonaws.com` } },
      }),
    );

    // --- Outputs: the values the chart and Argo CD need (mapping in infra/README.md).
    const out = (id: string, value: string, description: string): void => {
      new CfnOutput(this, id, { value, description });
    };
    out('DatabaseSecretName', contract.databaseSecretName(env), 'Secrets Manager name read by the ExternalSecret (DATABASE_URL)');
    out('DatabaseSecretArn', this.databaseSecret.secretArn, 'ARN of the application user secret');
    out('DatabaseMasterSecretName', contract.databaseMasterSecretName(env), 'Secrets Manager name of the master credentials (administrators, bootstrap, restores; not readable by the pods)');
    out('DatabaseMasterSecretArn', this.databaseMasterSecret.secretArn, 'ARN of the master credentials secret');
    out('RedisSecretName', contract.redisSecretName(env), 'Secrets Manager name read by the ExternalSecret (REDIS_URL)');
    out('RedisSecretArn', this.redisSecret.secretArn, 'ARN of the Redis AUTH token secret');
    out('ExternalSecretsRoleArn', this.externalSecretsRole.roleArn, 'eks.amazonaws.com/role-arn of the users-service-secrets service account');
    out('DatabaseEndpoint', this.database.dbInstanceEndpointAddress, 'PostgreSQL host (also in the secret as host)');
    out('DatabasePort', this.database.dbInstanceEndpointPort, 'PostgreSQL port');
    out('RedisEndpoint', this.redis.attrPrimaryEndPointAddress, 'Redis primary endpoint host (TLS: rediss://)');
    out('RedisPort', this.redis.attrPrimaryEndPointPort, 'Redis port');
    out('DataVpcId', this.vpc.vpcId, 'Data VPC, peered with the cluster VPC');
    out('PeeringConnectionId', peering.ref, 'VPC peering connection between the data VPC and the cluster VPC');
    out('BackupVaultName', vault.backupVaultName, 'Primary-region AWS Backup vault');
    out('AlarmTopicArn', monitoring.topic.topicArn, 'SNS topic of the data-tier alarms, AWS Backup failures and rotation failures: subscribe the on-call channel');
  }
}
