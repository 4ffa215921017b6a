import idempo from './index.js'
export const { MemoryStore, RedisStore, PostgresStore, IdempoError, ConfigurationError, StoreUnavailableError, StateError, setLogger } = idempo
export default idempo
