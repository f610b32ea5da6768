"""The one interface every model-server engine renders behind: what its container runs,
which ports and metrics it has, what its pods need to write. Pure data and functions, no
Pulumi, so each engine's rules have fast unit tests; components/model_server.py turns them
into Kubernetes objects, the same way for every engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vocabulary.config.serving import ModelConfig, ServingConfig

FLAGS_DIR = Path(__file__).parent / "data"
#: Every model server's pods carry this label next to `app.kubernetes.io/name: <engine>`:
#: network policies, the policy pack and the admission tests select model servers by it.
COMPONENT_LABEL = {"app.kubernetes.io/component": "model-server"}


@dataclass(frozen=True)
class Scratch:
    """A writable emptyDir the engine needs (its HOME, caches, temp files)."""

    name: str
    path: str
    size_gib: int
    memory: bool = False


@dataclass(frozen=True)
class ServiceTarget:
    """A model track's Service as a client outside the cluster reaches it (port-forward)."""

    service: str
    port: int
    protocol: str


@dataclass(frozen=True)
class Engine:
    """One engine's facts; subclasses render the container's command line and environment."""

    name: str
    http_port: int
    #: a separate Prometheus port, or None when /metrics is served on the HTTP port
    metrics_port: int | None
    #: the engine's own graceful shutdown; the pod's grace period is longer
    graceful_shutdown_s: int
    termination_grace_s: int
    #: per-pod gauge of requests waiting for a batch slot: KEDA's trigger and the backlog alert
    queue_metric: str
    #: uid the container runs as; None for an image that needs root
    run_as_uid: int | None
    read_only_root: bool
    #: the wire protocol of its HTTP port, as `llmops evaluate --protocol` names it
    protocol: str = "tgi"
    #: cold-start planning figures (components/cold_start.py): compressed image, warm-up
    image_gb: float = 10.0
    warmup_s: float = 45.0
    scratch: tuple[Scratch, ...] = ()
    working_dir: str | None = None
    flags_file: str = ""
    removed_flags: frozenset[str] = field(default_factory=frozenset)

    @property
    def metrics_port_name(self) -> str:
        return "metrics" if self.metrics_port else "http"

    def deployment_name(self, model: str, track: str) -> str:
        return f"{self.name}-{model}" if track == "stable" else f"{self.name}-{model}-{track}"

    def target(self, model: str, track: str) -> ServiceTarget:
        """Where CI reaches one track of a model: its Service (the ScaledObject has the same
        name), the Service's HTTP port, the protocol spoken there."""
        return ServiceTarget(self.deployment_name(model, track), self.http_port, self.protocol)

    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.name, **COMPONENT_LABEL}

    def image(self, serving: ServingConfig) -> str:
        raise NotImplementedError

    def command(self) -> list[str] | None:
        """The container command; None keeps the image's entrypoint."""
        return None

    def args(self, model: ModelConfig, model_path: str) -> list[str]:
        raise NotImplementedError

    def env(self, model: ModelConfig) -> dict[str, str]:
        raise NotImplementedError

    def known_flags(self) -> frozenset[str]:
        """The flags the pinned release defines (data/<engine>-<version>.flags, extracted
        from its source by data/extract_flags.py; the file's header says from where)."""
        lines = (FLAGS_DIR / self.flags_file).read_text().splitlines()
        return frozenset(line.strip() for line in lines if line.startswith("--"))


def flags_of(args: list[str]) -> list[str]:
    """The option names on a command line (`--flag value` or `--flag=value`)."""
    return [a.split("=", 1)[0] for a in args if a.startswith("--")]
