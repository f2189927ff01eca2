import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** Per connection: requests it has carried, and how many of them are being served right now. */
export interface ConnectionState {
  served: number;
  active: number;
}

const tracked = new WeakMap<Server, Map<Socket, ConnectionState>>();

/**
 * Follows every connection, so shutdown can tell an idle keep-alive socket (safe to close) from
 * one that was accepted a moment ago and whose first request is still on the wire (closing it
 * would reset a request the client already sent).
 */
export function trackConnections(server: Server): Map<Socket, ConnectionState> {
  const states = new Map<Socket, ConnectionState>();
  tracked.set(server, states);
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

/**
 * Closes what the drain leaves behind once the listener is closed: keep-alive sockets idle since
 * before the drain began (every response during the drain said `Connection: close`, so busier ones
 * are closed by their last response) at once, and connections that never sent a request after a
 * grace period. A connection serving a request is never touched: its response closes it.
 */
export function closeIdleConnections(server: Server, graceMs: number): { open: number; closedIdle: number } {
  const states = tracked.get(server);
  if (!states) {
    // A server that trackConnections() does not follow: Node's own idea of idle is all there is.
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
