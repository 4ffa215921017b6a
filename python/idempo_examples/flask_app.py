"""Flask: the WSGI middleware around `app.wsgi_app`.

    gunicorn --preload -w 4 idempo_examples.flask_app:app
"""

from __future__ import annotations

import os

from flask import Flask, Response, jsonify, request
from idempo import PostgresStore, Store
from idempo.wsgi import Environ, IdempotencyMiddleware

app = Flask(__name__)


def store() -> Store:
    from idempo import MemoryStore

    url = os.environ.get("DATABASE_URL")
    return PostgresStore(url) if url else MemoryStore()


def tenant(environ: Environ) -> str:
    """The caller, as the authentication in front of the app established it; a request
    without one is refused before it gets here."""
    return str(environ["REMOTE_USER"])


app.wsgi_app = IdempotencyMiddleware(  # type: ignore[method-assign]
    app.wsgi_app, store=store(), scope=tenant, on_store_error="fail_closed", lease_ttl=30.0
)


@app.post("/transfers")
def transfer() -> Response:
    body = request.get_json(force=True)
    return jsonify(transfer=body)
