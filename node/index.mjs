import idempo from './index.js'
export const { MemoryStore, RedisStore, PostgresStore, storeFromUrl, GLOBAL_SCOPE, COUNTERS, defaults, IdempoError, ConfigurationError, StoreUnavailableError, StateError, setLogger } = idempo
export default idempo
