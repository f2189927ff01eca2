/**
 * Raised by the data layer when PostgreSQL cannot be reached in time (pool acquire timeout,
 * connection refused, server shutting down). The HTTP layer answers 503, never 500.
 */
export class DependencyUnavailableError extends Error {
  constructor(
    readonly dependency: string,
    options?: { cause?: unknown },
  ) {
    super(`${dependency} unavailable`, options);
    this.name = 'DependencyUnavailableError';
  }
}
