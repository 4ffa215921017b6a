import express from './express.js'
export const { idempotency } = express
export default express.idempotency
