import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { EffectiveOptions, EngineOptions, GLOBAL_SCOPE, IdempotencyStats, Store } from './index'

export interface FastifyIdempotencyOptions extends EngineOptions {
  /** The store; default a new MemoryStore. */
  store?: Store
  /**
   * The namespace a request's key lives in (B5): the authenticated caller. Default: the
   * request's `Authorization` value; `GLOBAL_SCOPE` for one namespace for all.
   */
  scope?: ((request: FastifyRequest) => string) | typeof GLOBAL_SCOPE
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Added by the idempo plugin. */
    idempotency: { stats (): IdempotencyStats, options (): EffectiveOptions }
  }
}

/** Fastify plugin: `await fastify.register(idempotency, { store })`. */
declare const idempotency: FastifyPluginAsync<FastifyIdempotencyOptions>
export default idempotency
export { idempotency }
