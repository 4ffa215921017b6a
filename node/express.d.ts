import type { IncomingMessage, ServerResponse } from 'node:http'
import type { EffectiveOptions, EngineOptions, GLOBAL_SCOPE, IdempotencyStats, Store } from './index'

export interface ExpressIdempotencyOptions<Req extends IncomingMessage = IncomingMessage> extends EngineOptions {
  /** The store; default a new MemoryStore. */
  store?: Store
  /**
   * The namespace a request's key lives in (B5): the authenticated caller. Default: the
   * request's `Authorization` value; `GLOBAL_SCOPE` for one namespace for all.
   */
  scope?: ((req: Req) => string) | typeof GLOBAL_SCOPE
}

export interface IdempotencyMiddleware {
  (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void
  /** The engine's counters. */
  stats (): IdempotencyStats
  /** The effective value of every option, the core's defaults included. */
  options (): EffectiveOptions
}

/**
 * The `verify` hook for Express's body parsers, for a middleware mounted after them:
 * `app.use(express.json({ verify }))` keeps the raw bytes it fingerprints.
 */
export declare function verify (req: IncomingMessage, res: ServerResponse, buf: Buffer, encoding?: string): void

/** Express (or connect) middleware: `app.use(idempotency({ store }))`. */
export declare function idempotency<Req extends IncomingMessage = IncomingMessage> (
  options?: ExpressIdempotencyOptions<Req>
): IdempotencyMiddleware

export default idempotency
