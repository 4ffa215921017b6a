/**
 * `scope: GLOBAL_SCOPE`: one namespace for every caller, whatever its credentials (B5).
 * Without `scope`, a key lives in the namespace of the request's `Authorization` value.
 */
export declare const GLOBAL_SCOPE: unique symbol

/** Counters kept by the engine (docs/RULES.md B19), named as `COUNTERS` lists them. */
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
  /** Duplicates that waited for their in-flight original (B20). */
  waited: number
  /** Waits that ran out: answered 409 (also in `conflicts`). */
  waitTimeouts: number
}

/**
 * The engine's options (docs/RULES.md), camelCase; durations in milliseconds. An option
 * left out takes the core's default: `defaults()` lists them, `options()` on a middleware
 * reads back the effective values.
 */
export interface EngineOptions {
  /** Covered methods, any case (B1). */
  methods?: string[]
  /** The key header (B2). */
  header?: string
  /** Answer 400 `missing-key` when a covered request has no key (B4). */
  required?: boolean
  /** Longest key, in characters after unescaping (B3). */
  maxKeyLength?: number
  /** Accept only RFC 9651 quoted keys (B2). */
  strictKeySyntax?: boolean
  /** Largest buffered request body of a keyed request, in bytes (B7). */
  maxRequestBody?: number
  /** Largest stored response body, in bytes (B12). */
  maxResponseBody?: number
  /** Claim lifetime without renewal, ms (B10). */
  leaseTtl?: number
  /** Longest a claim is renewed, ms (B10). */
  maxLease?: number
  /** How long a stored response is kept, ms (B11). */
  ttl?: number
  /** Which statuses are stored (B11); if it throws, the core's default rule applies. */
  storeStatus?: (status: number) => boolean
  /** Response headers kept and replayed (B14). */
  replayHeaders?: string[]
  /** The header marking a replay (B14). */
  replayedHeader?: string
  /** Store failure at claim: 503 or run unprotected (B16). */
  onStoreError?: 'failClosed' | 'failOpen'
  /** How long a failed completion is retried in the background, ms (B17). */
  persistTimeout?: number
  /** The Retry-After of a 409 for a key in flight, ms, at most what the lease has left (B9). */
  retryAfter?: number
  /** How long a duplicate of a request in flight waits for it without a `Prefer: wait=N`, ms (B20); 0 (the default): a 409 at once. */
  wait?: number
  /** The longest wait granted to a `Prefer: wait=N`, ms (B20); 0 turns waiting off. */
  maxWait?: number
  /** How many requests may wait at once (B20); beyond it a 409 at once. */
  maxWaiters?: number
  /** Request headers that are part of the fingerprint (B6). */
  fingerprintHeaders?: string[]
  /** Key the fingerprint with HMAC-SHA256 (B6). */
  fingerprintSecret?: string | Buffer
  /** Prefix of problem `type` URIs (B15). */
  problemBase?: string
}

/** The effective value of every engine option (durations in ms). */
export type EffectiveOptions = Required<Omit<EngineOptions, 'storeStatus' | 'fingerprintSecret'>> & {
  /** `'<secret>'` when set: a secret is never shown. */
  fingerprintSecret: string | null
}

/** The core's default of every engine option. */
export declare function defaults (): EffectiveOptions

/** The counter names of `stats()`, in order. */
export declare const COUNTERS: ReadonlyArray<keyof IdempotencyStats>

/** The bounds of a MemoryStore (docs/RULES.md B21); the core's defaults apply to those left out. */
export interface MemoryStoreOptions {
  /** Entries in all (default 100 000). */
  maxEntries?: number
  /** Entries one scope may hold (default a tenth of `maxEntries`); it never evicts another scope's records. */
  maxEntriesPerScope?: number
  /** Bytes of stored responses in all (default 64 MiB); a scope holds the same share of them. */
  maxBytes?: number
}

/**
 * A networked store's `encryptionKeys` (docs/RULES.md B24): `[['k2', key2], ['k1', key1]]` with
 * 32-byte keys, the one to encrypt with first, or the same as text, `'k2:<base64>,k1:<base64>'`.
 */
export type EncryptionKeys = string | ReadonlyArray<readonly [string, Buffer | Uint8Array]>

/** The options of a networked store, besides its own. */
export interface NetworkStoreOptions {
  /** The CA to trust (PEM file) instead of the system's. */
  caFile?: string
  /** Store every response encrypted with the first key; open records with any of them (B24). */
  encryptionKeys?: EncryptionKeys
}

/** An in-process store: one process, no services. */
export declare class MemoryStore {
  constructor (options?: MemoryStoreOptions)
}

/**
 * The store a URL names: `memory`, `redis://…` (or `rediss://`), `postgres://…`, with the
 * options that kind of store takes.
 */
export declare function storeFromUrl (
  url: string,
  options?: MemoryStoreOptions & NetworkStoreOptions & { prefix?: string, table?: string, migrate?: boolean, sweepInterval?: number }
): Promise<Store>

/** A store in Redis or Redis Cluster. */
export declare class RedisStore {
  private constructor ()
  /**
   * Connect to `redis://host:port[/db]`, or `rediss://` for TLS; rejects with StoreUnavailableError.
   * Over TLS the server's certificate must name the host and be signed by a CA of `caFile` (PEM),
   * or else of the system's.
   */
  static connect (url: string, options?: NetworkStoreOptions & { prefix?: string }): Promise<RedisStore>
  /** Connect to a Redis Cluster through any of `urls`. */
  static cluster (urls: string[], options?: NetworkStoreOptions & { prefix?: string }): Promise<RedisStore>
}

/** A store in PostgreSQL. */
export declare class PostgresStore {
  private constructor ()
  /**
   * Connect (and create the table unless `migrate` is false); rejects with StoreUnavailableError.
   * TLS follows the URL's `sslmode` (`require`, `verify-ca`, `verify-full`); `caFile` (PEM) is the
   * CA to trust, and without an `sslmode` it means `verify-full`.
   * Expired rows are deleted every `sweepInterval` ms (60 000) by one process at a time; 0 turns
   * that off, for those who call `sweep()` on a schedule of their own.
   */
  static connect (url: string, options?: NetworkStoreOptions & { table?: string, migrate?: boolean, sweepInterval?: number }): Promise<PostgresStore>
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
