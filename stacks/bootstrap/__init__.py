"""The per-account bootstrap program (its own Pulumi project in this directory)."""
