import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { copyVaultName } from '../lib/backup-copy-stack.js';
import { contract, environments, PASSWORD_EXCLUDED_CHARACTERS } from '../lib/config.js';
import {
  asArray,
  asObject,
  ENVIRONMENTS,
  isObject,
  referencedId,
  referencedType,
  resources,
  type Resource,
  single,
  synthesized,
  text,
  type JsonObject,
} from './support.js';

const KMS_KEY = 'AWS::KMS::Key';

/** Subnet logical ids of one subnet group, found by the tag CDK puts on each subnet. */
function subnetIds(template: JsonObject, group: string): string[] {
  return resources(template, 'AWS::EC2::Subnet')
    .filter((s) =>
      asArray(s.properties['Tags']).some(
        (tag) => isObject(tag) && tag['Key'] === 'aws-cdk:subnet-name' && tag['Value'] === group,
      ),
    )
    .map((s) => s.logicalId);
}

/** The secret named `name`, and the SecretTargetAttachment that attaches it to the instance (what other resources reference). */
function secretNamed(template: JsonObject, name: string): { secret: Resource; attachment: Resource } {
  const secret = resources(template, 'AWS::SecretsManager::Secret').find((s) => s.properties['Name'] === name);
  assert.ok(secret, name);
  const attachment = resources(template, 'AWS::SecretsManager::SecretTargetAttachment').find(
    (a) => referencedId(a.properties['SecretId']) === secret.logicalId,
  );
  assert.ok(attachment, `attachment of ${name}`);
  return { secret, attachment };
}

/** The SAR rotation application behind a rotation schedule, and the name of the AWS application it deploys. */
function rotationOf(template: JsonObject, secretAttachmentId: string): { schedule: JsonObject; application: Resource; applicationName: string } {
  const schedule = resources(template, 'AWS::SecretsManager::RotationSchedule').find(
    (r) => referencedId(r.properties['SecretId']) === secretAttachmentId,
  );
  assert.ok(schedule, `rotation schedule of ${secretAttachmentId}`);
  const applicationId = referencedId(schedule.properties['RotationLambdaARN']) ?? '';
  const application = resources(template, 'AWS::Serverless::Application').find((a) => a.logicalId === applicationId);
  assert.ok(application, `rotation application ${applicationId}`);
  // Location.ApplicationId is Fn::FindInMap [mapping, partition, 'applicationId'].
  const findInMap = asArray(asObject(asObject(application.properties['Location'], 'Location')['ApplicationId'], 'ApplicationId')['Fn::FindInMap']);
  const mapping = asObject(asObject(asObject(template['Mappings'], 'Mappings')[text(findInMap[0])], 'mapping')['aws'], 'aws');
  return { schedule: schedule.properties, application, applicationName: text(mapping['applicationId']).replace(/^.*applications\//, '') };
}

function routeTablesOf(template: JsonObject, subnetLogicalIds: readonly string[]): string[] {
  return resources(template, 'AWS::EC2::SubnetRouteTableAssociation')
    .filter((a) => subnetLogicalIds.includes(referencedId(a.properties['SubnetId']) ?? ''))
    .map((a) => referencedId(a.properties['RouteTableId']) ?? '');
}

/** Every ingress rule, whether inline on a security group or a separate resource, keyed by the group it opens. */
function ingressRules(template: JsonObject): { group: string; rule: JsonObject }[] {
  const inline = resources(template, 'AWS::EC2::SecurityGroup').flatMap((sg) =>
    asArray(sg.properties['SecurityGroupIngress']).map((rule) => ({ group: sg.logicalId, rule: asObject(rule, 'ingress') })),
  );
  const separate = resources(template, 'AWS::EC2::SecurityGroupIngress').map((r) => ({
    group: referencedId(r.properties['GroupId']) ?? '',
    rule: r.properties,
  }));
  return [...inline, ...separate];
}

for (const name of ENVIRONMENTS) {
  const config = environments[name];
  const stackOf = (): JsonObject => synthesized().json(synthesized().built.environments[name].main);
  const templateOf = () => synthesized().template(synthesized().built.environments[name].main);

  describe(`${name} environment stack`, () => {
    describe('encryption at rest', () => {
      it('encrypts the PostgreSQL storage with a customer-managed KMS key from this stack', () => {
        const t = stackOf();
        const db = single(t, 'AWS::RDS::DBInstance').properties;
        assert.equal(db['StorageEncrypted'], true);
        assert.equal(referencedType(t, db['KmsKeyId']), KMS_KEY);
      });

      it('encrypts every Secrets Manager secret with a customer-managed KMS key', () => {
        const t = stackOf();
        const secrets = resources(t, 'AWS::SecretsManager::Secret');
        assert.equal(secrets.length, 3);
        for (const s of secrets) assert.equal(referencedType(t, s.properties['KmsKeyId']), KMS_KEY, s.logicalId);
      });

      it('encrypts Redis at rest with a customer-managed KMS key', () => {
        const t = stackOf();
        const redis = single(t, 'AWS::ElastiCache::ReplicationGroup').properties;
        assert.equal(redis['AtRestEncryptionEnabled'], true);
        assert.equal(referencedType(t, redis['KmsKeyId']), KMS_KEY);
      });

      it('encrypts the backup vault with a customer-managed KMS key', () => {
        const t = stackOf();
        assert.equal(referencedType(t, single(t, 'AWS::Backup::BackupVault').properties['EncryptionKeyArn']), KMS_KEY);
      });

      it('encrypts every log group with a customer-managed KMS key', () => {
        const t = stackOf();
        const groups = resources(t, 'AWS::Logs::LogGroup');
        assert.ok(groups.length >= 3);
        for (const g of groups) assert.equal(referencedType(t, g.properties['KmsKeyId']), KMS_KEY, g.logicalId);
      });

      it('enables yearly rotation on every KMS key', () => {
        for (const key of resources(stackOf(), KMS_KEY)) assert.equal(key.properties['EnableKeyRotation'], true, key.logicalId);
      });

      it('retains every KMS key when the stack is deleted (snapshots and backups depend on them)', () => {
        for (const key of resources(stackOf(), KMS_KEY)) assert.equal(key.raw['DeletionPolicy'], 'Retain', key.logicalId);
      });
    });

    describe('encryption in transit', () => {
      it('forces TLS on PostgreSQL through the parameter group (rds.force_ssl=1)', () => {
        const t = stackOf();
        const group = single(t, 'AWS::RDS::DBParameterGroup');
        assert.equal(asObject(group.properties['Parameters'], 'Parameters')['rds.force_ssl'], '1');
        assert.equal(referencedId(single(t, 'AWS::RDS::DBInstance').properties['DBParameterGroupName']), group.logicalId);
      });

      it('requires TLS for every Redis connection', () => {
        const redis = single(stackOf(), 'AWS::ElastiCache::ReplicationGroup').properties;
        assert.equal(redis['TransitEncryptionEnabled'], true);
        assert.equal(redis['TransitEncryptionMode'], 'required');
      });

      it('requires the Redis AUTH token, resolved from Secrets Manager at deploy time rather than written into the template', () => {
        const token = JSON.stringify(single(stackOf(), 'AWS::ElastiCache::ReplicationGroup').properties['AuthToken']);
        assert.match(token, /\{\{resolve:secretsmanager:/);
        assert.match(token, /:SecretString:authToken::\}\}/);
      });
    });

    describe('PostgreSQL', () => {
      it('keeps automated backups (point-in-time recovery) for 7 days', () => {
        templateOf().hasResourceProperties('AWS::RDS::DBInstance', { BackupRetentionPeriod: 7 });
      });

      it('keeps automated backups after the instance is deleted', () => {
        templateOf().hasResourceProperties('AWS::RDS::DBInstance', { DeleteAutomatedBackups: false });
      });

      it('logs statements slower than the configured threshold', () => {
        templateOf().hasResourceProperties('AWS::RDS::DBParameterGroup', {
          Parameters: Match.objectLike({ log_min_duration_statement: String(config.database.slowQueryThresholdMs) }),
        });
      });

      it('logs no bind values (names, e-mail addresses) with slow or failing statements', () => {
        const params = asObject(single(stackOf(), 'AWS::RDS::DBParameterGroup').properties['Parameters'], 'Parameters');
        assert.equal(params['log_parameter_max_length'], '0');
        assert.equal(params['log_parameter_max_length_on_error'], '0');
      });

      it('pins the engine to major version 17 only, so automatic minor upgrades do not drift from the template', () => {
        const t = stackOf();
        const db = single(t, 'AWS::RDS::DBInstance').properties;
        assert.equal(db['Engine'], 'postgres');
        assert.equal(db['EngineVersion'], '17');
        assert.equal(db['AutoMinorVersionUpgrade'], true);
        assert.equal(single(t, 'AWS::RDS::DBParameterGroup').properties['Family'], 'postgres17');
      });

      it('records Performance Insights, encrypted with a customer-managed key', () => {
        const t = stackOf();
        const db = single(t, 'AWS::RDS::DBInstance').properties;
        assert.equal(db['EnablePerformanceInsights'], true);
        assert.equal(referencedType(t, db['PerformanceInsightsKMSKeyId']), KMS_KEY);
      });

      it('exports the PostgreSQL log to CloudWatch Logs', () => {
        templateOf().hasResourceProperties('AWS::RDS::DBInstance', { EnableCloudwatchLogsExports: Match.arrayWith(['postgresql']) });
      });

      it('follows the configured Multi-AZ and deletion-protection settings', () => {
        templateOf().hasResourceProperties('AWS::RDS::DBInstance', {
          MultiAZ: config.database.multiAz,
          DeletionProtection: config.database.deletionProtection,
        });
      });

      it('keeps the master credentials in their own secret, users-service/<env>/database-master', () => {
        const t = stackOf();
        const { secret, attachment } = secretNamed(t, contract.databaseMasterSecretName(name));
        const generate = asObject(secret.properties['GenerateSecretString'], 'GenerateSecretString');
        assert.equal(generate['SecretStringTemplate'], JSON.stringify({ username: contract.databaseMasterUsername }));
        assert.equal(generate['ExcludeCharacters'], PASSWORD_EXCLUDED_CHARACTERS);
        // The instance's master password is that secret's password.
        const db = single(t, 'AWS::RDS::DBInstance').properties;
        assert.equal(db['MasterUsername'], contract.databaseMasterUsername);
        assert.ok(JSON.stringify(db['MasterUserPassword']).includes(secret.logicalId));
        assert.equal(referencedId(attachment.properties['TargetId']), single(t, 'AWS::RDS::DBInstance').logicalId);
      });

      it('stores the application user under the contract name users-service/<env>/database, with the master secret ARN the multi-user rotation needs', () => {
        const t = stackOf();
        const { secret } = secretNamed(t, contract.databaseSecretName(name));
        const master = secretNamed(t, contract.databaseMasterSecretName(name));
        const generate = asObject(secret.properties['GenerateSecretString'], 'GenerateSecretString');
        assert.equal(generate['GenerateStringKey'], 'password');
        assert.equal(generate['ExcludeCharacters'], PASSWORD_EXCLUDED_CHARACTERS);
        // {"username":"users_app","dbname":"users","masterarn":"<ARN of the master secret>"}
        assert.deepEqual(generate['SecretStringTemplate'], {
          'Fn::Join': ['', [`{"username":"${contract.databaseAppUsername}","dbname":"${contract.databaseName}","masterarn":"`, { Ref: master.attachment.logicalId }, '"}']],
        });
      });

      it('attaches host, port and engine to both database secrets (the JSON shape the ExternalSecret and the rotation functions read)', () => {
        const t = stackOf();
        const attachments = resources(t, 'AWS::SecretsManager::SecretTargetAttachment');
        assert.equal(attachments.length, 2);
        for (const a of attachments) {
          assert.equal(a.properties['TargetType'], 'AWS::RDS::DBInstance');
          assert.equal(referencedId(a.properties['TargetId']), single(t, 'AWS::RDS::DBInstance').logicalId);
        }
        assert.deepEqual(
          attachments.map((a) => referencedId(a.properties['SecretId'])).sort(),
          [secretNamed(t, contract.databaseSecretName(name)).secret.logicalId, secretNamed(t, contract.databaseMasterSecretName(name)).secret.logicalId].sort(),
        );
      });

      it('rotates the application secret with the multi-user (alternating users) function, signed in as master', () => {
        const t = stackOf();
        const app = secretNamed(t, contract.databaseSecretName(name));
        const master = secretNamed(t, contract.databaseMasterSecretName(name));
        const { schedule, application, applicationName } = rotationOf(t, app.attachment.logicalId);
        assert.equal(applicationName, 'SecretsManagerRDSPostgreSQLRotationMultiUser');
        assert.deepEqual(schedule['RotationRules'], { ScheduleExpression: `cron(0 6 ${config.database.appRotationDayOfMonth} * ? *)`, Duration: '2h' });
        const parameters = asObject(application.properties['Parameters'], 'Parameters');
        assert.equal(referencedId(parameters['masterSecretArn']), master.attachment.logicalId);
        assert.equal(referencedType(t, parameters['masterSecretKmsKeyArn']), KMS_KEY);
      });

      it('does not rotate the application secret at deploy time: the first user must be bootstrapped before the first rotation', () => {
        const t = stackOf();
        const { schedule } = rotationOf(t, secretNamed(t, contract.databaseSecretName(name)).attachment.logicalId);
        assert.equal(schedule['RotateImmediatelyOnUpdate'], false);
      });

      it('rotates the master secret with the single-user function, monthly on its own day', () => {
        const t = stackOf();
        const { schedule, applicationName } = rotationOf(t, secretNamed(t, contract.databaseMasterSecretName(name)).attachment.logicalId);
        assert.equal(applicationName, 'SecretsManagerRDSPostgreSQLRotationSingleUser');
        assert.deepEqual(schedule['RotationRules'], { ScheduleExpression: `cron(0 6 ${config.database.masterRotationDayOfMonth} * ? *)`, Duration: '2h' });
      });

      it('never rotates the master and the application secret on the same day', () => {
        const t = stackOf();
        const expressions = resources(t, 'AWS::SecretsManager::RotationSchedule').map((r) => text(asObject(r.properties['RotationRules'], 'rules')['ScheduleExpression']));
        assert.equal(expressions.length, 2);
        // Both fixed days of the month (a rate() would count from the same deploy), and different ones.
        const days = expressions.map((e) => /^cron\(\d+ \d+ (\d+) \* \? \*\)$/.exec(e)?.[1]);
        assert.ok(days.every((d) => d !== undefined), expressions.join(', '));
        assert.notEqual(days[0], days[1]);
      });

      it('has exactly these two rotation schedules', () => {
        assert.equal(resources(stackOf(), 'AWS::SecretsManager::RotationSchedule').length, 2);
      });

      it('rotates to passwords without URL-special characters, like the generated ones', () => {
        const applications = resources(stackOf(), 'AWS::Serverless::Application');
        assert.equal(applications.length, 2);
        for (const a of applications) {
          assert.equal(asObject(a.properties['Parameters'], 'Parameters')['excludeCharacters'], PASSWORD_EXCLUDED_CHARACTERS, a.logicalId);
        }
      });

      it('is not publicly accessible', () => {
        templateOf().hasResourceProperties('AWS::RDS::DBInstance', { PubliclyAccessible: false });
      });

      it('lives only in the data subnets', () => {
        const t = stackOf();
        const group = single(t, 'AWS::RDS::DBSubnetGroup').properties;
        assert.deepEqual(asArray(group['SubnetIds']).map(referencedId).sort(), subnetIds(t, 'data').sort());
      });
    });

    describe('Redis', () => {
      it('follows the configured node count, with failover and Multi-AZ exactly when there is a replica', () => {
        const replicated = config.cache.nodes > 1;
        templateOf().hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
          NumCacheClusters: config.cache.nodes,
          AutomaticFailoverEnabled: replicated,
          MultiAZEnabled: replicated,
        });
      });

      it('is named users-service-<env>, so its endpoint host is predictable for the chart values', () => {
        templateOf().hasResourceProperties('AWS::ElastiCache::ReplicationGroup', { ReplicationGroupId: `users-service-${name}` });
      });

      it('lives only in the data subnets', () => {
        const t = stackOf();
        const group = single(t, 'AWS::ElastiCache::SubnetGroup').properties;
        assert.deepEqual(asArray(group['SubnetIds']).map(referencedId).sort(), subnetIds(t, 'data').sort());
      });

      it('stores the AUTH token as {"authToken": ...} under users-service/<env>/redis, alphanumeric only', () => {
        templateOf().hasResourceProperties('AWS::SecretsManager::Secret', {
          Name: contract.redisSecretName(name),
          GenerateSecretString: Match.objectLike({
            SecretStringTemplate: '{}',
            GenerateStringKey: 'authToken',
            ExcludeCharacters: PASSWORD_EXCLUDED_CHARACTERS,
          }),
        });
      });
    });

    describe('network', () => {
      it('spreads the data subnets over three availability zones', () => {
        const t = stackOf();
        const ids = subnetIds(t, 'data');
        const azs = resources(t, 'AWS::EC2::Subnet')
          .filter((s) => ids.includes(s.logicalId))
          .map((s) => s.properties['AvailabilityZone']);
        assert.deepEqual([...azs].sort(), [...config.availabilityZones].sort());
      });

      it('gives the data subnets no route to the internet, only to the cluster VPC over the peering', () => {
        const t = stackOf();
        const tables = routeTablesOf(t, subnetIds(t, 'data'));
        assert.equal(tables.length, 3);
        const routes = resources(t, 'AWS::EC2::Route').filter((r) => tables.includes(referencedId(r.properties['RouteTableId']) ?? ''));
        assert.equal(routes.length, 3);
        for (const route of routes) {
          assert.equal(route.properties['DestinationCidrBlock'], config.cluster.vpcCidr);
          assert.equal(referencedType(t, route.properties['VpcPeeringConnectionId']), 'AWS::EC2::VPCPeeringConnection');
        }
      });

      it('routes every given cluster route table to the data VPC over the peering', () => {
        const t = stackOf();
        const fromCluster = resources(t, 'AWS::EC2::Route').filter((r) => typeof r.properties['RouteTableId'] === 'string');
        assert.deepEqual(fromCluster.map((r) => r.properties['RouteTableId']).sort(), [...config.cluster.routeTableIds].sort());
        for (const route of fromCluster) assert.equal(route.properties['DestinationCidrBlock'], config.vpcCidr);
      });

      it('peers the data VPC with the cluster VPC', () => {
        templateOf().hasResourceProperties('AWS::EC2::VPCPeeringConnection', { PeerVpcId: config.cluster.vpcId });
      });

      it('has no way to the internet: no internet gateway, no NAT gateway, no public subnet', () => {
        const t = stackOf();
        assert.deepEqual(resources(t, 'AWS::EC2::InternetGateway'), []);
        assert.deepEqual(resources(t, 'AWS::EC2::NatGateway'), []);
        for (const subnet of resources(t, 'AWS::EC2::Subnet')) assert.notEqual(subnet.properties['MapPublicIpOnLaunch'], true, subnet.logicalId);
        for (const route of resources(t, 'AWS::EC2::Route')) assert.equal(route.properties['GatewayId'], undefined, route.logicalId);
      });

      it('reaches Secrets Manager through an interface endpoint with private DNS in the rotation subnets, open only to the rotation functions', () => {
        const t = stackOf();
        const endpoint = single(t, 'AWS::EC2::VPCEndpoint').properties;
        assert.equal(endpoint['VpcEndpointType'], 'Interface');
        assert.match(JSON.stringify(endpoint['ServiceName']), /secretsmanager/);
        assert.equal(endpoint['PrivateDnsEnabled'], true);
        assert.deepEqual(asArray(endpoint['SubnetIds']).map(referencedId).sort(), subnetIds(t, 'rotation').sort());
        const endpointSg = referencedId(asArray(endpoint['SecurityGroupIds'])[0]);
        const rotationSg = referencedId(asObject(resources(t, 'AWS::Serverless::Application')[0]!.properties['Parameters'], 'Parameters')['vpcSecurityGroupIds']);
        assert.deepEqual(
          ingressRules(t).filter((r) => r.group === endpointSg).map((r) => [referencedId(r.rule['SourceSecurityGroupId']), r.rule['FromPort'], r.rule['ToPort']]),
          [[rotationSg, 443, 443]],
        );
      });

      it('lets the rotation functions out only to the Secrets Manager endpoint (443) and the database port', () => {
        const t = stackOf();
        const rotationSg = referencedId(asObject(resources(t, 'AWS::Serverless::Application')[0]!.properties['Parameters'], 'Parameters')['vpcSecurityGroupIds']) ?? '';
        const endpointSg = referencedId(asArray(single(t, 'AWS::EC2::VPCEndpoint').properties['SecurityGroupIds'])[0]);
        const dbSg = referencedId(asArray(single(t, 'AWS::RDS::DBInstance').properties['VPCSecurityGroups'])[0]);
        const inline = asArray(resources(t, 'AWS::EC2::SecurityGroup').find((g) => g.logicalId === rotationSg)!.properties['SecurityGroupEgress']).map((r) => asObject(r, 'egress'));
        const separate = resources(t, 'AWS::EC2::SecurityGroupEgress').filter((r) => referencedId(r.properties['GroupId']) === rotationSg).map((r) => r.properties);
        const egress = [...inline, ...separate].filter((r) => r['CidrIp'] !== '255.255.255.255/32'); // CDK's "no egress" placeholder
        assert.deepEqual(
          egress.map((r) => `${referencedId(r['DestinationSecurityGroupId']) ?? text(r['CidrIp'])}:${text(r['FromPort'])}`).sort(),
          [`${endpointSg}:443`, `${dbSg}:${JSON.stringify({ 'Fn::GetAtt': [single(t, 'AWS::RDS::DBInstance').logicalId, 'Endpoint.Port'] })}`].sort(),
        );
      });

      it('creates the security groups that name the pods\' group (in the peered VPC) only after the peering: EC2 refuses the reference before', () => {
        const t = stackOf();
        const peering = single(t, 'AWS::EC2::VPCPeeringConnection').logicalId;
        const referencing = [
          ...resources(t, 'AWS::EC2::SecurityGroup').filter((g) => JSON.stringify(g.properties['SecurityGroupIngress'] ?? null).includes(config.cluster.podSecurityGroupId)),
          ...resources(t, 'AWS::EC2::SecurityGroupIngress').filter((r) => r.properties['SourceSecurityGroupId'] === config.cluster.podSecurityGroupId),
        ];
        assert.equal(referencing.length, 2);
        for (const r of referencing) assert.ok(asArray(r.raw['DependsOn']).includes(peering), `${r.logicalId} DependsOn ${JSON.stringify(r.raw['DependsOn'] ?? [])}`);
      });

      it('records VPC flow logs', () => {
        templateOf().resourceCountIs('AWS::EC2::FlowLog', 1);
      });

      it('admits no ingress from an address range: every rule names a source security group', () => {
        for (const { group, rule } of ingressRules(stackOf())) {
          assert.equal(rule['CidrIp'], undefined, group);
          assert.equal(rule['CidrIpv6'], undefined, group);
          assert.ok(rule['SourceSecurityGroupId'] !== undefined, group);
        }
      });

      it('opens Redis (6379) to the cluster pod security group and nothing else', () => {
        const t = stackOf();
        const redisSg = referencedId(asArray(single(t, 'AWS::ElastiCache::ReplicationGroup').properties['SecurityGroupIds'])[0]);
        const rules = ingressRules(t).filter((r) => r.group === redisSg);
        assert.deepEqual(
          rules.map((r) => r.rule),
          [{ Description: 'users-service pods', FromPort: 6379, ToPort: 6379, IpProtocol: 'tcp', SourceSecurityGroupId: config.cluster.podSecurityGroupId }],
        );
      });

      it('opens PostgreSQL to the cluster pod security group and, besides it, only the rotation functions (one shared group)', () => {
        const t = stackOf();
        const dbSg = referencedId(asArray(single(t, 'AWS::RDS::DBInstance').properties['VPCSecurityGroups'])[0]);
        const rotationSgs = new Set(
          resources(t, 'AWS::Serverless::Application').map((a) => referencedId(asObject(a.properties['Parameters'], 'Parameters')['vpcSecurityGroupIds'])),
        );
        assert.equal(rotationSgs.size, 1);
        const [rotationSg] = [...rotationSgs];
        const sources = ingressRules(t)
          .filter((r) => r.group === dbSg)
          .map((r) => referencedId(r.rule['SourceSecurityGroupId']) ?? r.rule['SourceSecurityGroupId']);
        assert.deepEqual(sources.sort(), [config.cluster.podSecurityGroupId, rotationSg].sort());
      });

      it('opens nothing else: only the database, Redis and Secrets Manager endpoint groups have ingress rules', () => {
        const t = stackOf();
        const groups = new Set(ingressRules(t).map((r) => r.group));
        const dbSg = referencedId(asArray(single(t, 'AWS::RDS::DBInstance').properties['VPCSecurityGroups'])[0]);
        const redisSg = referencedId(asArray(single(t, 'AWS::ElastiCache::ReplicationGroup').properties['SecurityGroupIds'])[0]);
        const endpointSg = referencedId(asArray(single(t, 'AWS::EC2::VPCEndpoint').properties['SecurityGroupIds'])[0]);
        assert.deepEqual([...groups].sort(), [dbSg, redisSg, endpointSg].sort());
      });
    });

    describe('AWS Backup', () => {
      it('backs up daily and keeps each recovery point for 7 days', () => {
        const rule = asObject(asArray(asObject(single(stackOf(), 'AWS::Backup::BackupPlan').properties['BackupPlan'], 'plan')['BackupPlanRule'])[0], 'rule');
        assert.equal(rule['ScheduleExpression'], `cron(0 ${config.backup.dailyStartHourUtc} * * ? *)`);
        assert.deepEqual(rule['Lifecycle'], { DeleteAfterDays: 7 });
      });

      it('copies every recovery point to the vault in the second region', () => {
        const rule = asObject(asArray(asObject(single(stackOf(), 'AWS::Backup::BackupPlan').properties['BackupPlan'], 'plan')['BackupPlanRule'])[0], 'rule');
        assert.deepEqual(rule['CopyActions'], [
          {
            DestinationBackupVaultArn: `arn:aws:backup:${config.backup.copyRegion}:${config.account}:backup-vault:${copyVaultName(config)}`,
            Lifecycle: { DeleteAfterDays: config.backup.copyRetentionDays },
          },
        ]);
      });

      it('selects the PostgreSQL instance', () => {
        const t = stackOf();
        const selection = asObject(single(t, 'AWS::Backup::BackupSelection').properties['BackupSelection'], 'selection');
        const arns = JSON.stringify(selection['Resources']);
        assert.match(arns, /:rds:/);
        assert.ok(arns.includes(single(t, 'AWS::RDS::DBInstance').logicalId));
      });

      it(config.backup.vaultLock ? 'locks the vault in compliance mode (minimum retention of at least 7 days)' : 'leaves the vault unlocked and names it per stack instance, so a torn-down stack can be rebuilt while the old vault keeps its recovery points', () => {
        const vault = single(stackOf(), 'AWS::Backup::BackupVault');
        const lock = vault.properties['LockConfiguration'];
        if (config.backup.vaultLock) {
          const l = asObject(lock, 'LockConfiguration');
          assert.ok(Number(l['MinRetentionDays']) >= 7);
          // ChangeableForDays is what makes it compliance mode (immutable after that); without it, governance mode.
          assert.ok(Number(l['ChangeableForDays']) >= 3);
          assert.equal(vault.properties['BackupVaultName'], `users-service-${name}`);
        } else {
          assert.equal(lock, undefined);
          // users-service-<env>- plus the first 8 hex digits of the stack id's UUID: within the 50-character limit.
          const join = asArray(asObject(vault.properties['BackupVaultName'], 'name')['Fn::Join']);
          const parts = asArray(join[1]);
          assert.equal(parts[0], `users-service-${name}-`);
          assert.match(JSON.stringify(parts[1]), /"Fn::Select":\[0,\{"Fn::Split":\["-",\{"Fn::Select":\[2,\{"Fn::Split":\["\/",\{"Ref":"AWS::StackId"\}\]\}\]\}\]\}\]/);
          assert.ok(`users-service-${name}-`.length + 8 <= 50);
        }
      });

      it('blocks early deletion of recovery points in the vault', () => {
        const statements = asArray(asObject(single(stackOf(), 'AWS::Backup::BackupVault').properties['AccessPolicy'], 'policy')['Statement']);
        assert.ok(
          statements.some(
            (s) => isObject(s) && s['Effect'] === 'Deny' && asArray(s['Action']).includes('backup:DeleteRecoveryPoint'),
          ),
        );
      });
    });

    describe('IRSA role for External Secrets', () => {
      const roleOf = (): JsonObject => {
        const role = resources(stackOf(), 'AWS::IAM::Role').find((r) => r.properties['RoleName'] === `users-service-${name}-secrets`);
        assert.ok(role, 'external secrets role');
        return role.properties;
      };

      it(`trusts exactly system:serviceaccount:users-service-${name}:users-service-secrets with audience sts.amazonaws.com`, () => {
        const issuer = config.cluster.oidcIssuer;
        assert.deepEqual(asObject(roleOf()['AssumeRolePolicyDocument'], 'trust')['Statement'], [
          {
            Action: 'sts:AssumeRoleWithWebIdentity',
            Effect: 'Allow',
            Principal: { Federated: config.cluster.oidcProviderArn },
            Condition: {
              StringEquals: {
                [`${issuer}:sub`]: `system:serviceaccount:users-service-${name}:users-service-secrets`,
                [`${issuer}:aud`]: 'sts.amazonaws.com',
              },
            },
          },
        ]);
      });

      it('may read exactly the application database secret and the Redis secret (never the master secret), and decrypt only through Secrets Manager', () => {
        const t = stackOf();
        const roleId = resources(t, 'AWS::IAM::Role').find((r) => r.properties['RoleName'] === `users-service-${name}-secrets`)!.logicalId;
        const policies = resources(t, 'AWS::IAM::Policy').filter((p) => asArray(p.properties['Roles']).some((r) => referencedId(r) === roleId));
        assert.equal(policies.length, 1);
        const statements = asArray(asObject(policies[0]!.properties['PolicyDocument'], 'doc')['Statement']) as JsonObject[];
        const appSecret = secretNamed(t, contract.databaseSecretName(name));
        const redisSecret = resources(t, 'AWS::SecretsManager::Secret').find((s) => s.properties['Name'] === contract.redisSecretName(name))!;
        const secretIds = [appSecret.attachment.logicalId, redisSecret.logicalId];
        // The key the two secrets are encrypted with, found from the secrets, not from the policy under test.
        const secretsKey = referencedId(appSecret.secret.properties['KmsKeyId']);
        assert.equal(referencedId(redisSecret.properties['KmsKeyId']), secretsKey);
        assert.equal(referencedType(t, appSecret.secret.properties['KmsKeyId']), KMS_KEY);
        assert.deepEqual(
          statements.map((s) => ({ Action: s['Action'], Resource: asArray(s['Resource']).map(referencedId), Condition: s['Condition'] ?? null })),
          [
            { Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'], Resource: secretIds, Condition: null },
            { Action: 'kms:Decrypt', Resource: [secretsKey], Condition: { StringEquals: { 'kms:ViaService': `secretsmanager.${config.region}.amazonaws.com` } } },
          ],
        );
        const master = secretNamed(t, contract.databaseMasterSecretName(name));
        const policyText = JSON.stringify(policies[0]!.properties['PolicyDocument']);
        assert.ok(!policyText.includes(master.secret.logicalId) && !policyText.includes(master.attachment.logicalId), 'the IRSA role must not name the master secret');
      });

      it('leaves the master secret out of every IAM policy in the stack (the rotation applications get its ARN as a parameter and grant themselves)', () => {
        const t = stackOf();
        const master = secretNamed(t, contract.databaseMasterSecretName(name));
        for (const p of resources(t, 'AWS::IAM::Policy')) {
          const doc = JSON.stringify(p.properties['PolicyDocument']);
          assert.ok(!doc.includes(master.secret.logicalId) && !doc.includes(master.attachment.logicalId), p.logicalId);
        }
      });
    });

    describe('outputs', () => {
      const expected = [
        'DatabaseSecretName',
        'DatabaseSecretArn',
        'DatabaseMasterSecretName',
        'RedisSecretName',
        'RedisSecretArn',
        'ExternalSecretsRoleArn',
        'DatabaseEndpoint',
        'DatabasePort',
        'RedisEndpoint',
        'RedisPort',
        'AlarmTopicArn',
      ];
      it(`exports what the chart needs: ${expected.join(', ')}`, () => {
        const outputs = asObject(stackOf()['Outputs'], 'Outputs');
        for (const key of expected) assert.ok(key in outputs, key);
      });

      it('names the secrets as the contract does', () => {
        const outputs = asObject(stackOf()['Outputs'], 'Outputs');
        assert.equal(asObject(outputs['DatabaseSecretName'], 'o')['Value'], `users-service/${name}/database`);
        assert.equal(asObject(outputs['DatabaseMasterSecretName'], 'o')['Value'], `users-service/${name}/database-master`);
        assert.equal(asObject(outputs['RedisSecretName'], 'o')['Value'], `users-service/${name}/redis`);
      });
    });
  });

  describe(`${name} backup copy stack`, () => {
    const copyStack = () => synthesized().built.environments[name].backupCopy;

    it('is deployed to the configured second region, not the primary one', () => {
      assert.equal(copyStack().region, config.backup.copyRegion);
      assert.notEqual(copyStack().region, config.region);
    });

    it('creates the vault the copy action targets, encrypted with a customer-managed key', () => {
      const t = synthesized().json(copyStack());
      const vault = single(t, 'AWS::Backup::BackupVault');
      assert.equal(vault.properties['BackupVaultName'], copyVaultName(config));
      assert.equal(referencedType(t, vault.properties['EncryptionKeyArn']), KMS_KEY);
    });

    it(config.backup.vaultLock ? 'locks the copy vault in compliance mode too' : 'leaves the copy vault unlocked, as configured', () => {
      const lock = single(synthesized().json(copyStack()), 'AWS::Backup::BackupVault').properties['LockConfiguration'];
      if (config.backup.vaultLock) {
        const l = asObject(lock, 'LockConfiguration');
        assert.ok(Number(l['MinRetentionDays']) >= 7 && Number(l['ChangeableForDays']) >= 3);
      } else {
        assert.equal(lock, undefined);
      }
    });

    it('is deployed before the environment stack that copies into it', () => {
      const deps = synthesized().built.environments[name].main.dependencies;
      assert.ok(deps.includes(copyStack()));
    });
  });
}

describe('production protections (stated literally, not read from the config)', () => {
  const t = () => synthesized().json(synthesized().built.environments.production.main);

  it('runs PostgreSQL Multi-AZ', () => {
    assert.equal(single(t(), 'AWS::RDS::DBInstance').properties['MultiAZ'], true);
  });

  it('protects PostgreSQL from deletion', () => {
    assert.equal(single(t(), 'AWS::RDS::DBInstance').properties['DeletionProtection'], true);
  });

  it('takes a final snapshot when PostgreSQL is deleted or replaced', () => {
    const db = single(t(), 'AWS::RDS::DBInstance').raw;
    assert.equal(db['DeletionPolicy'], 'Snapshot');
    assert.equal(db['UpdateReplacePolicy'], 'Snapshot');
  });

  it('runs Redis with a replica, automatic failover and Multi-AZ', () => {
    const redis = single(t(), 'AWS::ElastiCache::ReplicationGroup').properties;
    assert.ok(Number(redis['NumCacheClusters']) >= 2);
    assert.equal(redis['AutomaticFailoverEnabled'], true);
    assert.equal(redis['MultiAZEnabled'], true);
  });

  it('replicates automated backups to the second region, so point-in-time recovery survives a region loss', () => {
    const db = single(t(), 'AWS::RDS::DBInstance').properties;
    assert.equal(db['AutomaticBackupReplicationRegion'], environments.production.backup.copyRegion);
    assert.match(text(db['AutomaticBackupReplicationKmsKeyId']), /^arn:aws:kms:us-west-2:\d{12}:key\//);
    assert.equal(db['AutomaticBackupReplicationRetentionPeriod'], 7);
  });

  it('retains the backup vault when the stack is deleted', () => {
    assert.equal(single(t(), 'AWS::Backup::BackupVault').raw['DeletionPolicy'], 'Retain');
  });

  it('retains every secret (master, application, Redis) when the stack is deleted or a secret replaced', () => {
    const secrets = resources(t(), 'AWS::SecretsManager::Secret');
    assert.equal(secrets.length, 3);
    for (const s of secrets) {
      assert.equal(s.raw['DeletionPolicy'], 'Retain', s.logicalId);
      assert.equal(s.raw['UpdateReplacePolicy'], 'Retain', s.logicalId);
    }
  });

  it('locks both backup vaults in compliance mode with at least 7 days of minimum retention', () => {
    const production = synthesized().built.environments.production;
    for (const stack of [production.main, production.backupCopy]) {
      const lock = asObject(single(synthesized().json(stack), 'AWS::Backup::BackupVault').properties['LockConfiguration'], 'LockConfiguration');
      assert.ok(Number(lock['MinRetentionDays']) >= 7, stack.stackName);
      assert.ok(Number(lock['ChangeableForDays']) >= 3, stack.stackName);
    }
  });
});
