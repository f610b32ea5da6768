"""The error the release tooling raises; the CLI prints it as `error: ...` and exits 1."""

from vocabulary.errors import LlmopsError


class ReleaseError(LlmopsError):
    """A release step could not run: unreachable Prometheus, bad answer, bad stack file."""
