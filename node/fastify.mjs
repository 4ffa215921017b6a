import plugin from './fastify.js'
export default plugin
export const idempotency = plugin
