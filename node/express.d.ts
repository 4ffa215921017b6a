import type { IncomingMessage, ServerResponse } from 'node:http'
import type { EngineOptions, IdempotencyStats, Store } from './index'

export interface ExpressIdempotencyOptions<Req extends IncomingMessage = IncomingMessage> extends EngineOptions {
  /** The store; default a new MemoryStore. */
  store?: Store
  /** The namespace a request's key lives in (B5): a tenant or user id. */
  scope?: (req: Req) => string
}

export interface IdempotencyMiddleware {
  (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void
  /** The engine's counters. */
  stats (): IdempotencyStats
}

/** Express (or connect) middleware: `app.use(idempotency({ store }))`. */
export declare function idempotency<Req extends IncomingMessage = IncomingMessage> (
  options?: ExpressIdempotencyOptions<Req>
): IdempotencyMiddleware

export default idempotency
