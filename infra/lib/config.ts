import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { RDS_CLASS_MEMORY_GIB } from './capacity.js';

/**
 * Typed configuration for every environment. All values that differ between
 * staging and production live here, so the stacks contain no `if (production)`
 * branches and a reviewer can compare environments side by side.
 *
 * Account ids, cluster ids and ARNs below are placeholders: replace them with
 * the real values before the first `cdk deploy` (see infra/README.md). They are
 * explicit (no `Vpc.fromLookup`, no `Stack.availabilityZones` lookups) so that
 * `cdk synth` and the tests run offline, without AWS credentials.
 */

export type EnvironmentName = 'staging' | 'production';

/** Names fixed by the shared contract (notes/contract.md); the chart relies on them. */
export const contract = {
  ecrRepositoryName: 'users-service',
  namespace: (env: EnvironmentName): string => `users-service-${env}`,
  externalSecretsServiceAccount: 'users-service-secrets',
  /** The application user's credentials: the only database secret External Secrets may read. */
  databaseSecretName: (env: EnvironmentName): string => `users-service/${env}/database`,
  /** The RDS master user's credentials: administrators and the rotation functions only. */
  databaseMasterSecretName: (env: EnvironmentName): string => `users-service/${env}/database-master`,
  redisSecretName: (env: EnvironmentName): string => `users-service/${env}/redis`,
  databaseName: 'users',
  /** RDS master user (CREATEROLE): creates the application users and rotates their passwords. */
  databaseMasterUsername: 'users_service',
  /**
   * Application user. Multi-user rotation alternates between this user and
   * `<name>_clone`; both belong to the NOLOGIN role `databaseOwnerRole`, which
   * owns the schema objects (infra/sql/bootstrap-app-user.sql).
   */
  databaseAppUsername: 'users_app',
  databaseOwnerRole: 'users_owner',
  databasePort: 5432,
  redisPort: 6379,
} as const;

/**
 * Every ASCII punctuation character. Generated passwords and tokens are
 * alphanumeric only because the chart interpolates them into
 * DATABASE_URL / REDIS_URL without URL-encoding (contract: "generated without
 * URL-special characters"). The rotation function must use the same set, or
 * the first rotation would break the URL.
 */
export const PASSWORD_EXCLUDED_CHARACTERS = ' !"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';

/** The existing EKS cluster. Nothing here creates or changes the cluster itself. */
export interface ClusterInputs {
  readonly name: string;
  /** ARN of the cluster's IAM OIDC provider (IRSA). */
  readonly oidcProviderArn: string;
  /** Issuer host and path, without `https://`, e.g. oidc.eks.us-east-1.amazonaws.com/id/ABC. */
  readonly oidcIssuer: string;
  /** Security group attached to the service's pods (security groups for pods, or the node group's SG). */
  readonly podSecurityGroupId: string;
  /** The cluster's VPC, peered with the data VPC created here. */
  readonly vpcId: string;
  readonly vpcCidr: string;
  /** Route tables of the cluster's pod/node subnets: each gets a route to the data VPC over the peering. */
  readonly routeTableIds: readonly string[];
}

export interface DatabaseConfig {
  /** RDS instance class without the `db.` prefix, e.g. t4g.medium. */
  readonly instanceType: string;
  readonly allocatedStorageGiB: number;
  /** Storage autoscaling ceiling. */
  readonly maxAllocatedStorageGiB: number;
  readonly multiAz: boolean;
  readonly deletionProtection: boolean;
  /** Take a final snapshot when the instance is deleted (RemovalPolicy.SNAPSHOT) instead of destroying it. */
  readonly finalSnapshot: boolean;
  /** Automated backups (and so point-in-time recovery) window in days. */
  readonly backupRetentionDays: number;
  /** Statements slower than this are logged (log_min_duration_statement). */
  readonly slowQueryThresholdMs: number;
  /**
   * Day of the month (UTC, at rotationHourUtc) on which each secret rotates.
   * The application secret uses multi-user rotation (the credentials it
   * replaces stay valid until the next rotation, so pods have a whole month to
   * pick up the new ones); the master secret single-user. Different days, so a
   * failing rotation of one is diagnosed and fixed before the other runs (the
   * application rotation signs in with the master credentials).
   */
  readonly masterRotationDayOfMonth: number;
  readonly appRotationDayOfMonth: number;
  readonly rotationHourUtc: number;
  /**
   * Keep the three secrets (master, application, Redis) when the stack is
   * deleted or a secret replaced. A final snapshot is useless without the
   * credentials that open it, so every environment with finalSnapshot needs this.
   */
  readonly retainSecrets: boolean;
  /**
   * Replicate the automated backups (snapshots and transaction logs) to
   * backup.copyRegion, so point-in-time recovery works there too: the only way
   * to keep a one-hour RPO when the whole primary region is lost. RDS needs the
   * ARN of a key in that region: the `PitrReplicationKeyArn` output of the
   * environment's BackupCopy stack (deployed first). Unset: no replication.
   */
  readonly crossRegionPitrKmsKeyArn?: string;
}

export interface CacheConfig {
  /** ElastiCache node type, e.g. cache.t4g.small. */
  readonly nodeType: string;
  /** Primary plus replicas; 2 or more enables automatic failover and Multi-AZ. */
  readonly nodes: number;
}

export interface BackupConfig {
  /** Region of the vault that receives the copy of every backup. */
  readonly copyRegion: string;
  readonly retentionDays: number;
  readonly copyRetentionDays: number;
  /** UTC hour at which the daily AWS Backup job starts. */
  readonly dailyStartHourUtc: number;
  /**
   * AWS Backup Vault Lock in compliance mode on both vaults: once
   * changeableForDays have passed, nobody (root and AWS included) can delete a
   * recovery point before minRetentionDays, shorten its retention, remove the
   * lock or delete the vault while it holds recovery points. Unset: the vaults
   * are protected only by their access policy, which an administrator can remove.
   */
  readonly vaultLock?: { readonly minRetentionDays: number; readonly changeableForDays: number };
}

export interface EnvironmentConfig {
  readonly name: EnvironmentName;
  readonly account: string;
  readonly region: string;
  /** Listed explicitly so synthesis needs no availability-zone lookup. */
  readonly availabilityZones: readonly [string, string, string];
  /** CIDR of the data VPC created here; must not overlap the cluster VPC (peering). */
  readonly vpcCidr: string;
  /** CloudWatch Logs retention for flow logs and PostgreSQL logs. */
  readonly logRetention: RetentionDays;
  readonly database: DatabaseConfig;
  readonly cache: CacheConfig;
  readonly backup: BackupConfig;
  readonly cluster: ClusterInputs;
}

export interface SharedConfig {
  readonly account: string;
  readonly region: string;
  /** GitHub repository (owner/name) whose workflows may push images. */
  readonly githubRepository: string;
  /** Git refs whose workflow runs may assume the CI role. */
  readonly githubRefs: readonly string[];
  /**
   * An account has at most one OIDC provider per URL. Set this when
   * token.actions.githubusercontent.com is already registered; otherwise the
   * shared stack creates it.
   */
  readonly existingGithubOidcProviderArn?: string;
  /**
   * Releases kept in the registry, each with everything the release job pushes beside its image (see
   * RELEASE_ARTIFACTS in shared-stack.ts): older production images must still be pullable, and still verifiable.
   */
  readonly ecrReleasesKept: number;
  /**
   * Regions the registry replicates users-service images to, so a cluster in
   * the backup region can pull them when the primary region is down. The
   * replication configuration is one per registry (account and region): if the
   * account already has one, merge this rule into it and set this to [].
   */
  readonly ecrReplicationRegions: readonly string[];
}

const PLACEHOLDER_ACCOUNT = '111111111111';

export const sharedConfig: SharedConfig = {
  account: PLACEHOLDER_ACCOUNT,
  region: 'us-east-1',
  githubRepository: 'example/users-service',
  githubRefs: ['refs/heads/main'],
  ecrReleasesKept: 200,
  ecrReplicationRegions: ['us-west-2'],
};

export const environments: Readonly<Record<EnvironmentName, EnvironmentConfig>> = {
  staging: {
    name: 'staging',
    account: PLACEHOLDER_ACCOUNT,
    region: 'us-east-1',
    availabilityZones: ['us-east-1a', 'us-east-1b', 'us-east-1c'],
    vpcCidr: '10.20.0.0/20',
    logRetention: RetentionDays.ONE_MONTH,
    database: {
      // t4g.micro allows 56 connections (infra/lib/capacity.ts): not enough for 6 pods x 2 (blue/green).
      instanceType: 't4g.small',
      allocatedStorageGiB: 20,
      maxAllocatedStorageGiB: 50,
      multiAz: false,
      deletionProtection: false,
      finalSnapshot: false,
      backupRetentionDays: 7,
      slowQueryThresholdMs: 500,
      masterRotationDayOfMonth: 1,
      appRotationDayOfMonth: 15,
      rotationHourUtc: 6,
      retainSecrets: false,
    },
    cache: { nodeType: 'cache.t4g.micro', nodes: 1 },
    backup: { copyRegion: 'us-west-2', retentionDays: 7, copyRetentionDays: 7, dailyStartHourUtc: 5 },
    cluster: {
      name: 'platform-staging',
      oidcProviderArn: `arn:aws:iam::${PLACEHOLDER_ACCOUNT}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/STAGING0000000000000000000000000`,
      oidcIssuer: 'oidc.eks.us-east-1.amazonaws.com/id/STAGING0000000000000000000000000',
      podSecurityGroupId: 'sg-0aaaaaaaaaaaaaaa1',
      vpcId: 'vpc-0aaaaaaaaaaaaaaa1',
      vpcCidr: '10.0.0.0/16',
      routeTableIds: ['rtb-0aaaaaaaaaaaaaaa1', 'rtb-0aaaaaaaaaaaaaaa2', 'rtb-0aaaaaaaaaaaaaaa3'],
    },
  },
  production: {
    name: 'production',
    account: PLACEHOLDER_ACCOUNT,
    region: 'us-east-1',
    availabilityZones: ['us-east-1a', 'us-east-1b', 'us-east-1c'],
    vpcCidr: '10.30.0.0/20',
    logRetention: RetentionDays.THREE_MONTHS,
    database: {
      instanceType: 't4g.medium',
      allocatedStorageGiB: 50,
      maxAllocatedStorageGiB: 200,
      multiAz: true,
      deletionProtection: true,
      finalSnapshot: true,
      backupRetentionDays: 7,
      slowQueryThresholdMs: 250,
      masterRotationDayOfMonth: 1,
      appRotationDayOfMonth: 15,
      rotationHourUtc: 6,
      retainSecrets: true,
      // Placeholder like the account id: the BackupCopy stack's PitrReplicationKeyArn output.
      crossRegionPitrKmsKeyArn: `arn:aws:kms:us-west-2:${PLACEHOLDER_ACCOUNT}:key/00000000-0000-4000-8000-000000000000`,
    },
    cache: { nodeType: 'cache.t4g.small', nodes: 2 },
    backup: {
      copyRegion: 'us-west-2',
      retentionDays: 7,
      copyRetentionDays: 7,
      dailyStartHourUtc: 5,
      vaultLock: { minRetentionDays: 7, changeableForDays: 3 },
    },
    cluster: {
      name: 'platform-production',
      oidcProviderArn: `arn:aws:iam::${PLACEHOLDER_ACCOUNT}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/PRODUCTION000000000000000000000`,
      oidcIssuer: 'oidc.eks.us-east-1.amazonaws.com/id/PRODUCTION000000000000000000000',
      podSecurityGroupId: 'sg-0bbbbbbbbbbbbbbb1',
      vpcId: 'vpc-0bbbbbbbbbbbbbbb1',
      vpcCidr: '10.1.0.0/16',
      routeTableIds: ['rtb-0bbbbbbbbbbbbbbb1', 'rtb-0bbbbbbbbbbbbbbb2', 'rtb-0bbbbbbbbbbbbbbb3'],
    },
  },
};

function ipv4ToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`not an IPv4 address: ${ip}`);
  }
  return parts.reduce((acc, p) => acc * 256 + p, 0);
}

/** [first, last] address of a CIDR block, as integers. */
export function cidrRange(cidr: string): [number, number] {
  const [ip, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  if (ip === undefined || !Number.isInteger(bits) || bits < 0 || bits > 32) {
    throw new Error(`not an IPv4 CIDR: ${cidr}`);
  }
  const size = 2 ** (32 - bits);
  const first = Math.floor(ipv4ToInt(ip) / size) * size;
  return [first, first + size - 1];
}

export function cidrsOverlap(a: string, b: string): boolean {
  const [aFirst, aLast] = cidrRange(a);
  const [bFirst, bLast] = cidrRange(b);
  return aFirst <= bLast && bFirst <= aLast;
}

/**
 * Mistakes that CloudFormation would only report halfway through a deploy
 * (or, worse, accept): fail at synth time instead.
 */
export function validateEnvironmentConfig(config: EnvironmentConfig): void {
  const problems: string[] = [];
  if (cidrsOverlap(config.vpcCidr, config.cluster.vpcCidr)) {
    problems.push(`data VPC ${config.vpcCidr} overlaps the cluster VPC ${config.cluster.vpcCidr}; peering needs disjoint ranges`);
  }
  if (config.backup.copyRegion === config.region) {
    problems.push('backup.copyRegion must differ from the primary region, or a regional outage takes both copies');
  }
  if (config.database.backupRetentionDays < 1) {
    problems.push('database.backupRetentionDays must be at least 1: 0 disables automated backups and point-in-time recovery');
  }
  if (!(config.database.instanceType in RDS_CLASS_MEMORY_GIB)) {
    problems.push(`database.instanceType ${config.database.instanceType} has no known memory (infra/lib/capacity.ts): the connection budget cannot be computed`);
  }
  const { masterRotationDayOfMonth, appRotationDayOfMonth } = config.database;
  for (const [field, day] of [['masterRotationDayOfMonth', masterRotationDayOfMonth], ['appRotationDayOfMonth', appRotationDayOfMonth]] as const) {
    // 28: every month has the day.
    if (!Number.isInteger(day) || day < 1 || day > 28) problems.push(`database.${field} must be a day between 1 and 28`);
  }
  if (masterRotationDayOfMonth === appRotationDayOfMonth) {
    problems.push('database.masterRotationDayOfMonth and appRotationDayOfMonth must differ (staggered rotations)');
  }
  if (config.database.finalSnapshot && !config.database.retainSecrets) {
    problems.push('database.finalSnapshot needs database.retainSecrets: the snapshot cannot be opened without the master credentials');
  }
  const lock = config.backup.vaultLock;
  if (lock !== undefined) {
    if (lock.minRetentionDays < 7) problems.push('backup.vaultLock.minRetentionDays must be at least 7');
    // AWS Backup: compliance mode needs a cooling-off period of at least 3 days.
    if (lock.changeableForDays < 3) problems.push('backup.vaultLock.changeableForDays must be at least 3 (compliance mode)');
    if (config.backup.retentionDays < lock.minRetentionDays || config.backup.copyRetentionDays < lock.minRetentionDays) {
      problems.push('backup retention below backup.vaultLock.minRetentionDays: the locked vault would refuse every backup and copy job');
    }
  }
  if (config.cache.nodes < 1 || config.cache.nodes > 6) {
    problems.push('cache.nodes must be between 1 and 6 (primary plus up to 5 replicas)');
  }
  if (config.cluster.oidcIssuer.startsWith('https://')) {
    problems.push('cluster.oidcIssuer must omit https:// (IAM condition keys use the bare issuer)');
  }
  if (!config.cluster.oidcProviderArn.endsWith(`:oidc-provider/${config.cluster.oidcIssuer}`)) {
    problems.push('cluster.oidcProviderArn does not belong to cluster.oidcIssuer');
  }
  if (config.cluster.routeTableIds.length === 0) {
    problems.push('cluster.routeTableIds is empty: pods would have no route to the data VPC');
  }
  if (!config.availabilityZones.every((az) => az.startsWith(config.region))) {
    problems.push(`availabilityZones must be in ${config.region}`);
  }
  const pitrKey = config.database.crossRegionPitrKmsKeyArn;
  if (pitrKey !== undefined && !pitrKey.startsWith(`arn:aws:kms:${config.backup.copyRegion}:${config.account}:key/`)) {
    problems.push(`database.crossRegionPitrKmsKeyArn must be a key ARN in ${config.backup.copyRegion} (RDS rejects aliases and other regions)`);
  }
  if (config.name === 'production') {
    if (pitrKey === undefined) problems.push('production requires database.crossRegionPitrKmsKeyArn (RPO 1 h on region loss)');
    // The architecture promises these for production; a config edit must not quietly drop them
    // (their cdk-nag findings are acknowledged only where the config turns them off).
    if (!config.database.multiAz) problems.push('production requires database.multiAz');
    if (!config.database.deletionProtection) problems.push('production requires database.deletionProtection');
    if (!config.database.finalSnapshot) problems.push('production requires database.finalSnapshot');
    if (config.cache.nodes < 2) problems.push('production requires a Redis replica (cache.nodes >= 2) for automatic failover');
    if (!config.database.retainSecrets) problems.push('production requires database.retainSecrets');
    if (config.backup.vaultLock === undefined) problems.push('production requires backup.vaultLock (compliance mode)');
  }
  if (problems.length > 0) {
    throw new Error(`invalid ${config.name} configuration:\n- ${problems.join('\n- ')}`);
  }
}
