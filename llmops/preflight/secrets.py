"""The workloads stack's secrets are set (encrypted) in its own stack file."""

from __future__ import annotations

from llmops.offline.secrets import secret_statuses, set_command
from llmops.preflight.context import Context
from llmops.preflight.result import Check, failed, passed
from vocabulary.stackfile import read_workloads_config


def workloads_secrets(context: Context) -> list[Check]:
    statuses = secret_statuses(context.config, read_workloads_config(context.stack, context.stacks_dir))
    return [passed(f"secret {s.key}", f"set in {s.file}") if s.is_set else
            failed(f"secret {s.key}", f"{s.purpose}: not set in {s.file}",
                   f"run `{set_command(s.key, context.stack)}`")
            for s in statuses]
