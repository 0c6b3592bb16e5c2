"""The ``langchain-steer`` command line: ``extract``, ``chat``, ``demo``, ``agent``, ``eval`` and ``serve``.

A thin layer: it parses arguments, calls the library, and prints. It is the only package that prints
or configures logging. One module per command group: :mod:`.engine` (``extract``, ``chat``, ``demo``),
:mod:`.agent`, :mod:`.eval` and :mod:`.server`; :mod:`.common` holds the options they share.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from langchain_steer.cli import agent, engine, server
from langchain_steer.cli import eval as eval_commands

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``langchain-steer``."""
    parser = argparse.ArgumentParser(
        prog="langchain-steer",
        description="Steer local HuggingFace chat models along preference dimensions.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    engine.add_commands(sub)
    agent.add_command(sub)
    eval_commands.add_commands(sub)
    server.add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``langchain-steer`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    result: Any = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
