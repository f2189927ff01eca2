import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { contract, sharedConfig } from '../lib/config.js';
import { ECR_PUSH_ACTIONS } from '../lib/shared-stack.js';
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

  it('expires untagged images after 7 days and keeps a bounded number of images', () => {
    const policy = asObject(single(shared(), 'AWS::ECR::Repository').properties['LifecyclePolicy'], 'lifecycle');
    const rules = JSON.parse(text(policy['LifecyclePolicyText'])) as { rules: { selection: Record<string, unknown> }[] };
    assert.deepEqual(
      rules.rules.map((r) => r.selection),
      [
        { tagStatus: 'untagged', countType: 'sinceImagePushed', countNumber: 7, countUnit: 'days' },
        { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: sharedConfig.ecrMaxImageCount },
      ],
    );
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

  it('may push to the users-service repository and obtain a registry login, nothing else', () => {
    const t = shared();
    const role = ciRole();
    assert.equal(role.properties['ManagedPolicyArns'], undefined);
    assert.equal(role.properties['Policies'], undefined);
    const policies = resources(t, 'AWS::IAM::Policy').filter((p) => asArray(p.properties['Roles']).some((r) => referencedId(r) === role.logicalId));
    assert.equal(policies.length, 1);
    const statements = asArray(asObject(policies[0]!.properties['PolicyDocument'], 'doc')['Statement']).map((s) => asObject(s, 'statement'));
    const repository = single(t, 'AWS::ECR::Repository').logicalId;
    assert.deepEqual(
      statements.map((s) => ({ Effect: s['Effect'], Action: s['Action'], Resource: referencedId(s['Resource']) ?? s['Resource'] })),
      [
        { Effect: 'Allow', Action: [...ECR_PUSH_ACTIONS], Resource: repository },
        { Effect: 'Allow', Action: 'ecr:GetAuthorizationToken', Resource: '*' },
      ],
    );
  });

  it('includes no pull, delete or tag-rewriting permission', () => {
    for (const forbidden of ['ecr:BatchDeleteImage', 'ecr:DeleteRepository', 'ecr:SetRepositoryPolicy', 'ecr:PutLifecyclePolicy', 'ecr:PutImageTagMutability']) {
      assert.ok(!(ECR_PUSH_ACTIONS as readonly string[]).includes(forbidden), forbidden);
    }
  });
});
