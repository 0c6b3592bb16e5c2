"""The ``serve`` command: the OpenAI-compatible server under uvicorn."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_serve(args: argparse.Namespace) -> int:
    """``langchain-steer serve``: load the model once and serve it until interrupted."""
    try:
        import uvicorn

        from langchain_steer.server import ServerSettings, create_app, read_api_keys
    except ImportError as error:
        raise SystemExit(
            f'error: the server needs `pip install "langchain-steer[server]"` ({error})'
        ) from None
    keys: dict[str, frozenset[str]] = {}
    try:
        if args.api_keys:
            keys.update(read_api_keys(args.api_keys))
        if args.api_key:
            keys[args.api_key] = frozenset({"*"})
        settings = ServerSettings(
            model=args.model,
            vectors=args.vectors,
            db=args.db,
            api_keys=keys,
            host=args.host,
            port=args.port,
            device=args.device,
            cors_origins=tuple(args.cors_origin or ()),
            max_batch_size=args.max_batch_size,
            max_queue=args.max_queue,
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"langchain-steer: serving {settings.model} on http://{settings.host}:{settings.port}/v1")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
        log_level="info" if args.verbose else "warning",
    )
    return 0


def add_command(sub: Any) -> None:
    """Register ``serve``."""
    serve = sub.add_parser("serve", help="serve an OpenAI-compatible API with per-user steering")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument("--model", default="demo", help="model to serve (default: the demo model)")
    serve.add_argument("--vectors", help="folder of .safetensors vectors (default: the built-in ones)")
    serve.add_argument(
        "--db",
        help="SQLite file or postgresql:// URL for preferences (default: the file the agent uses)",
    )
    serve.add_argument(
        "--api-key", help="a key that acts for every user (required off loopback, or --api-keys)"
    )
    serve.add_argument(
        "--api-keys", help='JSON file mapping each key to its users, e.g. {"sk-...": ["ana"]}'
    )
    serve.add_argument("--device", help="device to load the model on (default: CUDA if available)")
    serve.add_argument(
        "--cors-origin", action="append", help="allow browser calls from this origin (repeatable)"
    )
    serve.add_argument("--max-batch-size", type=int, default=8, help="replies decoded together")
    serve.add_argument("--max-queue", type=int, default=256, help="waiting requests before 429")
    serve.set_defaults(func=cmd_serve)
