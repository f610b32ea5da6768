"""What every check reads: the environment's validated config, its files, and AWS clients in
its region (tests hand in clients for a moto server and a stubbed CodeConnections)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from vocabulary.config import PlatformConfig
from vocabulary.stackfile import STACKS_DIR

ClientFactory = Callable[[str, str], Any]  # (service, region) -> botocore client


def boto3_clients(service: str, region: str) -> Any:
    import boto3

    return boto3.client(service, region_name=region)


@dataclass
class Context:
    stack: str
    config: PlatformConfig
    stacks_dir: Path = STACKS_DIR
    make_client: ClientFactory = boto3_clients
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        """One client per service, in the environment's region."""
        if service not in self._clients:
            self._clients[service] = self.make_client(service, self.config.region)
        return self._clients[service]

    @cached_property
    def platform_outputs(self) -> dict[str, str]:
        """The platform stack's outputs as it published them to SSM (vocabulary/outputs_schema)."""
        from llmops.preflight.published import read_platform_outputs

        return read_platform_outputs(self)
