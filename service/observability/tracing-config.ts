import { parseKeyPairsIntoRecord } from '@opentelemetry/core';

/**
 * Tracing is configured by OpenTelemetry's own environment variables, as every OTel SDK reads
 * them, so operators set what they already know. One deliberate difference from the spec's
 * defaults: with no endpoint, tracing is off (not "send to localhost:4318").
 */
export type OtlpProtocol = 'http/protobuf' | 'http/json';

export const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;
export type SamplerName = (typeof SAMPLERS)[number];

export interface TracingConfig {
  /** The OTLP/HTTP traces URL (…/v1/traces); undefined: tracing off. */
  endpoint: string | undefined;
  protocol: OtlpProtocol;
  sampler: SamplerName;
  /** OTEL_TRACES_SAMPLER_ARG, for the ratio samplers. */
  ratio: number;
  serviceName: string;
  resourceAttributes: Record<string, string>;
  /** The batch span processor: bounded queue, dropped (and counted) when full. */
  batch: { maxQueueSize: number; maxExportBatchSize: number; scheduledDelayMs: number; exportTimeoutMs: number };
  /** One export request, retries included. */
  exportRequestTimeoutMs: number;
}

type Env = Readonly<Record<string, string | undefined>>;
type Invalid = (message: string) => never;

function raw(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === '' ? undefined : value;
}

/** The signal-specific variable wins over the generic one, as the OTLP exporter spec says. */
function either(env: Env, specific: string, generic: string): { name: string; value: string } | undefined {
  for (const name of [specific, generic]) {
    const value = raw(env, name);
    if (value !== undefined) return { name, value };
  }
  return undefined;
}

function milliseconds(env: Env, names: string[], fallback: number, invalid: Invalid): number {
  for (const name of names) {
    const value = raw(env, name);
    if (value === undefined) continue;
    if (!/^\d+$/.test(value) || Number(value) < 1) invalid(`${name}=${JSON.stringify(value)} is invalid: expected a positive integer (milliseconds)`);
    return Number(value);
  }
  return fallback;
}

function count(env: Env, name: string, fallback: number, invalid: Invalid): number {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 1_000_000) invalid(`${name}=${JSON.stringify(value)} is invalid: expected an integer from 1 to 1000000`);
  return Number(value);
}

function tracesUrl(env: Env, invalid: Invalid): string | undefined {
  const found = either(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT');
  if (!found) return undefined;
  let url: URL;
  try {
    url = new URL(found.value);
  } catch {
    // Never echo the value: an endpoint URL can carry credentials.
    return invalid(`${found.name} is invalid: not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') invalid(`${found.name} is invalid: expected an http or https URL`);
  // The generic variable names the collector; the signal path is appended. The specific one is used as is.
  return found.name === 'OTEL_EXPORTER_OTLP_ENDPOINT' ? `${found.value.replace(/\/+$/, '')}/v1/traces` : found.value;
}

export function loadTracingConfig(env: Env, invalid: Invalid): TracingConfig {
  const disabled = raw(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true';
  const exporter = raw(env, 'OTEL_TRACES_EXPORTER') ?? 'otlp';
  if (exporter !== 'otlp' && exporter !== 'none') invalid(`OTEL_TRACES_EXPORTER=${JSON.stringify(exporter)} is invalid: expected otlp or none`);
  const protocol = either(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL') ?? { name: 'OTEL_EXPORTER_OTLP_PROTOCOL', value: 'http/protobuf' };
  if (protocol.value !== 'http/protobuf' && protocol.value !== 'http/json') {
    invalid(`${protocol.name}=${JSON.stringify(protocol.value)} is invalid: expected http/protobuf or http/json (gRPC is not built in; collectors take OTLP/HTTP on port 4318)`);
  }
  const sampler = raw(env, 'OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on';
  if (!(SAMPLERS as readonly string[]).includes(sampler)) invalid(`OTEL_TRACES_SAMPLER=${JSON.stringify(sampler)} is invalid: expected one of ${SAMPLERS.join(', ')}`);
  const ratioText = raw(env, 'OTEL_TRACES_SAMPLER_ARG');
  const ratio = ratioText === undefined ? 1 : Number(ratioText);
  if (!(ratio >= 0 && ratio <= 1)) invalid(`OTEL_TRACES_SAMPLER_ARG=${JSON.stringify(ratioText)} is invalid: expected a ratio from 0 to 1`);
  const resourceAttributes = parseKeyPairsIntoRecord(raw(env, 'OTEL_RESOURCE_ATTRIBUTES'));
  const maxQueueSize = count(env, 'OTEL_BSP_MAX_QUEUE_SIZE', 2048, invalid);
  return {
    endpoint: disabled || exporter === 'none' ? undefined : tracesUrl(env, invalid),
    protocol: protocol.value,
    sampler: sampler as SamplerName,
    ratio,
    serviceName: raw(env, 'OTEL_SERVICE_NAME') ?? resourceAttributes['service.name'] ?? 'users-service',
    resourceAttributes,
    batch: {
      maxQueueSize,
      maxExportBatchSize: Math.min(maxQueueSize, count(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 512, invalid)),
      scheduledDelayMs: milliseconds(env, ['OTEL_BSP_SCHEDULE_DELAY'], 5000, invalid),
      exportTimeoutMs: milliseconds(env, ['OTEL_BSP_EXPORT_TIMEOUT'], 30_000, invalid),
    },
    exportRequestTimeoutMs: milliseconds(env, ['OTEL_EXPORTER_OTLP_TRACES_TIMEOUT', 'OTEL_EXPORTER_OTLP_TIMEOUT'], 10_000, invalid),
  };
}
