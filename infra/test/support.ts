/**
 * Shared test helpers: synthesise the real application once (it takes
 * seconds) and hand out parsed templates, plus small typed accessors over
 * CloudFormation JSON so the specs read as statements about the template.
 */
import { Template } from 'aws-cdk-lib/assertions';
import type { Stack } from 'aws-cdk-lib';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { buildApp, type UsersServiceApp } from '../lib/app.js';
import type { EnvironmentName } from '../lib/config.js';

export const ENVIRONMENTS: readonly EnvironmentName[] = ['staging', 'production'];

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface Synthesized {
  readonly built: UsersServiceApp;
  readonly assembly: CloudAssembly;
  readonly template: (stack: Stack) => Template;
  readonly json: (stack: Stack) => JsonObject;
}

let cached: Synthesized | undefined;

/** Synthesises the app exactly as `cdk synth` does, including the cdk-nag plugin (which throws on findings). */
export function synthesized(): Synthesized {
  if (cached !== undefined) return cached;
  const built = buildApp();
  const assembly = built.app.synth();
  const json = (stack: Stack): JsonObject => assembly.getStackByName(stack.stackName).template as JsonObject;
  cached = { built, assembly, json, template: (stack) => Template.fromJSON(json(stack)) };
  return cached;
}

export function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function asObject(value: Json | undefined, what: string): JsonObject {
  if (!isObject(value)) throw new Error(`${what} is not an object: ${JSON.stringify(value)}`);
  return value;
}

export function asArray(value: Json | undefined): Json[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

export interface Resource {
  readonly logicalId: string;
  readonly type: string;
  readonly properties: JsonObject;
  readonly raw: JsonObject;
}

export function resources(template: JsonObject, type?: string): Resource[] {
  const all = asObject(template['Resources'], 'Resources');
  return Object.entries(all)
    .map(([logicalId, raw]) => {
      const r = asObject(raw, logicalId);
      return {
        logicalId,
        type: text(r['Type']),
        properties: isObject(r['Properties']) ? r['Properties'] : {},
        raw: r,
      };
    })
    .filter((r) => type === undefined || r.type === type);
}

export function single(template: JsonObject, type: string): Resource {
  const found = resources(template, type);
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  return found[0]!;
}

/** Logical id that a `Ref` or `Fn::GetAtt` points at, or undefined for anything else. */
export function referencedId(value: Json | undefined): string | undefined {
  if (!isObject(value)) return undefined;
  const ref = value['Ref'];
  if (typeof ref === 'string') return ref;
  const getAtt = value['Fn::GetAtt'];
  if (Array.isArray(getAtt) && typeof getAtt[0] === 'string') return getAtt[0];
  return undefined;
}

/** Type of the resource a property references, e.g. 'AWS::KMS::Key'. */
export function referencedType(template: JsonObject, value: Json | undefined): string | undefined {
  const id = referencedId(value);
  if (id === undefined) return undefined;
  const target = asObject(template['Resources'], 'Resources')[id];
  return isObject(target) ? text(target['Type']) : undefined;
}

/** A JSON value as text: strings as they are, anything else serialised (never "[object Object]"). */
export function text(value: Json | undefined): string {
  return typeof value === 'string' ? value : JSON.stringify(value ?? null);
}
