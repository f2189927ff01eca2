import { createRequire } from 'node:module';

/**
 * autocannon, typed for the part of its API the bench scripts use. The package ships no types and
 * @types/autocannon trails its releases, so the shape is stated here, once.
 */
export interface AutocannonRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  setupRequest?: (request: AutocannonRequest) => AutocannonRequest & { body?: string };
}

export interface AutocannonOptions {
  url: string;
  connections: number;
  /** Seconds. */
  duration: number;
  /** Requests per second over all connections; unset: as fast as the connections go. */
  overallRate?: number;
  requests?: AutocannonRequest[];
}

export interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}

export const autocannon = createRequire(import.meta.url)('autocannon') as (options: AutocannonOptions) => Promise<AutocannonResult>;
