import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';
import type { FieldError } from '../middleware/problem.js';

// ajv-formats is CommonJS with a default export; under NodeNext the callable sits on `.default`.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

type JsonSchema = Record<string, unknown>;

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
}

export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, OperationObject>>;
  components: { schemas: Record<string, JsonSchema>; parameters: Record<string, ParameterObject> };
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

const SPEC_URL = new URL('./openapi.yaml', import.meta.url);

/** Reads the contract that sits next to this module (copied into dist/ by the build). */
export function loadOpenApi(): OpenApiDocument {
  return parse(readFileSync(SPEC_URL, 'utf8')) as OpenApiDocument;
}

/** OpenAPI's `#/components/schemas/X` references, rewritten to `#/$defs/X` so each validator is self-contained. */
function withDefs(doc: OpenApiDocument, schema: JsonSchema): JsonSchema {
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
  return { ...(rewrite(schema) as JsonSchema), $defs: rewrite(doc.components.schemas) };
}

/** One error per field (the first ajv found): `name` breaking minLength and pattern is one problem to fix. */
function fieldErrors(errors: ErrorObject[] | null | undefined, prefix = ''): FieldError[] {
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
    properties: Object.fromEntries(parameters.map((p) => [p.name, p.schema])),
    required: parameters.filter((p) => p.required === true).map((p) => p.name),
  };
}

/**
 * Compiles every operation's validators once, at start. Parameters arrive as strings, so their
 * validator coerces; bodies are JSON and must already have the right types.
 */
export function compileValidators(doc: OpenApiDocument): Map<string, OperationValidators> {
  const paramsAjv = addFormats(new Ajv2020({ allErrors: true, coerceTypes: true, useDefaults: true, strict: true }));
  const bodyAjv = addFormats(new Ajv2020({ allErrors: true, strict: true }));
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

/** Response-side validators, for tests: the schema of `status` for `operationId`, by content type. */
export function compileResponseValidator(doc: OpenApiDocument) {
  const ajv = addFormats(new Ajv2020({ allErrors: true, strict: false }));
  const cache = new Map<string, ValidateFunction>();
  return (operationId: string, status: number, contentType: string, body: unknown): string[] => {
    const operation = Object.values(doc.paths)
      .flatMap((ops) => Object.values(ops))
      .find((op) => op.operationId === operationId);
    if (!operation) return [`unknown operation ${operationId}`];
    let response = operation.responses[String(status)] as { $ref?: string; content?: Record<string, { schema: JsonSchema }> } | undefined;
    if (response?.$ref) {
      const name = response.$ref.split('/').pop() ?? '';
      response = (doc.components as unknown as { responses: Record<string, typeof response> }).responses[name];
    }
    if (!response) return [`${operationId} does not document status ${status}`];
    const media = contentType.split(';')[0]?.trim() ?? '';
    if (!response.content) return body === '' ? [] : [`${operationId} ${status} documents no content but has a body`];
    const schema = response.content[media]?.schema;
    if (!schema) return [`${operationId} ${status} does not document content type ${media}`];
    const key = `${operationId} ${status} ${media}`;
    let validate = cache.get(key);
    if (!validate) {
      validate = ajv.compile(withDefs(doc, schema));
      cache.set(key, validate);
    }
    return validate(body) ? [] : fieldErrors(validate.errors).map((e) => `${e.field} ${e.message}`);
  };
}
