import { createServer, STATUS_CODES, type Server } from 'node:http';
import { Server as NetServer, type AddressInfo, type Socket } from 'node:net';
import type Koa from 'koa';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { Problem, problems, sendProblem } from './middleware/problem.js';
import { SECURITY_HEADERS } from './middleware/security.js';

/** Per connection: requests it has carried, and whether one is being served right now. */
interface ConnectionState {
  served: number;
  active: number;
}

const connections = new WeakMap<Server, Map<Socket, ConnectionState>>();

/**
 * Follows every connection, so shutdown can tell an idle keep-alive socket (safe to close) from
 * one that was accepted a moment ago and whose first request is still on the wire (closing it
 * would reset a request the client already sent).
 */
function trackConnections(server: Server): Map<Socket, ConnectionState> {
  const states = new Map<Socket, ConnectionState>();
  connections.set(server, states);
  server.on('connection', (socket: Socket) => {
    states.set(socket, { served: 0, active: 0 });
    socket.once('close', () => states.delete(socket));
  });
  server.on('request', (req, res) => {
    const state = states.get(req.socket);
    if (!state) return;
    state.served += 1;
    state.active += 1;
    res.once('close', () => { state.active -= 1; });
  });
  return states;
}

/** Node's own error responses carry the headers every Koa response gets. */
const RAW_SECURITY_HEADERS = SECURITY_HEADERS.set.map(([name, value]) => `${name}: ${Array.isArray(value) ? value.join(', ') : String(value)}`);

/** Which HTTP status a request that never became a request (parser error, timeout) gets. */
function clientErrorStatus(code: string | undefined): number {
  if (code === 'HPE_HEADER_OVERFLOW') return 431;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return 400;
}

const answeredClientErrors = new WeakSet<Socket>();

/** How long a connection answered with a client error may keep sending before it is destroyed. */
const CLIENT_ERROR_LINGER_MS = 1000;

/**
 * Malformed requests, headers over Node's 16 KiB and timeouts are answered by Node itself, before
 * Koa sees anything, with a bare status line. Answer them as the API answers every other error:
 * problem+json with the security headers, then close the connection.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket, state: ConnectionState | undefined): void {
  // Already answered: the parser reports each further chunk again; the linger timer ends it.
  if (answeredClientErrors.has(socket)) return;
  // Nothing to answer on a dead socket, or while a response to an earlier request on this
  // connection is under way (a keep-alive connection that finished its responses is fine).
  if (err.code === 'ECONNRESET' || !socket.writable || (state?.active ?? 0) > 0) {
    socket.destroy();
    return;
  }
  answeredClientErrors.add(socket);
  const status = clientErrorStatus(err.code);
  const title = STATUS_CODES[status] ?? 'Bad Request';
  const problem = { status, type: '', body: undefined as unknown, path: '' };
  // A 400 says what was wrong in `errors`, as every other 400 of the API does.
  const errors = [{ field: '(request)', message: 'is not a valid HTTP/1.1 request' }];
  sendProblem(problem, status === 400 ? new Problem(400, 'http-400', title, `${title}.`, { errors }) : problems.generic(status, title));
  const body = JSON.stringify(problem.body);
  const head = [
    `HTTP/1.1 ${status} ${title}`,
    `Content-Type: ${problem.type}`,
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...RAW_SECURITY_HEADERS,
  ];
  // Lingering close: send the answer and a FIN, but keep reading what the client is still sending
  // (a body, the rest of its headers). Destroying at once would leave unread bytes, and the kernel
  // answers those with a reset that discards our response before the client reads it.
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
  setTimeout(() => socket.destroy(), CLIENT_ERROR_LINGER_MS).unref();
}

/** Starts listening; resolves with the server once the port is bound. */
export async function listen(app: Koa, config: Pick<Config, 'port' | 'http'>): Promise<Server> {
  const handle = app.callback();
  const { headersTimeoutMs, requestTimeoutMs } = config.http;
  // Node checks headersTimeout/requestTimeout only every connectionsCheckingInterval (30 s by
  // default), so a slowloris client would keep its socket up to 30 s past HTTP_HEADERS_TIMEOUT.
  // Check often enough that the configured timeouts are what clients actually get.
  const connectionsCheckingInterval = Math.max(100, Math.min(1000, Math.floor(Math.min(headersTimeoutMs, requestTimeoutMs) / 4)));
  // Koa's handler settles its own promise (errors become responses), so nothing is left to await here.
  const server = createServer({ connectionsCheckingInterval }, (req, res) => { void handle(req, res); });
  server.keepAliveTimeout = config.http.keepAliveTimeoutMs;
  server.headersTimeout = headersTimeoutMs;
  server.requestTimeout = requestTimeoutMs;
  const states = trackConnections(server);
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => { answerClientError(err, socket, states.get(socket)); });
  // Node answers an Expect other than 100-continue with a bare 417 of its own; RFC 9110 lets a
  // server ignore it instead, so the request takes the normal path (problem+json, headers, metrics).
  server.on('checkExpectation', (req, res) => { void handle(req, res); });
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
 * How long a connection accepted just before the listener closed may take to deliver its first
 * request. Node's closeIdleConnections() counts such a connection as idle and destroys it, which
 * resets a request the client has already sent (measured: a handful per shutdown at 400 r/s).
 */
const FIRST_REQUEST_GRACE_MS = 1000;

/**
 * Closes what the drain leaves behind once the listener is closed: keep-alive sockets idle since
 * before the drain began (every response during the drain said `Connection: close`, so busier ones
 * are closed by their last response) at once, and connections that never sent a request after a
 * grace period. A connection serving a request is never touched: its response closes it.
 */
function closeIdleConnections(server: Server, graceMs: number): { open: number; closedIdle: number } {
  const states = connections.get(server);
  if (!states) {
    // A server that listen() did not create: Node's own idea of idle is all there is.
    server.closeIdleConnections();
    return { open: 0, closedIdle: 0 };
  }
  const closeIdle = (includeNew: boolean) => {
    let closed = 0;
    for (const [socket, state] of states) {
      if (state.active === 0 && (state.served > 0 || includeNew)) {
        socket.destroy();
        closed += 1;
      }
    }
    return closed;
  };
  const open = states.size;
  const closedIdle = closeIdle(false);
  setTimeout(() => { closeIdle(true); }, graceMs).unref();
  return { open, closedIdle };
}

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
