import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject, type Options, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';

// ajv-formats is CommonJS with a default export; under NodeNext the callable sits on `.default`.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

export type JsonSchema = Record<string, unknown>;

interface ParameterObject {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required?: boolean;
  schema: JsonSchema;
}

interface OperationObject {
  operationId: string;
  parameters?: (ParameterObject | { $ref: string })[];
  requestBody?: { content: Record<string, { schema: JsonSchema }> };
  responses: Record<string, unknown>;
  /** OAuth scopes per security scheme; one requirement object per operation in this API. */
  security?: Record<string, string[]>[];
}

export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, OperationObject>>;
  components: { schemas: Record<string, JsonSchema>; parameters: Record<string, ParameterObject> };
}

/** One way a request breaks the contract: which field, and what is wrong with it. The HTTP layer maps these onto its 400. */
export interface FieldError {
  field: string;
  message: string;
}

/** Checks one part of a request; returns the coerced value or the field errors. */
export type InputValidator = (input: unknown) => { ok: true; value: Record<string, unknown> } | { ok: false; errors: FieldError[] };

export interface OperationValidators {
  /** Path and query parameters together, coerced to their schema types, defaults applied. */
  params: InputValidator;
  /** Header parameters, read case-insensitively and reported under their documented names. */
  headers: InputValidator;
  /** The JSON request body, when the operation has one. */
  body?: InputValidator;
}

/** An ajv for the contract's dialect (JSON Schema 2020-12, as OpenAPI 3.1 uses) with its formats (email, date-time). */
export function contractAjv(options: Options): Ajv2020 {
  const ajv = new Ajv2020(options);
  addFormats(ajv);
  return ajv;
}

const SPEC_URL = new URL('./openapi.yaml', import.meta.url);

/** Reads the contract that sits next to this module (copied into dist/ by the build). */
export function loadOpenApi(): OpenApiDocument {
  return parse(readFileSync(SPEC_URL, 'utf8')) as OpenApiDocument;
}

/**
 * ajv with allErrors runs every keyword, so a 16 KiB string already refused by maxLength would
 * still be matched against its pattern. Wherever a schema has both, the pattern only applies once
 * the length is within bounds: the cheap check guards the expensive one.
 */
function lengthBeforePattern(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(lengthBeforePattern);
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value).map(([key, inner]) => [key, lengthBeforePattern(inner)] as const);
  const schema: JsonSchema = Object.fromEntries(entries);
  if (typeof schema.pattern !== 'string' || typeof schema.maxLength !== 'number') return schema;
  const { pattern, ...rest } = schema;
  return { ...rest, if: { maxLength: schema.maxLength }, then: { pattern } };
}

/** OpenAPI's `#/components/schemas/X` references, rewritten to `#/$defs/X` so each validator is self-contained. */
export function withDefs(doc: OpenApiDocument, schema: JsonSchema): JsonSchema {
  const rewrite = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(rewrite);
    if (value === null || typeof value !== 'object') return value;
    return Object.fromEntries(
      Object.entries(value).map(([key, inner]) =>
        key === '$ref' && typeof inner === 'string'
          ? [key, inner.replace('#/components/schemas/', '#/$defs/')]
          : [key, rewrite(inner)],
      ),
    );
  };
  return lengthBeforePattern({ ...(rewrite(schema) as JsonSchema), $defs: rewrite(doc.components.schemas) }) as JsonSchema;
}

/** One error per field (the first ajv found): `name` breaking minLength and pattern is one problem to fix. */
export function fieldErrors(errors: ErrorObject[] | null | undefined, prefix = ''): FieldError[] {
  const all = (errors ?? []).map((error) => {
    const path = error.instancePath.split('/').filter(Boolean).join('.');
    const child =
      error.keyword === 'required'
        ? (error.params as { missingProperty: string }).missingProperty
        : error.keyword === 'additionalProperties'
          ? (error.params as { additionalProperty: string }).additionalProperty
          : '';
    const field = [prefix, path, child].filter(Boolean).join('.') || prefix || '(body)';
    const message = error.keyword === 'additionalProperties' ? 'is not allowed' : (error.message ?? 'is invalid');
    return { field, message };
  });
  return all.filter((error, index) => all.findIndex((other) => other.field === error.field) === index);
}

/**
 * ajv's coercion reads "1e3", "0x10" and " 7 " as numbers; an id or a limit in a URL should be
 * written one way only, so integer parameters must be plain decimal digits before coercion.
 */
function canonicalIntegers(names: string[], validate: InputValidator): InputValidator {
  return (input) => {
    const raw = input as Record<string, unknown>;
    const errors = names
      .filter((name) => typeof raw[name] === 'string' && !/^-?\d{1,20}$/.test(raw[name]))
      .map((field) => ({ field, message: 'must be an integer' }));
    return errors.length > 0 ? { ok: false, errors } : validate(input);
  };
}

function toValidator(validate: ValidateFunction, prefix?: string): InputValidator {
  return (input) => {
    if (validate(input)) return { ok: true, value: input as Record<string, unknown> };
    return { ok: false, errors: fieldErrors(validate.errors, prefix) };
  };
}

function objectOf(parameters: ParameterObject[]): JsonSchema {
  return {
    type: 'object',
    properties: Object.fromEntries(parameters.map((p) => [p.name, lengthBeforePattern(p.schema)])),
    required: parameters.filter((p) => p.required === true).map((p) => p.name),
  };
}

/**
 * Compiles every operation's validators once, at start. Parameters arrive as strings, so their
 * validator coerces; bodies are JSON and must already have the right types.
 */
export function compileValidators(doc: OpenApiDocument): Map<string, OperationValidators> {
  const paramsAjv = contractAjv({ allErrors: true, coerceTypes: true, useDefaults: true, strict: true });
  const bodyAjv = contractAjv({ allErrors: true, strict: true });
  const resolveParameter = (p: ParameterObject | { $ref: string }): ParameterObject =>
    '$ref' in p ? (doc.components.parameters[p.$ref.split('/').pop() ?? ''] as ParameterObject) : p;

  const validators = new Map<string, OperationValidators>();
  for (const operations of Object.values(doc.paths)) {
    for (const operation of Object.values(operations)) {
      const all = (operation.parameters ?? []).map(resolveParameter);
      const parameters = all.filter((p) => p.in === 'path' || p.in === 'query');
      const headers = all.filter((p) => p.in === 'header');
      // An operation takes one body media type (application/json, or merge-patch+json for PATCH).
      const bodySchema = Object.values(operation.requestBody?.content ?? {})[0]?.schema;
      const validateHeaders = toValidator(bodyAjv.compile(withDefs(doc, objectOf(headers))));
      validators.set(operation.operationId, {
        params: canonicalIntegers(
          parameters.filter((p) => p.schema.type === 'integer').map((p) => p.name),
          toValidator(paramsAjv.compile(withDefs(doc, objectOf(parameters)))),
        ),
        headers: (input) => {
          const received = input as Record<string, unknown>;
          return validateHeaders(Object.fromEntries(headers.flatMap((p) => {
            const value = received[p.name.toLowerCase()];
            return value === undefined ? [] : [[p.name, value]];
          })));
        },
        ...(bodySchema ? { body: toValidator(bodyAjv.compile(withDefs(doc, bodySchema))) } : {}),
      });
    }
  }
  return validators;
}
