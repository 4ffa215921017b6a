/** Counters kept by the engine (DESIGN.md B19). */
export interface IdempotencyStats {
  bypassed: number
  executed: number
  replayed: number
  conflicts: number
  mismatches: number
  invalid: number
  tooLarge: number
  storeErrors: number
  leaseLost: number
  omitted: number
}

/** Every option of DESIGN.md §3, camelCase; durations in milliseconds. */
export interface EngineOptions {
  /** Covered methods (B1). Default `['POST', 'PATCH']`. */
  methods?: string[]
  /** The key header (B2). Default `'Idempotency-Key'`. */
  header?: string
  /** Answer 400 `missing-key` when a covered request has no key (B4). Default false. */
  required?: boolean
  /** Longest key, in characters after unescaping (B3). Default 255. */
  maxKeyLength?: number
  /** Accept only RFC 9651 quoted keys (B2). Default false. */
  strictKeySyntax?: boolean
  /** Largest buffered request body of a keyed request, in bytes (B7). Default 1 MiB. */
  maxRequestBody?: number
  /** Largest stored response body, in bytes (B12). Default 1 MiB. */
  maxResponseBody?: number
  /** Claim lifetime without renewal, ms (B10). Default 60 000. */
  leaseTtl?: number
  /** Longest a claim is renewed, ms (B10). Default 3 600 000. */
  maxLease?: number
  /** How long a stored response is kept, ms (B11). Default 86 400 000. */
  ttl?: number
  /** Which statuses are stored (B11). Default: below 500. */
  storeStatus?: (status: number) => boolean
  /** Response headers kept and replayed (B14). */
  replayHeaders?: string[]
  /** The header marking a replay (B14). Default `'Idempotency-Replayed'`. */
  replayedHeader?: string
  /** Store failure at claim: 503 (default) or run unprotected (B16). */
  onStoreError?: 'failClosed' | 'failOpen'
  /** How long a failed completion is retried in the background, ms (B17). Default 10 000. */
  persistTimeout?: number
  /** Request headers that are part of the fingerprint (B6). */
  fingerprintHeaders?: string[]
  /** Key the fingerprint with HMAC-SHA256 (B6). */
  fingerprintSecret?: string
  /** Prefix of problem `type` URIs (B15). Default `'https://idempo.dev/problems/'`. */
  problemBase?: string
}

/** An in-process store: one process, no services. */
export declare class MemoryStore {
  constructor (options?: { maxEntries?: number })
}

/** A store in Redis or Redis Cluster. */
export declare class RedisStore {
  private constructor ()
  /** Connect to `redis://host:port[/db]`; rejects with StoreUnavailableError. */
  static connect (url: string, options?: { prefix?: string }): Promise<RedisStore>
  /** Connect to a Redis Cluster through any of `urls`. */
  static cluster (urls: string[], options?: { prefix?: string }): Promise<RedisStore>
}

/** A store in PostgreSQL. */
export declare class PostgresStore {
  private constructor ()
  /** Connect (and create the table unless `migrate` is false); rejects with StoreUnavailableError. */
  static connect (url: string, options?: { table?: string, migrate?: boolean }): Promise<PostgresStore>
  /** Delete expired rows, `batch` at a time; resolves to how many were deleted. */
  sweep (batch?: number): Promise<number>
}

export type Store = MemoryStore | RedisStore | PostgresStore

/** Base class of every error idempo throws; `code` is stable. */
export declare class IdempoError extends Error {
  readonly code: string
}
/** An option has a value idempo cannot work with (`IDEMPO_CONFIG`). */
export declare class ConfigurationError extends IdempoError {
  readonly code: 'IDEMPO_CONFIG'
}
/** The store cannot be reached or refused the operation (`IDEMPO_STORE_UNAVAILABLE`). */
export declare class StoreUnavailableError extends IdempoError {
  readonly code: 'IDEMPO_STORE_UNAVAILABLE'
}
/** A native object used in a state that does not allow it (`IDEMPO_STATE`). */
export declare class StateError extends IdempoError {
  readonly code: 'IDEMPO_STATE'
}

/** Any logger with these methods: the console, pino, fastify.log, winston. */
export interface Logger {
  error (message: string): unknown
  warn (message: string): unknown
  info? (message: string): unknown
  debug? (message: string): unknown
}

/**
 * Send idempo's own log lines (a store error under `onStoreError: 'failOpen'`, a
 * completion that could not be stored, a lost lease) at `level` and above to `logger`;
 * `null` silences them. Default: the console, level `'warn'`.
 */
export declare function setLogger (logger: Logger | null, options?: { level?: 'error' | 'warn' | 'info' | 'debug' }): void
