import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Koa from 'koa';
import type { Logger } from 'pino';
import type { Config } from './config.js';

/** Starts listening; resolves with the server once the port is bound. */
export async function listen(app: Koa, config: Pick<Config, 'port' | 'http'>): Promise<Server> {
  const handle = app.callback();
  // Koa's handler settles its own promise (errors become responses), so nothing is left to await here.
  const server = createServer((req, res) => { void handle(req, res); });
  server.keepAliveTimeout = config.http.keepAliveTimeoutMs;
  server.headersTimeout = config.http.headersTimeoutMs;
  server.requestTimeout = config.http.requestTimeoutMs;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

export function boundPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}

export interface ShutdownPlan {
  server: Server;
  log: Logger;
  drainDelayMs: number;
  timeoutMs: number;
  /** Marks the process as draining: /ready answers 503 from this moment. */
  startDraining(): void;
  /** Closes the pool, Redis and anything else that holds the event loop open. */
  closeResources(): Promise<void>;
  exit(code: number): void;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Graceful shutdown, in the order Kubernetes needs: fail readiness at once, keep serving for the
 * drain delay while endpoints are removed from load balancers, stop accepting, let in-flight
 * requests finish, close idle keep-alive sockets and dependencies, exit 0. Past the timeout, exit 1.
 */
export function shutdown(plan: ShutdownPlan): Promise<void> {
  const { server, log, drainDelayMs, timeoutMs } = plan;
  plan.startDraining();
  log.info({ drainDelayMs, timeoutMs }, 'shutdown: draining, readiness now fails');
  const deadline = setTimeout(() => {
    log.error({ timeoutMs }, 'shutdown: timed out with requests still in flight; exiting 1');
    plan.exit(1);
  }, timeoutMs);
  deadline.unref();

  return (async () => {
    await sleep(drainDelayMs);
    log.info('shutdown: listener closed, waiting for in-flight requests');
    const closed = new Promise<void>((resolve) => server.close(() => { resolve(); }));
    server.closeIdleConnections();
    await closed;
    await plan.closeResources();
    clearTimeout(deadline);
    log.info('shutdown: complete');
    plan.exit(0);
  })().catch((err: unknown) => {
    log.error({ err }, 'shutdown: failed');
    plan.exit(1);
  });
}
