import express from './express.js'
export const { idempotency, verify } = express
export default express.idempotency
