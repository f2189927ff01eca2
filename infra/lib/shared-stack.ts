import { CfnOutput, Duration, RemovalPolicy, Stack, Validations, type StackProps } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';
import { contract, type SharedConfig } from './config.js';

const GITHUB_OIDC_ISSUER = 'token.actions.githubusercontent.com';

/**
 * AWS's documented push policy: what `docker push` and `helm push` (OCI) of a
 * new, immutable tag perform. BatchGetImage reads a manifest (OCI clients check
 * whether it exists before and after the upload); no layer download
 * (GetDownloadUrlForLayer), delete or re-tag.
 */
export const ECR_PUSH_ACTIONS = [
  'ecr:BatchCheckLayerAvailability',
  'ecr:InitiateLayerUpload',
  'ecr:UploadLayerPart',
  'ecr:CompleteLayerUpload',
  'ecr:PutImage',
  'ecr:BatchGetImage',
] as const;

export interface SharedStackProps extends StackProps {
  readonly config: SharedConfig;
}

/**
 * Account-level resources used by every environment: the image registry (an
 * image is built once and promoted by its immutable git-sha tag, so staging and
 * production pull the same repository) and the role CI assumes to push to it.
 */
export class SharedStack extends Stack {
  public readonly repository: ecr.Repository;
  /** The repository's lifecycle policy as ECR receives it: the replicas get the same one. */
  public readonly lifecyclePolicyText: string;
  public readonly ciRole: iam.Role;

  constructor(scope: Construct, id: string, props: SharedStackProps) {
    super(scope, id, { ...props, env: { account: props.config.account, region: props.config.region } });
    const { config } = props;

    const registryKey = new kms.Key(this, 'RegistryKey', {
      alias: 'alias/users-service-ecr',
      description: 'users-service: ECR image layers',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
      pendingWindow: Duration.days(30),
    });
    this.repository = new ecr.Repository(this, 'Repository', {
      repositoryName: contract.ecrRepositoryName,
      imageScanOnPush: true,
      imageTagMutability: ecr.TagMutability.IMMUTABLE,
      encryption: ecr.RepositoryEncryption.KMS,
      encryptionKey: registryKey,
      // Running pods reference these images: never delete them with the stack.
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        {
          rulePriority: 1,
          description: 'Untagged manifests are build leftovers (tags are immutable, so nothing is ever untagged by a push)',
          tagStatus: ecr.TagStatus.UNTAGGED,
          maxImageAge: Duration.days(7),
        },
        {
          rulePriority: 2,
          description: `Keep the newest ${config.ecrMaxImageCount} images; older ones are far behind anything deployable`,
          tagStatus: ecr.TagStatus.ANY,
          maxImageCount: config.ecrMaxImageCount,
        },
      ],
    });

    const cfnRepository = this.repository.node.defaultChild as ecr.CfnRepository;
    const policy = this.resolve(cfnRepository.lifecyclePolicy) as { lifecyclePolicyText?: unknown } | undefined;
    if (typeof policy?.lifecyclePolicyText !== 'string') throw new Error('the repository has no lifecycle policy text');
    this.lifecyclePolicyText = policy.lifecyclePolicyText;

    if (config.ecrReplicationRegions.length > 0) {
      new ecr.CfnReplicationConfiguration(this, 'RegistryReplication', {
        replicationConfiguration: {
          rules: [
            {
              destinations: config.ecrReplicationRegions.map((region) => ({ region, registryId: this.account })),
              repositoryFilters: [{ filter: contract.ecrRepositoryName, filterType: 'PREFIX_MATCH' }],
            },
          ],
        },
      });
    }

    const providerArn =
      config.existingGithubOidcProviderArn ??
      new iam.OidcProviderNative(this, 'GithubOidcProvider', {
        url: `https://${GITHUB_OIDC_ISSUER}`,
        clientIds: ['sts.amazonaws.com'],
      }).oidcProviderArn;

    this.ciRole = new iam.Role(this, 'CiRole', {
      roleName: 'users-service-ci-ecr-push',
      description: `GitHub Actions (${config.githubRepository}) pushes images to ${contract.ecrRepositoryName}`,
      assumedBy: new iam.WebIdentityPrincipal(providerArn, {
        StringEquals: {
          [`${GITHUB_OIDC_ISSUER}:aud`]: 'sts.amazonaws.com',
          // Exact refs, not a `repo:org/*` pattern: a fork or another branch gets nothing.
          [`${GITHUB_OIDC_ISSUER}:sub`]: config.githubRefs.map((ref) => `repo:${config.githubRepository}:ref:${ref}`),
        },
      }),
      maxSessionDuration: Duration.hours(1),
    });
    this.ciRole.addToPolicy(
      new iam.PolicyStatement({
        sid: 'PushToServiceRepository',
        actions: [...ECR_PUSH_ACTIONS],
        resources: [this.repository.repositoryArn],
      }),
    );
    // ecr:GetAuthorizationToken is the one ECR action without resource-level
    // permissions: AWS only accepts Resource "*" for it. The token it returns
    // grants nothing by itself; what can be pushed is still limited by the
    // statement above. Tests allow exactly this action on "*", nothing else.
    this.ciRole.addToPolicy(
      new iam.PolicyStatement({
        sid: 'RegistryLogin',
        actions: ['ecr:GetAuthorizationToken'],
        resources: ['*'],
      }),
    );
    Validations.of(this.ciRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'ecr:GetAuthorizationToken supports no resource-level permission (AWS requires "*"); it is the only action on "*" and the push actions are limited to the users-service repository.',
    });

    new CfnOutput(this, 'EcrRepositoryUri', { value: this.repository.repositoryUri, description: 'image.repository in the chart values' });
    new CfnOutput(this, 'EcrRepositoryArn', { value: this.repository.repositoryArn, description: 'ARN of the image repository' });
    new CfnOutput(this, 'CiRoleArn', { value: this.ciRole.roleArn, description: 'role-to-assume for aws-actions/configure-aws-credentials in CI' });
  }
}
