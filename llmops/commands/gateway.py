"""`llmops gateway --config PATH`: run the LLM gateway."""

from __future__ import annotations

import argparse
import errno
from pathlib import Path

from vocabulary.errors import LlmopsError

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
                        "before they are cut; meanwhile /ready fails and new requests get 503 "
                        "with Retry-After (default: %(default)s)")
    parser.add_argument("--max-connections", type=int, metavar="N",
                        help="open client connections per process (default: the config's "
                        "limits.maxConnections); beyond it 503 and close")
    parser.add_argument("--max-inflight", type=int, metavar="N",
                        help="requests in flight per process (default: the config's "
                        "limits.maxInflightRequests); beyond it 503 with Retry-After")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="event loop (default: %(default)s, the faster; asyncio: Python's own)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from serving.gateway.app import create_app
    from serving.gateway.config import load_config
    from serving.gateway.logs import configure_logging
    from serving.gateway.server import run as run_loop
    from serving.gateway.server import serve_until_signalled

    config = load_config(args.config)  # GatewayConfigError -> clean message, exit 1
    for name, value in (("--max-connections", args.max_connections), ("--max-inflight", args.max_inflight)):
        if value is not None and value < 1:
            raise LlmopsError(f"{name} must be at least 1 (got {value})")
    if args.max_inflight:
        config = config.model_copy(update={"limits": config.limits.model_copy(
            update={"max_inflight_requests": args.max_inflight})})
    configure_logging()
    try:
        run_loop(serve_until_signalled(create_app(config), args.host, args.port,
                                       args.drain_seconds, args.max_connections), args.loop)
    except OSError as exc:
        reason = ("address already in use" if exc.errno == errno.EADDRINUSE
                  else (exc.strerror or str(exc)).lower())
        raise LlmopsError(f"cannot listen on {args.host}:{args.port}: {reason}") from None
    return 0
