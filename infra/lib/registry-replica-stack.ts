import { Stack, type StackProps } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import type { Construct } from 'constructs';
import { contract, type SharedConfig } from './config.js';

export interface RegistryReplicaStackProps extends StackProps {
  readonly config: SharedConfig;
  readonly region: string;
  /** The source repository's lifecycle policy text (SharedStack.lifecyclePolicyText). */
  readonly lifecyclePolicyText: string;
}

/**
 * Replication creates the users-service repository in a backup region by
 * itself, with ECR's defaults: mutable tags, no lifecycle, AES-256. A
 * repository creation template is a setting of the destination registry, so it
 * lives in a stack in that region and gives the replica what the source has.
 */
export class RegistryReplicaStack extends Stack {
  constructor(scope: Construct, id: string, props: RegistryReplicaStackProps) {
    super(scope, id, { ...props, env: { account: props.config.account, region: props.region } });
    new ecr.CfnRepositoryCreationTemplate(this, 'ReplicaTemplate', {
      prefix: contract.ecrRepositoryName,
      appliedFor: ['REPLICATION'],
      description: `Replicas of ${contract.ecrRepositoryName}: immutable tags and the source's lifecycle`,
      imageTagMutability: 'IMMUTABLE',
      lifecyclePolicy: props.lifecyclePolicyText,
      // The AWS-managed ECR key of this region: a customer key would need a custom role for ECR to use it.
      encryptionConfiguration: { encryptionType: 'KMS' },
    });
  }
}
