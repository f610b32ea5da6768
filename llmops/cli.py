"""`llmops`: the platform's command line. Each subcommand lives in its own module under
llmops/commands and registers itself through `register(subparsers)`.

This module imports only the standard library at load time, so that Ctrl-C or an error
while the subcommands (and Pulumi, pydantic...) load still ends in one clean line.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Sequence

#: Subcommand modules, in the order `llmops --help` lists them.
COMMANDS = ("llmops.commands.plan", "llmops.commands.outputs", "llmops.commands.diff",
            "llmops.commands.cost", "llmops.commands.cold_start", "llmops.commands.secrets",
            "llmops.commands.policy", "llmops.commands.registry", "llmops.commands.gateway",
            "llmops.commands.canary", "llmops.commands.evaluate", "llmops.commands.preflight")

#: Exit statuses, the same for every subcommand (documented in `llmops --help` and the README).
EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_POLICY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES_HELP = """exit status:
  0    success
  1    error (a file, the registry, the network...; the message says what and where)
  2    bad stack configuration (every problem listed, with its key)
  3    a mandatory policy is violated (plan, policy check)
  130  interrupted (Ctrl-C)

Set LLMOPS_DEBUG=1 to see the Python traceback of an unexpected error."""


def distribution_version() -> str:
    """The installed package's version (pyproject.toml), not a second copy of it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llmops-platform")
    except PackageNotFoundError:
        return "unknown (not installed; run `make setup`)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmops", description="Plan, check and operate the LLM serving platform.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version",
                        version=f"llmops {distribution_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMANDS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def answer_version(argv: Sequence[str] | None) -> None:
    """`llmops --version` without loading the subcommands (Pulumi, pydantic...): exits.
    Only as the first argument: subcommands have options of that name
    (`llmops registry show NAME --version V`)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["--version"]:
        print(f"llmops {distribution_version()}")
        raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        _leave_on_ctrl_c()
    try:
        answer_version(argv)
        args = build_parser().parse_args(argv)
        return int(args.handler(args) or EXIT_OK)
    except KeyboardInterrupt:
        return _interrupted(leave_process=argv is None)
    except BrokenPipeError:
        return _reader_went_away()
    except Exception as exc:  # every failure ends in one `error:` line, never a traceback
        return _report(exc)


def _report(exc: Exception) -> int:
    import pulumi

    from vocabulary.config import ConfigError
    from vocabulary.errors import LlmopsError

    if isinstance(exc, ConfigError):
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if isinstance(exc, pulumi.RunError):
        # The program refused the configuration it was given (RunError is Pulumi's "user
        # error, no traceback"): e.g. more zones than the region has, a pinned revision that
        # is not the registry's.
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if isinstance(exc, LlmopsError):
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if os.environ.get("LLMOPS_DEBUG"):
        raise exc
    print(f"error: unexpected {type(exc).__name__}: {exc} (a bug in llmops: rerun with "
          "LLMOPS_DEBUG=1 for the traceback and report it)", file=sys.stderr)
    return EXIT_ERROR


def _reader_went_away() -> int:
    """`llmops ... | head`: the reader closed the pipe. Say nothing (it is not listening), and
    keep the interpreter from failing again when it flushes stdout at exit."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return EXIT_ERROR


def _leave_on_ctrl_c() -> None:
    """From the console script, Ctrl-C ends the process at once, wherever it lands.

    A KeyboardInterrupt raised inside Pulumi's event loop can be swallowed by a task (the
    plan then finishes and exits 0) or strand a future the program waits on (the plan
    hangs). Leaving from the signal handler cannot be caught. Nothing is lost: downloads
    are journalled and resume, locks are flocks the kernel releases. Commands that must
    shut down gracefully (the gateway server, `registry cache hold`) install their own."""
    signal.signal(signal.SIGINT, lambda *_: _interrupted(leave_process=True))


def _interrupted(leave_process: bool) -> int:
    """One line, exit 130. From the console script, leave at once: Pulumi's interrupted
    tasks and gRPC threads would print pages of tracebacks while the interpreter tears down."""
    print("interrupted", file=sys.stderr)
    if leave_process:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
