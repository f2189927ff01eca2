import type { ValidateFunction } from 'ajv/dist/2020.js';
import { contractAjv, fieldErrors, withDefs, type JsonSchema, type OpenApiDocument } from './contract.js';

interface ResponseObject {
  $ref?: string;
  content?: Record<string, { schema: JsonSchema }>;
}

/**
 * Response-side validators (the smoke test checks the deployed service with them): the schema of `status` for `operationId`, by content type, compiled
 * with the service's own ajv set-up. Returns what breaks the contract (empty when nothing does).
 */
export function compileResponseValidator(doc: OpenApiDocument) {
  const ajv = contractAjv({ allErrors: true, strict: false });
  const cache = new Map<string, ValidateFunction>();
  const responses = (doc.components as unknown as { responses?: Record<string, ResponseObject> }).responses ?? {};
  return (operationId: string, status: number, contentType: string, body: unknown): string[] => {
    const operation = Object.values(doc.paths)
      .flatMap((ops) => Object.values(ops))
      .find((op) => op.operationId === operationId);
    if (!operation) return [`unknown operation ${operationId}`];
    let response = operation.responses[String(status)] as ResponseObject | undefined;
    if (response?.$ref) response = responses[response.$ref.split('/').pop() ?? ''];
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
