import { CfnOutput, Duration, RemovalPolicy, Stack, Validations, type StackProps } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';
import { contract, type SharedConfig } from './config.js';

const GITHUB_OIDC_ISSUER = 'token.actions.githubusercontent.com';

/**
 * What the release job does to its own repository: AWS's documented push policy (`docker push`, `helm push`,
 * cosign and GitHub's attestations of a new, immutable tag or referrer), plus reading back what it pushed:
 * BatchGetImage for manifests, GetDownloadUrlForLayer for the layers Trivy scans on the pushed digest and the
 * attestation layers `cosign verify-attestation` checks. No delete, re-tag or policy change.
 */
export const ECR_RELEASE_ACTIONS = [
  'ecr:BatchCheckLayerAvailability',
  'ecr:InitiateLayerUpload',
  'ecr:UploadLayerPart',
  'ecr:CompleteLayerUpload',
  'ecr:PutImage',
  'ecr:BatchGetImage',
  'ecr:GetDownloadUrlForLayer',
] as const;

/**
 * What one release pushes to the repository (.github/workflows/ci.yaml, job build), so the lifecycle
 * rules keep each kind for as many releases. ECR counts every manifest as an image: counting them all
 * together would let signatures outlive their images, or expire the signatures of an image a pod still
 * runs (the admission policy would then refuse that pod when it is rescheduled).
 */
export const RELEASE_ARTIFACTS = {
  /** The image, tagged with the full commit sha (no fixed prefix, so it is what the last rule counts). */
  image: 1,
  /** cosign's classic layout: tags sha256-<digest>.sig and sha256-<digest>.att (the admission policy reads them). */
  cosignTags: 2,
  /** GitHub's provenance and SBOM attestations: untagged OCI referrers of the image. */
  referrers: 2,
  /** The chart, tagged <chart version>-g<sha12>. */
  chart: 1,
} as const;

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
      // One rule per kind of artifact (RELEASE_ARTIFACTS), each keeping `ecrReleasesKept` releases' worth.
      // Tags are immutable, so a push never leaves an untagged image behind: untagged manifests are referrers.
      lifecycleRules: [
        {
          rulePriority: 1,
          description: `cosign signatures and attestations (sha256-*.sig/.att) of the newest ${String(config.ecrReleasesKept)} releases`,
          tagStatus: ecr.TagStatus.TAGGED,
          tagPatternList: ['sha256-*'],
          maxImageCount: config.ecrReleasesKept * RELEASE_ARTIFACTS.cosignTags,
        },
        {
          rulePriority: 2,
          description: `charts (<version>-g<sha12>) of the newest ${String(config.ecrReleasesKept)} releases`,
          tagStatus: ecr.TagStatus.TAGGED,
          tagPatternList: ['*-g*'],
          maxImageCount: config.ecrReleasesKept * RELEASE_ARTIFACTS.chart,
        },
        {
          rulePriority: 3,
          description: `GitHub attestations (untagged referrers) of the newest ${String(config.ecrReleasesKept)} releases`,
          tagStatus: ecr.TagStatus.UNTAGGED,
          maxImageCount: config.ecrReleasesKept * RELEASE_ARTIFACTS.referrers,
        },
        {
          rulePriority: 4,
          // The last rule counts every manifest, whatever an earlier rule matched: all of one release's artifacts.
          description: `images (commit-sha tags) of the newest ${String(config.ecrReleasesKept)} releases`,
          tagStatus: ecr.TagStatus.ANY,
          maxImageCount: config.ecrReleasesKept * Object.values(RELEASE_ARTIFACTS).reduce((a, b) => a + b, 0),
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
        sid: 'ReleaseToServiceRepository',
        actions: [...ECR_RELEASE_ACTIONS],
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
