import { App, Validations, type AppProps } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BackupCopyStack } from './backup-copy-stack.js';
import {
  environments as defaultEnvironments,
  sharedConfig as defaultSharedConfig,
  validateEnvironmentConfig,
  type EnvironmentConfig,
  type EnvironmentName,
  type SharedConfig,
} from './config.js';
import { EnvironmentStack } from './environment-stack.js';
import { RegistryReplicaStack } from './registry-replica-stack.js';
import { SharedStack } from './shared-stack.js';

export interface UsersServiceApp {
  readonly app: App;
  readonly shared: SharedStack;
  /** One per ECR replication region: the creation template the replicated repository is made from. */
  readonly registryReplicas: readonly RegistryReplicaStack[];
  readonly environments: Readonly<Record<EnvironmentName, { readonly main: EnvironmentStack; readonly backupCopy: BackupCopyStack }>>;
}

export interface BuildOptions {
  readonly appProps?: AppProps;
  readonly shared?: SharedConfig;
  readonly environments?: Readonly<Record<EnvironmentName, EnvironmentConfig>>;
}

/** Stack ids are also the CloudFormation stack names: `cdk deploy UsersService-production`. */
export function stackId(env: EnvironmentName, part?: 'backup-copy'): string {
  const title = env === 'production' ? 'Production' : 'Staging';
  return part === undefined ? `UsersService-${title}` : `UsersService-${title}-BackupCopy`;
}

/**
 * Builds the whole application: one shared stack, and per environment a stack
 * in the primary region plus the backup-copy vault in the second region.
 * cdk-nag's AwsSolutions pack runs as a synthesis-time validation plugin, so
 * `cdk synth` itself fails on any unacknowledged finding.
 */
export function buildApp(options: BuildOptions = {}): UsersServiceApp {
  const app = new App(options.appProps);
  const envConfigs = options.environments ?? defaultEnvironments;
  const sharedConfig = options.shared ?? defaultSharedConfig;
  const shared = new SharedStack(app, 'UsersService-Shared', {
    config: sharedConfig,
    description: 'users-service: ECR repository and the CI role that pushes to it',
  });
  const registryReplicas = sharedConfig.ecrReplicationRegions.map((region) => {
    const replica = new RegistryReplicaStack(app, `UsersService-Registry-${region}`, {
      config: sharedConfig,
      region,
      lifecyclePolicyText: shared.lifecyclePolicyText,
      description: `users-service: how ECR creates the replicated repository in ${region}`,
    });
    // The template must exist before the first replicated push creates the repository.
    shared.addStackDependency(replica);
    return replica;
  });
  const build = (config: EnvironmentConfig): { main: EnvironmentStack; backupCopy: BackupCopyStack } => {
    validateEnvironmentConfig(config);
    const backupCopy = new BackupCopyStack(app, stackId(config.name, 'backup-copy'), {
      config,
      description: `users-service ${config.name}: backup copy vault in ${config.backup.copyRegion}`,
    });
    const main = new EnvironmentStack(app, stackId(config.name), {
      config,
      description: `users-service ${config.name}: data VPC, PostgreSQL, Redis, secrets, backups, IRSA`,
    });
    // The copy vault must exist before the first backup job copies into it.
    main.addStackDependency(backupCopy);
    return { main, backupCopy };
  };
  const result = {
    app,
    shared,
    registryReplicas,
    environments: { staging: build(envConfigs.staging), production: build(envConfigs.production) },
  };
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return result;
}
