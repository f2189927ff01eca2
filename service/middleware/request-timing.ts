import type { Context } from 'koa';
import { routeTemplate } from './route-template.js';

/** A request's duration and route label, taken once when its response is decided. */
export interface SettledRequest {
  route: string;
  ms: number;
}

interface TimingState {
  timing?: { start: number; settled?: SettledRequest };
}

/** Marks the request's arrival; the first of the observing middleware to see it sets the clock. */
export function startTiming(ctx: Context): void {
  (ctx.state as TimingState).timing ??= { start: performance.now() };
}

/**
 * The duration and route label of a request whose response is decided. The access log and the
 * metrics both report them: the first to ask measures, the other reads the same numbers, so the
 * two agree and the clock and route template are read once per request.
 */
export function settleTiming(ctx: Context): SettledRequest {
  const state = ctx.state as TimingState;
  const timing = (state.timing ??= { start: performance.now() });
  return (timing.settled ??= { route: routeTemplate(ctx), ms: performance.now() - timing.start });
}
