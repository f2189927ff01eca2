import type { Redis } from 'ioredis';
import { decide, gcraParams, type GcraParams } from './gcra.js';
import type { RateLimitDecision, RateLimitPolicy } from './limiter.js';

/**
 * The GCRA step of gcra.ts `decide`, run atomically inside Redis for every key of a batch, in
 * order (a key that appears twice is decided twice, the second time against the first's result):
 * one EVALSHA per batch, no read-modify-write race between replicas.
 *
 * - Time comes from Redis' TIME, read once per batch, so replicas whose clocks disagree still share
 *   one timeline. (Redis ≥ 5 replicates scripts by effects, so a non-deterministic TIME before a
 *   write is allowed without redis.replicate_commands().)
 * - A key expires when its bucket would be full again: an absent key *is* a full bucket, so idle
 *   clients cost no memory.
 * - Numbers cross the boundary as strings (%.17g round-trips a double exactly); a Lua number in a
 *   reply would be truncated to an integer.
 * - It returns `now`, then per key the verdict and the effective TAT, so that the remaining/reset/
 *   retry figures are computed by the same TypeScript as the in-process limiter.
 */
export const GCRA_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local reply = {string.format('%.17g', now)}
for i, key in ipairs(KEYS) do
  local stored = redis.call('GET', key)
  local tat = stored and tonumber(stored) or now
  if tat < now then tat = now end
  local newTat = tat + interval
  local verdict = 0
  if now >= newTat - window then
    verdict = 1
    redis.call('SET', key, string.format('%.17g', newTat), 'PX', math.max(1, math.ceil(newTat - now)))
  end
  reply[2 * i] = verdict
  reply[2 * i + 1] = string.format('%.17g', tat)
end
return reply
`;

const COMMAND = 'usersServiceRateLimitGcraBatch';

/** `now`, then a verdict (1 admitted, 0 refused) and the effective TAT per key. */
type GcraReply = (string | number)[];

interface WithGcraCommand {
  [COMMAND](numberOfKeys: number, ...keysThenArgs: string[]): Promise<GcraReply>;
}

export const DEFAULT_KEY_PREFIX = 'ratelimit:users-service:';

/**
 * Most keys one EVALSHA carries: Redis runs a script alone, so a batch must stay short (about a
 * microsecond per key); past it a batch is sent at once and the next one starts.
 */
const DEFAULT_MAX_BATCH = 128;

export interface RedisLimiterOptions {
  redis: Redis;
  policy: RateLimitPolicy;
  /**
   * The longest a decision waits for Redis (RATE_LIMIT_REDIS_TIMEOUT), counted from the call: a
   * batch still collecting, queued behind a slow socket, or sent and unanswered, fails at its
   * deadline all the same.
   */
  timeoutMs: number;
  /** Namespace of the bucket keys; tests use a unique one per run. */
  keyPrefix?: string;
  maxBatch?: number;
}

/** The decisions asked for during one turn of the event loop, sent to Redis together. */
class Batch {
  readonly keys: string[] = [];
  readonly reply: Promise<GcraReply>;
  private settle!: (reply: GcraReply) => void;
  private fail!: (err: Error) => void;
  private readonly timer: NodeJS.Timeout;

  constructor(timeoutMs: number) {
    this.reply = new Promise<GcraReply>((resolve, reject) => {
      this.settle = resolve;
      this.fail = reject;
    });
    // Whoever comes first wins; a late reply (or ioredis' own commandTimeout) then changes nothing.
    this.timer = setTimeout(() => { this.fail(new Error(`no answer from Redis within ${timeoutMs} ms`)); }, timeoutMs);
    // Every member has a handler of its own; this one keeps a batch that failed before anyone
    // awaited it from being reported as unhandled.
    this.reply.catch(() => undefined);
  }

  answer(reply: GcraReply): void {
    clearTimeout(this.timer);
    this.settle(reply);
  }

  reject(err: Error): void {
    clearTimeout(this.timer);
    this.fail(err);
  }
}

/**
 * Decides against the shared buckets in Redis. Unlike the RateLimiter contract, `tryConsume`
 * rejects when Redis fails or misses the deadline: the resilient limiter decides what a failure
 * means.
 *
 * Decisions asked for in the same turn of the event loop (the requests one poll of the sockets
 * delivered) go to Redis as one script call: the client's per-command work (command object,
 * promise, timeout timer, RESP encoding, one socket write) and Redis' per-call work are paid once
 * per batch, not once per request. A batch is sent from setImmediate, i.e. after the current poll
 * phase, which is where ioredis' auto-pipelining sends its pipelines too; unlike that pipeline, a
 * batch never waits for the previous one to be answered.
 */
export class RedisLimiter {
  readonly policy: RateLimitPolicy;
  private readonly params: GcraParams;
  private readonly args: [string, string];
  private readonly redis: Redis & WithGcraCommand;
  private readonly keyPrefix: string;
  private readonly timeoutMs: number;
  private readonly maxBatch: number;
  private open: Batch | undefined;

  constructor(options: RedisLimiterOptions) {
    this.policy = { ...options.policy };
    this.params = gcraParams(options.policy);
    // String(double) is the shortest exact representation: Lua sees the very same numbers.
    this.args = [String(this.params.intervalMs), String(this.params.burstWindowMs)];
    this.keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    this.timeoutMs = options.timeoutMs;
    this.maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
    const redis = options.redis as Redis & Partial<WithGcraCommand>;
    // Registered once per client; ioredis sends EVALSHA and falls back to EVAL after a NOSCRIPT.
    // The key count varies per batch, so it is the command's first argument.
    if (typeof redis[COMMAND] !== 'function') redis.defineCommand(COMMAND, { lua: GCRA_LUA });
    this.redis = redis as Redis & WithGcraCommand;
  }

  tryConsume(key: string): Promise<RateLimitDecision> {
    let batch = this.open;
    if (batch === undefined) {
      batch = new Batch(this.timeoutMs);
      this.open = batch;
      setImmediate(() => { this.send(batch as Batch); });
    }
    const index = batch.keys.push(this.keyPrefix + key) - 1;
    if (batch.keys.length >= this.maxBatch) this.send(batch);
    return batch.reply.then((reply) => this.decision(reply, index));
  }

  private send(batch: Batch): void {
    // A full batch was already sent; its setImmediate finds nothing left to do.
    if (this.open !== batch) return;
    this.open = undefined;
    this.redis[COMMAND](batch.keys.length, ...batch.keys, ...this.args).then(
      (reply) => { batch.answer(reply); },
      (err: unknown) => { batch.reject(err instanceof Error ? err : new Error(String(err))); },
    );
  }

  private decision(reply: GcraReply, index: number): RateLimitDecision {
    const result = decide(Number(reply[2 * index + 2]), Number(reply[0]), this.params);
    // Same IEEE operations on the same inputs, so the two agree; should they ever not, Redis'
    // verdict is the one that was applied to the bucket.
    const allowed = reply[2 * index + 1] === 1;
    return {
      allowed,
      remaining: allowed ? result.remaining : 0,
      resetMs: result.resetMs,
      retryAfterMs: allowed ? 0 : result.retryAfterMs,
    };
  }
}
