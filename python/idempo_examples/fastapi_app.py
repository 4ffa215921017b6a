"""FastAPI: a payment endpoint made safe to retry.

    uvicorn idempo_examples.fastapi_app:app
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from idempo import MemoryStore, RedisStore
from idempo.asgi import IdempotencyMiddleware, Scope
from pydantic import BaseModel


class Charge(BaseModel):
    amount: int
    currency: str


def tenant(scope: Scope) -> str:
    """Keys live per API client, as the authentication in front of the app established it
    (without a scope function idempo would use the Authorization header's hash)."""
    return str(scope["user"].identity)


app = FastAPI()
redis_url = os.environ.get("REDIS_URL")
app.add_middleware(
    IdempotencyMiddleware,
    store=RedisStore(redis_url) if redis_url else MemoryStore(),
    required=True,
    scope=tenant,
    ttl=24 * 3600.0,
)


@app.post("/charges", status_code=201)
async def create_charge(charge: Charge) -> dict[str, object]:
    return {"id": "ch_1", "amount": charge.amount, "currency": charge.currency}
