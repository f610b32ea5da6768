"""The one exception family the CLI turns into a clean message and a non-zero exit."""


class LlmopsError(Exception):
    """A user-facing error: the message says what was wrong and what to do."""
