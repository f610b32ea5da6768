"""A stack's typed config for release commands: tolerances, the model, its canary.

Read the way `llmops plan` reads it (secrets absent from the YAML stand in as placeholders;
release commands never need their values), and validated by the same schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from serving.release.errors import ReleaseError
from vocabulary.config import PlatformConfig, parse_platform_config, secret_config_keys
from vocabulary.config.serving import ModelConfig
from vocabulary.stackfile import OFFLINE_SECRET, STACKS_DIR, read_stack_config

PROJECT = "llmops"


@dataclass(frozen=True)
class Stack:
    name: str
    path: Path
    config: PlatformConfig

    def model(self, name: str) -> ModelConfig:
        for model in self.config.models:
            if model.name == name:
                return model
        known = ", ".join(m.name for m in self.config.models) or "none"
        raise ReleaseError(f"{self.source}: no model {name!r} in llmops:models; models: {known}")

    @property
    def source(self) -> str:
        return f"stacks/{self.path.name}"


def load_stack(name: str, stacks_dir: Path = STACKS_DIR) -> Stack:
    """Validate `Pulumi.<name>.yaml`; ConfigError (exit 2) lists every problem."""
    raw = read_stack_config(name, stacks_dir)
    raw = raw.with_overrides({k: OFFLINE_SECRET for k in secret_config_keys() if k not in raw.values})
    config = parse_platform_config(raw.values, project=PROJECT, stack=name, source=raw.source)
    return Stack(name, stacks_dir / f"Pulumi.{name}.yaml", config)
