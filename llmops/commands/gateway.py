"""`llmops gateway --config PATH`: run the LLM gateway."""

from __future__ import annotations

import argparse
import errno
from pathlib import Path

from llmops.errors import LlmopsError

DESCRIPTION = """Run the LLM gateway: a TGI-compatible HTTP API (/generate, /generate_stream,
/, OpenAI /v1 routes) in front of TGI backends, with API keys, rate limits, a response cache,
canary routing, circuit breakers, fallback and a PII filter. The config file and the keys
file it names are checked at start; every problem is reported at once. See docs/gateway.md."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gateway", help="run the LLM gateway (TGI-compatible API with auth, limits, cache, routing)",
        description=DESCRIPTION)
    parser.add_argument("--config", type=Path, required=True,
                        help="gateway config YAML (models, keysFile, limits, breaker, cache)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    parser.add_argument("--drain-seconds", type=float, default=60.0,
                        help="on SIGTERM, how long in-flight requests and streams may finish "
                        "before they are cut (default: %(default)s)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from serving.gateway.app import create_app
    from serving.gateway.config import load_config
    from serving.gateway.logs import configure_logging

    config = load_config(args.config)  # GatewayConfigError -> clean message, exit 1
    configure_logging()
    try:
        web.run_app(create_app(config), host=args.host, port=args.port, access_log=None,
                    shutdown_timeout=args.drain_seconds,
                    print=lambda msg: print(msg, flush=True))
    except OSError as exc:
        reason = ("address already in use" if exc.errno == errno.EADDRINUSE
                  else (exc.strerror or str(exc)).lower())
        raise LlmopsError(f"cannot listen on {args.host}:{args.port}: {reason}") from None
    return 0
