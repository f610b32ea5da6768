"""The error evaluation raises when it cannot produce an honest result (exit 1, not a pass)."""

from vocabulary.errors import LlmopsError


class EvaluationError(LlmopsError):
    """A bad suite file, an unreachable endpoint, or an endpoint that does not speak TGI."""
