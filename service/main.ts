/**
 * Process entry: configuration → dependencies → HTTP server → signals.
 * Everything is built here and passed down; nothing below reads the environment.
 */
import { createApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { openDependencies } from './dependencies.js';
import { createLogger } from './observability/logger.js';
import { closeMetrics, listenMetrics } from './observability/metrics-server.js';
import { boundPort, listen } from './server/listen.js';
import { shutdown } from './server/shutdown.js';

function readConfig(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // One line, no stack: the operator needs the variable and the fix, nothing else.
    process.stderr.write(`users-service: configuration error: ${err.message}\n`);
    process.exit(1);
  }
}

async function main(): Promise<void> {
  const config = readConfig();
  const log = createLogger(config.logLevel);
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    log.fatal({ err }, 'unhandled rejection');
    process.exit(1);
  });

  const dependencies = await openDependencies(config, log);
  let draining = false;
  const app = createApp({ config, log, ...dependencies, isDraining: () => draining });
  const server = await listen(app, config);
  const metricsServer = await listenMetrics(dependencies.metrics.registry, config.metricsPort);
  log.info(
    { port: boundPort(server), metricsPort: boundPort(metricsServer), database: dependencies.database.mode, rateLimiter: dependencies.rateLimiter.health() },
    'listening',
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'signal received');
    void shutdown({
      server,
      log,
      drainDelayMs: config.shutdown.drainDelayMs,
      timeoutMs: config.shutdown.timeoutMs,
      startDraining: () => { draining = true; },
      closeResources: async () => { await Promise.all([dependencies.close(), closeMetrics(metricsServer)]); },
      exit: (code) => { log.flush(); process.exit(code); },
    });
  };
  process.on('SIGTERM', () => { stop('SIGTERM'); });
  process.on('SIGINT', () => { stop('SIGINT'); });
}

await main();
