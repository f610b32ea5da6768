"""`llmops gateway --config PATH`: run the LLM gateway."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gateway", help="run the LLM gateway (TGI-compatible API with auth, limits, cache, routing)")
    parser.add_argument("--config", type=Path, required=True, help="gateway config YAML")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from serving.gateway.app import create_app
    from serving.gateway.config import load_config

    config = load_config(args.config)  # GatewayConfigError -> clean message, exit 1
    web.run_app(create_app(config), host=args.host, port=args.port, access_log=None,
                print=lambda msg: print(msg, flush=True))
    return 0

