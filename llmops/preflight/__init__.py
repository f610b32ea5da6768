"""`llmops preflight`: live, read-only checks of an account and an environment before `up`.

One module per check (identity, zones, quotas, connection, image, registry, secrets), each
a function `(context) -> list[Check]`; `runner` runs them all, turns an unexpected AWS error
into a failed check, and renders one line per check. Nothing here writes to AWS.
"""
