import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { contract, sharedConfig } from '../lib/config.js';
import { asArray, asObject, referencedId, referencedType, resources, single, synthesized, text, type JsonObject } from './support.js';

const shared = (): JsonObject => synthesized().json(synthesized().built.shared);

describe('shared stack: ECR repository', () => {
  it(`is named ${contract.ecrRepositoryName}`, () => {
    assert.equal(single(shared(), 'AWS::ECR::Repository').properties['RepositoryName'], 'users-service');
  });

  it('scans every image on push', () => {
    assert.deepEqual(single(shared(), 'AWS::ECR::Repository').properties['ImageScanningConfiguration'], { ScanOnPush: true });
  });

  it('makes tags immutable', () => {
    assert.equal(single(shared(), 'AWS::ECR::Repository').properties['ImageTagMutability'], 'IMMUTABLE');
  });

  it('encrypts image layers with a customer-managed KMS key', () => {
    const t = shared();
    const encryption = asObject(single(t, 'AWS::ECR::Repository').properties['EncryptionConfiguration'], 'encryption');
    assert.equal(encryption['EncryptionType'], 'KMS');
    assert.equal(referencedType(t, encryption['KmsKey']), 'AWS::KMS::Key');
  });

  describe('lifecycle: keeps each release whole (image, signatures, attestations, chart) for the newest releases', () => {
    const selections = () => {
      const policy = asObject(single(shared(), 'AWS::ECR::Repository').properties['LifecyclePolicy'], 'lifecycle');
      return (JSON.parse(text(policy['LifecyclePolicyText'])) as { rules: { rulePriority: number; selection: Record<string, unknown> }[] }).rules
        .sort((a, b) => a.rulePriority - b.rulePriority)
        .map((r) => r.selection);
    };
    const kept = sharedConfig.ecrReleasesKept;

    it('keeps two cosign tags (sha256-<digest>.sig and .att) per kept release, before any other rule can count them', () => {
      assert.deepEqual(selections()[0], { tagStatus: 'tagged', tagPatternList: ['sha256-*'], countType: 'imageCountMoreThan', countNumber: 2 * kept });
    });

    it('keeps one chart (<version>-g<sha12>) per kept release', () => {
      assert.deepEqual(selections()[1], { tagStatus: 'tagged', tagPatternList: ['*-g*'], countType: 'imageCountMoreThan', countNumber: kept });
    });

    it('keeps two GitHub attestations (untagged referrers) per kept release instead of expiring them after days', () => {
      assert.deepEqual(selections()[2], { tagStatus: 'untagged', countType: 'imageCountMoreThan', countNumber: 2 * kept });
    });

    it('counts all six artifacts of a release in its last rule, so the images of every kept release stay', () => {
      assert.deepEqual(selections()[3], { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 6 * kept });
      assert.equal(selections().length, 4);
    });

    it('matches each release tag with exactly the rule meant for it', () => {
      // ECR's tag patterns: * matches any run of characters, everything else is literal.
      const matches = (pattern: string, tag: string) => new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`).test(tag);
      const patterns = selections().flatMap((s) => (Array.isArray(s['tagPatternList']) ? [String(s['tagPatternList'][0])] : []));
      const digest = 'sha256-' + 'ab12'.repeat(16);
      const releaseTags = { image: '0123456789abcdef0123456789abcdef01234567', signature: `${digest}.sig`, attestation: `${digest}.att`, chart: '0.1.0-g0123456789ab' };
      assert.deepEqual(
        Object.fromEntries(Object.entries(releaseTags).map(([kind, tag]) => [kind, patterns.filter((p) => matches(p, tag))])),
        { image: [], signature: ['sha256-*'], attestation: ['sha256-*'], chart: ['*-g*'] },
      );
    });
  });

  it('is retained when the stack is deleted (running pods pull from it)', () => {
    assert.equal(single(shared(), 'AWS::ECR::Repository').raw['DeletionPolicy'], 'Retain');
  });
});

describe('shared stack: registry replication', () => {
  it('replicates users-service images to the backup region, so a cluster there can pull them', () => {
    const replication = asObject(single(shared(), 'AWS::ECR::ReplicationConfiguration').properties['ReplicationConfiguration'], 'replication');
    assert.deepEqual(replication['Rules'], [
      {
        Destinations: [{ Region: 'us-west-2', RegistryId: sharedConfig.account }],
        RepositoryFilters: [{ Filter: 'users-service', FilterType: 'PREFIX_MATCH' }],
      },
    ]);
  });
});

describe('registry replica stacks: how replication creates the repository in the backup region', () => {
  it('exist once per replication region, in that region', () => {
    assert.deepEqual(synthesized().built.registryReplicas.map((s) => s.region), [...sharedConfig.ecrReplicationRegions]);
  });

  it('give the replicated users-service repository immutable tags and the source repository\'s lifecycle', () => {
    const sourcePolicy = asObject(single(shared(), 'AWS::ECR::Repository').properties['LifecyclePolicy'], 'lifecycle')['LifecyclePolicyText'];
    for (const stack of synthesized().built.registryReplicas) {
      const template = single(synthesized().json(stack), 'AWS::ECR::RepositoryCreationTemplate').properties;
      assert.equal(template['Prefix'], 'users-service');
      assert.deepEqual(template['AppliedFor'], ['REPLICATION']);
      assert.equal(template['ImageTagMutability'], 'IMMUTABLE');
      assert.equal(template['LifecyclePolicy'], sourcePolicy);
      assert.deepEqual(template['EncryptionConfiguration'], { EncryptionType: 'KMS' });
    }
  });

  it('are deployed before the shared stack that turns replication on', () => {
    for (const stack of synthesized().built.registryReplicas) assert.ok(synthesized().built.shared.dependencies.includes(stack));
  });
});

describe('shared stack: CI role (GitHub OIDC)', () => {
  const ciRole = () => resources(shared(), 'AWS::IAM::Role').find((r) => r.properties['RoleName'] === 'users-service-ci-ecr-push')!;

  it('trusts only GitHub tokens for the configured repository refs, with audience sts.amazonaws.com', () => {
    const trust = asArray(asObject(ciRole().properties['AssumeRolePolicyDocument'], 'trust')['Statement']);
    assert.equal(trust.length, 1);
    const statement = asObject(trust[0], 'statement');
    assert.equal(statement['Action'], 'sts:AssumeRoleWithWebIdentity');
    assert.equal(referencedType(shared(), asObject(statement['Principal'], 'principal')['Federated']), 'AWS::IAM::OIDCProvider');
    assert.deepEqual(statement['Condition'], {
      StringEquals: {
        'token.actions.githubusercontent.com:aud': 'sts.amazonaws.com',
        'token.actions.githubusercontent.com:sub': sharedConfig.githubRefs.map((ref) => `repo:${sharedConfig.githubRepository}:ref:${ref}`),
      },
    });
  });

  it('may push to the users-service repository, read back what it pushed and obtain a registry login, nothing else', () => {
    const t = shared();
    const role = ciRole();
    assert.equal(role.properties['ManagedPolicyArns'], undefined);
    assert.equal(role.properties['Policies'], undefined);
    const policies = resources(t, 'AWS::IAM::Policy').filter((p) => asArray(p.properties['Roles']).some((r) => referencedId(r) === role.logicalId));
    assert.equal(policies.length, 1);
    const statements = asArray(asObject(policies[0]!.properties['PolicyDocument'], 'doc')['Statement']).map((s) => asObject(s, 'statement'));
    const repository = single(t, 'AWS::ECR::Repository').logicalId;
    // AWS's documented push policy, written out here rather than taken from the code under test.
    const push = [
      'ecr:BatchCheckLayerAvailability',
      'ecr:InitiateLayerUpload',
      'ecr:UploadLayerPart',
      'ecr:CompleteLayerUpload',
      'ecr:PutImage',
      // OCI clients (helm push, docker buildx) read the manifest before and after the upload.
      'ecr:BatchGetImage',
      // The release job scans the pushed digest with Trivy and verifies its cosign attestations: both download layers.
      'ecr:GetDownloadUrlForLayer',
    ];
    assert.deepEqual(
      statements.map((s) => ({ Effect: s['Effect'], Action: asArray(s['Action']).map(String).sort(), Resource: referencedId(s['Resource']) ?? s['Resource'] })),
      [
        { Effect: 'Allow', Action: [...push].sort(), Resource: repository },
        { Effect: 'Allow', Action: ['ecr:GetAuthorizationToken'], Resource: '*' },
      ],
    );
  });

  it('includes no delete, policy, replication or tag-rewriting permission', () => {
    const role = ciRole();
    const granted = resources(shared(), 'AWS::IAM::Policy')
      .filter((p) => asArray(p.properties['Roles']).some((r) => referencedId(r) === role.logicalId))
      .flatMap((p) => asArray(asObject(p.properties['PolicyDocument'], 'doc')['Statement']))
      .flatMap((s) => asArray(asObject(s, 'statement')['Action']).map(String));
    assert.ok(granted.length > 0);
    const forbidden = [
      'ecr:BatchDeleteImage',
      'ecr:DeleteRepository',
      'ecr:SetRepositoryPolicy',
      'ecr:PutLifecyclePolicy',
      'ecr:PutImageTagMutability',
      'ecr:PutReplicationConfiguration',
    ];
    for (const action of granted) {
      assert.ok(!action.includes('*'), action);
      assert.ok(!forbidden.includes(action), action);
    }
  });
});
