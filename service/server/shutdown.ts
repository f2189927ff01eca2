import type { Server } from 'node:http';
import { Server as NetServer } from 'node:net';
import type { Logger } from 'pino';
import { closeIdleConnections } from './connections.js';

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
 * How long a connection accepted just before the listener closed may take to deliver its first
 * request. Node's closeIdleConnections() counts such a connection as idle and destroys it, which
 * resets a request the client has already sent (measured: a handful per shutdown at 400 r/s).
 */
const FIRST_REQUEST_GRACE_MS = 1000;

/**
 * Graceful shutdown, in the order Kubernetes needs: fail readiness at once, keep serving for the
 * drain delay while endpoints are removed from load balancers, stop accepting, let in-flight
 * requests finish, close idle keep-alive sockets and dependencies, exit 0. Past the timeout, exit 1.
 */
export function shutdown(plan: ShutdownPlan): Promise<void> {
  const { server, log, drainDelayMs, timeoutMs } = plan;
  const firstRequestGraceMs = Math.min(FIRST_REQUEST_GRACE_MS, timeoutMs / 2);
  plan.startDraining();
  log.info({ drainDelayMs, timeoutMs }, 'shutdown: draining, readiness now fails');
  const deadline = setTimeout(() => {
    log.error({ timeoutMs }, 'shutdown: timed out with requests still in flight; exiting 1');
    plan.exit(1);
  }, timeoutMs);
  deadline.unref();

  return (async () => {
    await sleep(drainDelayMs);
    // Close right after an I/O poll phase, which accepted every connection the kernel had queued:
    // the listener's backlog is then as short as it gets, and a queued connection is reset on close.
    await new Promise((resolve) => setImmediate(resolve));
    // net.Server's close, not http.Server's: since Node 19 the latter also runs Node's own
    // closeIdleConnections(), which destroys connections accepted a moment ago whose request has
    // not been parsed yet, resetting requests the clients have already sent.
    const closed = new Promise<void>((resolve) => NetServer.prototype.close.call(server, () => { resolve(); }));
    const connectionsLeft = closeIdleConnections(server, firstRequestGraceMs);
    log.info(connectionsLeft, 'shutdown: listener closed, waiting for in-flight requests');
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
