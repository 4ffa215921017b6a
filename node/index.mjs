import idempo from './index.js'
export const { MemoryStore, RedisStore, PostgresStore, IdempoError, ConfigurationError, StoreUnavailableError, StateError } = idempo
export default idempo
