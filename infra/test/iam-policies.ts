/**
 * Finds every policy document in a template, wherever it sits (role trust and
 * inline policies, AWS::IAM::Policy, key policies, secret and vault resource
 * policies, repository policies), and reports the Allow statements that use a
 * wildcard. Deny statements restrict, so a wildcard there is not a grant.
 */
import { asArray, isObject, resources, type Json, type JsonObject } from './support.js';

export interface FoundStatement {
  readonly logicalId: string;
  readonly resourceType: string;
  readonly statement: JsonObject;
}

export function policyStatements(template: JsonObject): FoundStatement[] {
  const found: FoundStatement[] = [];
  const visit = (value: Json, logicalId: string, resourceType: string): void => {
    if (Array.isArray(value)) {
      value.forEach((v) => { visit(v, logicalId, resourceType); });
      return;
    }
    if (!isObject(value)) return;
    const statements = value['Statement'];
    if (value['Version'] === '2012-10-17' && statements !== undefined) {
      for (const s of asArray(statements)) if (isObject(s)) found.push({ logicalId, resourceType, statement: s });
      return;
    }
    Object.values(value).forEach((v) => { visit(v, logicalId, resourceType); });
  };
  for (const r of resources(template)) visit(r.properties, r.logicalId, r.type);
  return found;
}

const hasWildcard = (values: Json | undefined): boolean => asArray(values).some((v) => typeof v === 'string' && v.includes('*'));

/** The account-root principal, as CDK renders it. */
function isAccountRoot(principal: Json | undefined): boolean {
  return isObject(principal) && /:root"/.test(JSON.stringify(principal['AWS'] ?? null));
}

/**
 * The only wildcards that are allowed, each because AWS leaves no narrower choice:
 * - in a KMS key policy, Resource "*" means "this key" (a key policy cannot name anything else);
 * - the key policy's default statement gives the account root kms:*, which delegates access
 *   control to IAM policies (AWS's documented default; without it the key is unmanageable),
 *   so any further kms: statement for the root grants nothing new;
 * - in a key policy, EventBridge gets kms:Decrypt and kms:GenerateDataKey* (CDK's SNS target grant): the
 *   data-key family on this one key, so it can publish to the encrypted alarm topic;
 * - ecr:GetAuthorizationToken supports no resource-level permissions, so it takes Resource "*".
 */
export function justifiedException(found: FoundStatement): string | undefined {
  const s = found.statement;
  const actions = asArray(s['Action']);
  if (found.resourceType === 'AWS::KMS::Key') {
    const onlyKmsActions = actions.every((a) => typeof a === 'string' && a.startsWith('kms:'));
    const resourceIsSelf = asArray(s['Resource']).every((r) => r === '*');
    if (!onlyKmsActions || !resourceIsSelf) return undefined;
    if (!hasWildcard(s['Action'])) return 'key policy: Resource "*" is the key itself';
    // Covers the default kms:* statement and the kms:ReEncrypt*/GenerateDataKey* statement
    // CDK's Secret adds for the root (through Secrets Manager only): a subset of what the root already has.
    if (isAccountRoot(s['Principal'])) return 'key policy: account root delegates to IAM';
    // CDK's EventBridge SNS target grants the events service this pair on an encrypted topic's key.
    const principal = isObject(s['Principal']) ? s['Principal'] : {};
    if (principal['Service'] === 'events.amazonaws.com' && JSON.stringify([...actions].sort()) === '["kms:Decrypt","kms:GenerateDataKey*"]') {
      return 'key policy: EventBridge may generate data keys with this key only, to publish to the encrypted alarm topic';
    }
    return undefined;
  }
  if (actions.length === 1 && actions[0] === 'ecr:GetAuthorizationToken' && asArray(s['Resource']).every((r) => r === '*')) {
    return 'ecr:GetAuthorizationToken has no resource-level permissions';
  }
  return undefined;
}

/** Allow statements with a wildcard action, resource or principal, or any NotAction/NotResource, that no exception covers. */
export function wildcardViolations(template: JsonObject): FoundStatement[] {
  return policyStatements(template).filter((found) => {
    const s = found.statement;
    if (s['Effect'] !== 'Allow') return false;
    const wildcard =
      hasWildcard(s['Action']) ||
      hasWildcard(s['Resource']) ||
      s['NotAction'] !== undefined ||
      s['NotResource'] !== undefined ||
      s['Principal'] === '*' ||
      (isObject(s['Principal']) && hasWildcard(s['Principal']['AWS']));
    return wildcard && justifiedException(found) === undefined;
  });
}
