import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { expect } from 'chai';
import type { TestDatabase } from '../support/database.js';
import { startServiceOnFreshDatabase, startServiceProcess, type ServiceProcess } from '../support/service-process.js';
import { errorCode, postUser, problemErrors, send, sleep, type Reply } from './support.js';

const HEADERS_TIMEOUT_MS = 2000;
const REQUEST_TIMEOUT_MS = 3000;

interface Trickle {
  socket: Socket;
  opened: number;
  closedAt?: number;
  received: string;
}

/** Opens a socket, sends `head`, then one more `drip` every `everyMs` until the server hangs up. */
async function trickle(port: number, head: string, drip: string, everyMs: number): Promise<Trickle> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const t: Trickle = { socket, opened: performance.now(), received: '' };
  socket.on('data', (chunk: Buffer) => (t.received += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  const timer = setInterval(() => { if (!socket.destroyed) socket.write(drip); }, everyMs);
  socket.once('close', () => {
    clearInterval(timer);
    t.closedAt = performance.now();
  });
  socket.write(head);
  return t;
}

/** A well-behaved client asking every 200 ms while `busy` runs; returns every reply it got. */
async function whileBusy(port: number, busy: Promise<unknown>): Promise<(Reply | string)[]> {
  const state = { done: false };
  void busy.finally(() => (state.done = true));
  const replies: (Reply | string)[] = [];
  while (!state.done) {
    replies.push(await send(port, { path: '/api/users?limit=1', timeoutMs: 5000 }).catch(errorCode));
    await sleep(200);
  }
  return replies;
}

/** Raw HTTP response parts (status line, headers, body) from what a socket received. */
function parseRaw(raw: string): Reply {
  const [head = '', body = ''] = raw.split('\r\n\r\n', 2);
  const [statusLine = '', ...headerLines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1]), headers, text: body, ms: 0 };
}

describe('slow and hostile clients', function () {
  let db: TestDatabase;
  let service: ServiceProcess;
  before(async () => {
    ({ db, service } = await startServiceOnFreshDatabase({
      HTTP_HEADERS_TIMEOUT: `${HEADERS_TIMEOUT_MS}ms`,
      HTTP_REQUEST_TIMEOUT: `${REQUEST_TIMEOUT_MS}ms`,
    }));
    expect((await postUser(service.port, { name: 'Ada', email: 'ada@example.com' })).status).to.equal(201);
  });
  after(async () => {
    await service.stop('SIGKILL');
    await db.drop();
  });

  /** Waits for every client to be hung up on, for at most twice `limitMs` and 5 s more. */
  const cutOff = async (clients: Trickle[], limitMs: number) => {
    const deadline = performance.now() + 2 * limitMs + 5000;
    while (clients.some((c) => c.closedAt === undefined) && performance.now() < deadline) await sleep(50);
    return clients.map((c) => (c.closedAt === undefined ? Infinity : c.closedAt - c.opened));
  };

  it('cuts off slowloris clients at HTTP_HEADERS_TIMEOUT, with a 408 problem, while others are served', async () => {
    const clients = await Promise.all(
      Array.from({ length: 50 }, (_, i) => trickle(service.port, `GET /api/users HTTP/1.1\r\nHost: x\r\nX-Slow-${i}: 1\r\n`, 'X-More: 1\r\n', 250)),
    );
    const lifetimes = cutOff(clients, HEADERS_TIMEOUT_MS);
    const replies = await whileBusy(service.port, lifetimes);
    const times = await lifetimes;
    console.log(`      slowloris: 50 clients cut after ${Math.round(Math.min(...times))}-${Math.round(Math.max(...times))} ms; ${replies.length} normal requests meanwhile, slowest ${Math.round(Math.max(...replies.map((r) => (typeof r === 'string' ? Infinity : r.ms))))} ms`);
    // Cut off by the timeout: not before it, and before twice it (a server ignoring it keeps them for the whole wait).
    expect(Math.max(...times), 'cut off by the headers timeout').to.be.below(2 * HEADERS_TIMEOUT_MS);
    expect(Math.min(...times), 'not before it').to.be.at.least(HEADERS_TIMEOUT_MS - 100);
    expect(replies.filter((r) => typeof r === 'string' || r.status !== 200 || r.ms >= HEADERS_TIMEOUT_MS / 2), 'served without waiting for the slow clients').to.deep.equal([]);
    expect(replies.length).to.be.at.least(5);
    // Every client, not only those that got something: a server hanging up without a word fails here.
    const answers = clients.map((c) => parseRaw(c.received));
    expect(answers.map((r) => r.status), 'each slowloris client is told 408 before the hang-up').to.deep.equal(clients.map(() => 408));
    expect(answers.flatMap(problemErrors)).to.deep.equal([]);
  });

  it('cuts off slow bodies at HTTP_REQUEST_TIMEOUT while others are served', async () => {
    const head = 'POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{"name":"';
    const clients = await Promise.all(Array.from({ length: 30 }, () => trickle(service.port, head, 'a', 250)));
    const lifetimes = cutOff(clients, REQUEST_TIMEOUT_MS);
    const replies = await whileBusy(service.port, lifetimes);
    const times = await lifetimes;
    console.log(`      slow bodies: 30 clients cut after ${Math.round(Math.min(...times))}-${Math.round(Math.max(...times))} ms; ${replies.length} normal requests meanwhile`);
    expect(Math.max(...times), 'cut off by the request timeout').to.be.below(2 * REQUEST_TIMEOUT_MS);
    expect(Math.min(...times), 'not before it').to.be.at.least(REQUEST_TIMEOUT_MS - 100);
    expect(replies.filter((r) => typeof r === 'string' || r.status !== 200 || r.ms >= REQUEST_TIMEOUT_MS / 2), 'served without waiting for the slow clients').to.deep.equal([]);
    expect(await db.knex('users').count({ n: '*' }).first()).to.deep.equal({ n: '1' });
  });

  it('refuses a 100 MB body by its Content-Length at once, without reading it', async () => {
    const socket = connect(service.port, '127.0.0.1');
    await once(socket, 'connect');
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    const start = performance.now();
    socket.write(`POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n{"name":"${'a'.repeat(1000)}`);
    while (!received.includes('\r\n\r\n') && performance.now() - start < 3000) await sleep(10);
    const ms = performance.now() - start;
    socket.destroy();
    const reply = parseRaw(received);
    console.log(`      Content-Length 100 MB: ${reply.status} after ${Math.round(ms)} ms, 1 KB sent`);
    expect(reply.status).to.equal(413);
    // Generous for a loaded machine, and still well short of the 3 s HTTP_REQUEST_TIMEOUT a server reading the body would wait for.
    expect(ms).to.be.below(2500);
  });

  it('stops reading a chunked body at the limit with 413', async () => {
    const socket = connect(service.port, '127.0.0.1');
    await once(socket, 'connect');
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.write('POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
    const chunk = `{"name":"${'a'.repeat(8183)}`;
    let sent = 0;
    const start = performance.now();
    // Up to 10 MB in 8 KB chunks, stopping as soon as the server answers.
    while (!received.includes('\r\n\r\n') && sent < 10 * 1024 * 1024 && !socket.destroyed && performance.now() - start < 5000) {
      socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      sent += chunk.length;
      await sleep(5);
    }
    socket.destroy();
    const reply = parseRaw(received);
    console.log(`      chunked body: ${reply.status} after ${Math.round(sent / 1024)} KB sent`);
    expect(reply.status).to.equal(413);
    expect(sent, 'refused near the 16 KiB limit, not after buffering').to.be.below(256 * 1024);
  });

  it('survives a flood of 3000 idle and half-open connections and keeps serving', async () => {
    const sockets: Socket[] = [];
    /** The sockets that sent a whole request, with the status line each has received so far. */
    const answered = new Map<Socket, () => string>();
    let failedToOpen = 0;
    for (let batch = 0; batch < 30; batch++) {
      await Promise.all(
        Array.from({ length: 100 }, async (_, i) => {
          const socket = connect(service.port, '127.0.0.1');
          socket.on('error', () => undefined);
          try {
            await once(socket, 'connect');
          } catch {
            failedToOpen++;
            return;
          }
          // Read (and drop) whatever arrives: a paused socket would never notice the server closing it.
          socket.resume();
          // A third send nothing, a third half a request line, a third a whole request, then stay.
          if (i % 3 === 1) socket.write('GET /api/us');
          if (i % 3 === 2) {
            let head = '';
            socket.on('data', (chunk: Buffer) => { if (head.length < 12) head += chunk.toString('latin1'); });
            socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
            answered.set(socket, () => head.slice(0, 12));
          }
          sockets.push(socket);
        }),
      );
    }
    // Failures become their error codes, so the report below says what went wrong first.
    const status = (reply: Promise<Reply>) => reply.then((r) => ({ status: r.status, ms: r.ms }), (err: unknown) => ({ status: errorCode(err), ms: NaN }));
    const during = await status(send(service.port, { path: '/api/users?limit=1', timeoutMs: 5000 }));
    const health = await status(send(service.port, { path: '/health', timeoutMs: 5000 }));
    const floodEnd = performance.now();
    const isOpen = (s: Socket) => !s.destroyed && s.readyState === 'open';
    // Silent and stalled connections are closed by the server; answered keep-alive ones stay (HTTP_KEEPALIVE_TIMEOUT).
    const stalled = () => sockets.filter((s) => !answered.has(s) && isOpen(s)).length;
    while (stalled() > 0 && performance.now() - floodEnd < HEADERS_TIMEOUT_MS + 5000) await sleep(100);
    const stalledClosedAfterMs = Math.round(performance.now() - floodEnd);
    const open = sockets.filter(isOpen).length;
    const stalledOpen = stalled();
    for (const socket of sockets) socket.destroy();
    await sleep(200);
    const afterwards = await status(send(service.port, { path: '/api/users?limit=1' }));
    console.log(`      flood: ${sockets.length} sockets opened (${failedToOpen} failed), API ${during.status} in ${Math.round(during.ms)} ms meanwhile; silent and stalled ones all closed ${stalledClosedAfterMs} ms after the flood (${stalledOpen} left), ${open} answered keep-alive ones open`);
    expect(service.child.exitCode).to.equal(null);
    expect(failedToOpen, 'every one of the 3000 connections was accepted').to.equal(0);
    expect(sockets).to.have.length(3000);
    expect([...answered.values()].map((status) => status()), 'each whole request in the flood answered').to.deep.equal([...answered.values()].map(() => 'HTTP/1.1 200'));
    // All closed within the wait above (the headers timeout and 5 s more): far sooner than the 65 s keep-alive
    // timeout that would hold them if the headers timeout did not apply.
    expect(stalledOpen, 'silent and stalled connections closed after the headers timeout').to.equal(0);
    expect(during.status).to.equal(200);
    expect(health.status).to.equal(200);
    expect(afterwards.status).to.equal(200);
  });

  it('survives running out of file descriptors (ulimit -n 200, 400 connections) and recovers', async () => {
    const small = await startServiceProcess({ DATABASE_URL: db.url }, { maxOpenFiles: 200 });
    try {
      const sockets = Array.from({ length: 400 }, () => {
        const socket = connect(small.port, '127.0.0.1');
        socket.on('error', () => undefined);
        socket.resume();
        return socket;
      });
      await sleep(1500);
      const during = await send(small.port, { path: '/health', timeoutMs: 3000 }).then((r) => String(r.status), errorCode);
      expect(small.child.exitCode, 'no crash on EMFILE').to.equal(null);
      for (const socket of sockets) socket.destroy();
      await sleep(500);
      const after = await send(small.port, { path: '/api/users?limit=1' });
      console.log(`      descriptors exhausted: a request meanwhile got ${during}; afterwards ${after.status}`);
      expect(after.status).to.equal(200);
      expect(small.child.exitCode).to.equal(null);
    } finally {
      await small.stop('SIGKILL');
    }
  });
});
