import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as kms from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from './config.js';

/** Name of the vault in the copy region; the primary stack builds its ARN from it. */
export function copyVaultName(config: EnvironmentConfig): string {
  return `users-service-${config.name}-copy`;
}

/**
 * ARN of the copy vault, computed instead of referenced: a CloudFormation
 * reference cannot cross regions without a custom-resource bridge (a Lambda
 * function and its role), and the name is deterministic anyway.
 */
export function copyVaultArn(config: EnvironmentConfig): string {
  return `arn:aws:backup:${config.backup.copyRegion}:${config.account}:backup-vault:${copyVaultName(config)}`;
}

/**
 * Vault Lock in compliance mode (ChangeableForDays set): after the cooling-off
 * period nobody, the account root and AWS included, can shorten a recovery
 * point's retention, delete it early or remove the lock. Undefined when the
 * environment has no lock configured.
 */
export function vaultLockConfiguration(config: EnvironmentConfig): backup.LockConfiguration | undefined {
  const lock = config.backup.vaultLock;
  if (lock === undefined) return undefined;
  return { minRetention: Duration.days(lock.minRetentionDays), changeableFor: Duration.days(lock.changeableForDays) };
}

export interface BackupCopyStackProps extends StackProps {
  readonly config: EnvironmentConfig;
}

/**
 * The vault in a second region that receives a copy of every AWS Backup
 * recovery point, so a regional outage or a compromised primary vault does not
 * take every backup with it. Deployed before the environment stack.
 */
export class BackupCopyStack extends Stack {
  public readonly vault: backup.BackupVault;

  constructor(scope: Construct, id: string, props: BackupCopyStackProps) {
    super(scope, id, {
      ...props,
      env: { account: props.config.account, region: props.config.backup.copyRegion },
    });
    const { config } = props;

    const key = new kms.Key(this, 'VaultKey', {
      alias: `alias/users-service-${config.name}-backup-copy`,
      description: `users-service ${config.name}: encrypts recovery points copied to ${config.backup.copyRegion}`,
      enableKeyRotation: true,
      // Deleting the key would make every copied recovery point unreadable.
      removalPolicy: RemovalPolicy.RETAIN,
      pendingWindow: Duration.days(30),
    });

    // RDS cross-region automated-backup replication (production) needs a key in
    // this region; its ARN goes into database.crossRegionPitrKmsKeyArn.
    const pitrKey = new kms.Key(this, 'PitrReplicationKey', {
      alias: `alias/users-service-${config.name}-pitr-replica`,
      description: `users-service ${config.name}: RDS automated backups replicated to ${config.backup.copyRegion}`,
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
      pendingWindow: Duration.days(30),
    });
    new CfnOutput(this, 'PitrReplicationKeyArn', {
      value: pitrKey.keyArn,
      description: 'Set as database.crossRegionPitrKmsKeyArn in infra/lib/config.ts',
    });

    this.vault = new backup.BackupVault(this, 'Vault', {
      backupVaultName: copyVaultName(config),
      encryptionKey: key,
      removalPolicy: RemovalPolicy.RETAIN,
      // An access policy denying early deletion: an administrator can remove it.
      // Vault Lock (production) is the protection that cannot be lifted.
      blockRecoveryPointDeletion: true,
      lockConfiguration: vaultLockConfiguration(config),
    });
  }
}
