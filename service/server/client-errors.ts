import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { Problem, problems, sendProblem } from '../middleware/problem.js';
import { SECURITY_HEADERS } from '../middleware/security.js';
import type { ConnectionState } from './connections.js';

/** Node's own error responses carry the headers every Koa response gets. */
const RAW_SECURITY_HEADERS = SECURITY_HEADERS.map(([name, value]) => `${name}: ${value}`);

/** Which HTTP status a request that never became a request (parser error, timeout) gets. */
function clientErrorStatus(code: string | undefined): number {
  if (code === 'HPE_HEADER_OVERFLOW') return 431;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return 400;
}

/** The problem+json response, head and body, as raw HTTP/1.1 bytes. */
function rawProblemResponse(status: number): string {
  const title = STATUS_CODES[status] ?? 'Bad Request';
  const response = { status, type: '', body: undefined as unknown, path: '' };
  // A 400 says what was wrong in `errors`, as every other 400 of the API does.
  const errors = [{ field: '(request)', message: 'is not a valid HTTP/1.1 request' }];
  sendProblem(response, status === 400 ? new Problem(400, 'http-400', title, `${title}.`, { errors }) : problems.generic(status, title));
  const body = JSON.stringify(response.body);
  const head = [
    `HTTP/1.1 ${status} ${title}`,
    `Content-Type: ${response.type}`,
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...RAW_SECURITY_HEADERS,
  ];
  return `${head.join('\r\n')}\r\n\r\n${body}`;
}

const answered = new WeakSet<Socket>();

/** How long a connection answered with a client error may keep sending before it is destroyed. */
const CLIENT_ERROR_LINGER_MS = 1000;

/**
 * Malformed requests, headers over Node's 16 KiB and timeouts are answered by Node itself, before
 * Koa sees anything, with a bare status line. Answer them as the API answers every other error:
 * problem+json with the security headers, then close the connection.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Socket, state: ConnectionState | undefined): void {
  // Already answered: the parser reports each further chunk again; the linger timer ends it.
  if (answered.has(socket)) return;
  // Nothing to answer on a dead socket, or while a response to an earlier request on this
  // connection is under way (a keep-alive connection that finished its responses is fine).
  if (err.code === 'ECONNRESET' || !socket.writable || (state?.active ?? 0) > 0) {
    socket.destroy();
    return;
  }
  answered.add(socket);
  // Lingering close: send the answer and a FIN, but keep reading what the client is still sending
  // (a body, the rest of its headers). Destroying at once would leave unread bytes, and the kernel
  // answers those with a reset that discards our response before the client reads it.
  socket.end(rawProblemResponse(clientErrorStatus(err.code)));
  setTimeout(() => socket.destroy(), CLIENT_ERROR_LINGER_MS).unref();
}
