import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type Koa from 'koa';
import type { Config } from '../config.js';
import { answerClientError } from './client-errors.js';
import { trackConnections } from './connections.js';

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
