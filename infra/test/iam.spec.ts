import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { justifiedException, policyStatements, wildcardViolations } from './iam-policies.js';
import { synthesized, type JsonObject } from './support.js';

function templateWith(statements: JsonObject[], type = 'AWS::IAM::Policy'): JsonObject {
  return {
    Resources: {
      Subject: { Type: type, Properties: { PolicyDocument: { Version: '2012-10-17', Statement: statements } } },
    },
  };
}

describe('IAM wildcard check (the checker itself)', () => {
  it('flags an Allow statement with Action "*"', () => {
    assert.equal(wildcardViolations(templateWith([{ Effect: 'Allow', Action: '*', Resource: 'arn:aws:s3:::b' }])).length, 1);
  });

  it('flags an Allow statement with a service-wide action such as s3:*', () => {
    assert.equal(wildcardViolations(templateWith([{ Effect: 'Allow', Action: ['s3:GetObject', 's3:*'], Resource: 'arn:aws:s3:::b' }])).length, 1);
  });

  it('flags an Allow statement with Resource "*"', () => {
    assert.equal(wildcardViolations(templateWith([{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }])).length, 1);
  });

  it('flags NotAction in an Allow statement', () => {
    assert.equal(wildcardViolations(templateWith([{ Effect: 'Allow', NotAction: 'iam:*', Resource: 'arn:aws:s3:::b' }])).length, 1);
  });

  it('flags ecr:GetAuthorizationToken on "*" once another action shares the statement', () => {
    const s = { Effect: 'Allow', Action: ['ecr:GetAuthorizationToken', 'ecr:PutImage'], Resource: '*' };
    assert.equal(wildcardViolations(templateWith([s])).length, 1);
  });

  it('flags kms:* in a key policy for any principal other than the account root', () => {
    const s = { Effect: 'Allow', Action: 'kms:*', Resource: '*', Principal: { Service: 'logs.amazonaws.com' } };
    assert.equal(wildcardViolations(templateWith([s], 'AWS::KMS::Key')).length, 1);
  });

  it('flags kms:GenerateDataKey* in a key policy for a service other than EventBridge, or with more actions', () => {
    const grant = (service: string, actions: string[]): JsonObject => ({ Effect: 'Allow', Action: actions, Resource: '*', Principal: { Service: service } });
    assert.deepEqual(wildcardViolations(templateWith([grant('events.amazonaws.com', ['kms:Decrypt', 'kms:GenerateDataKey*'])], 'AWS::KMS::Key')), []);
    assert.equal(wildcardViolations(templateWith([grant('lambda.amazonaws.com', ['kms:Decrypt', 'kms:GenerateDataKey*'])], 'AWS::KMS::Key')).length, 1);
    assert.equal(wildcardViolations(templateWith([grant('events.amazonaws.com', ['kms:Decrypt', 'kms:GenerateDataKey*', 'kms:Encrypt'])], 'AWS::KMS::Key')).length, 1);
  });

  it('accepts a Deny statement with wildcards (it restricts, it grants nothing)', () => {
    assert.deepEqual(wildcardViolations(templateWith([{ Effect: 'Deny', Action: 's3:*', Resource: '*' }])), []);
  });

  it('finds policy documents nested anywhere in resource properties', () => {
    const template: JsonObject = {
      Resources: {
        Role: {
          Type: 'AWS::IAM::Role',
          Properties: { Policies: [{ PolicyName: 'p', PolicyDocument: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'a:b', Resource: 'r' }] } }] },
        },
      },
    };
    assert.equal(policyStatements(template).length, 1);
  });
});

describe('IAM statements in every synthesized stack', () => {
  const { built, json } = synthesized();
  const stacks = [built.shared, ...Object.values(built.environments).flatMap((e) => [e.main, e.backupCopy])];

  for (const stack of stacks) {
    it(`${stack.stackName}: no Allow statement uses a "*" action or resource beyond the justified exceptions`, () => {
      const violations = wildcardViolations(json(stack)).map((v) => `${v.logicalId}: ${JSON.stringify(v.statement)}`);
      assert.deepEqual(violations, []);
    });
  }

  it('uses the Resource "*" exception for ecr:GetAuthorizationToken exactly once, on the CI role', () => {
    const uses = stacks.flatMap((stack) =>
      policyStatements(json(stack))
        .filter((f) => f.statement['Effect'] === 'Allow' && f.resourceType !== 'AWS::KMS::Key' && justifiedException(f) !== undefined)
        .map((f) => `${stack.stackName}/${f.logicalId}`),
    );
    assert.equal(uses.length, 1);
    assert.match(uses[0]!, /^UsersService-Shared\/CiRole/);
  });
});
