"""`llmops:monitoring`: Prometheus/Alertmanager/Grafana sizing, alert thresholds, SLOs, receivers.

Secrets never live in this section: a receiver names the config key that holds its URL or
routing key (in the `llmops-secrets` namespace, set with `pulumi config set --secret`), and
`read_monitoring_secrets` turns those names into Pulumi secret outputs for the component.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from vocabulary.config.base import Section, repeated

#: Config namespace holding monitoring secrets; outside `llmops:` so the strict schema ignores it.
SECRETS_NAMESPACE = "llmops-secrets"
#: The key (in SECRETS_NAMESPACE) holding the Grafana admin password.
GRAFANA_PASSWORD_KEY = "grafanaAdminPassword"
#: Burn-rate factors of the multi-window alerts (Google SRE workbook, chapter 5).
FAST_BURN, SLOW_BURN = 14.4, 6.0

QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")
DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d|w|y)$")
BYTES = re.compile(r"^[0-9]+(\.[0-9]+)?(B|KB|MB|GB|TB|PB|EB)$")
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def _quantity(value: str | None) -> str | None:
    if value is not None and not QUANTITY.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 500m, 2, 512Mi or 50Gi")
    return value


class Amounts(Section):
    """CPU and memory as Kubernetes quantities."""

    cpu: str | None = None
    memory: str | None = None

    _valid = field_validator("cpu", "memory")(classmethod(lambda cls, v: _quantity(v)))


class Resources(Section):
    """Requests and limits of one workload. A memory limit is required (no unbounded pods)."""

    requests: Amounts
    limits: Amounts

    @model_validator(mode="after")
    def _limits_bound_memory(self) -> Resources:
        if self.limits.memory is None:
            raise ValueError("limits.memory is required: every monitoring pod has a memory limit")
        if self.requests.memory is None or self.requests.cpu is None:
            raise ValueError("requests.cpu and requests.memory are required")
        return self

    def values(self) -> dict[str, dict[str, str]]:
        """As a Helm chart's `resources:` value."""
        return {k: v.model_dump(exclude_none=True) for k, v in
                (("requests", self.requests), ("limits", self.limits))}


def _res(cpu: str, memory: str, limit_memory: str, limit_cpu: str | None = None) -> Resources:
    return Resources(requests=Amounts(cpu=cpu, memory=memory),
                     limits=Amounts(cpu=limit_cpu, memory=limit_memory))


class WorkloadResources(Section):
    """Requests and limits per monitoring workload."""

    prometheus: Resources = _res("500m", "2Gi", "4Gi")
    alertmanager: Resources = _res("50m", "128Mi", "256Mi")
    grafana: Resources = _res("100m", "256Mi", "512Mi")
    prometheus_operator: Resources = _res("100m", "128Mi", "256Mi")
    kube_state_metrics: Resources = _res("50m", "128Mi", "256Mi")
    node_exporter: Resources = _res("50m", "64Mi", "128Mi")
    dcgm_exporter: Resources = _res("100m", "256Mi", "512Mi")


class PrometheusSettings(Section):
    """How long and how much metric history to keep, on a persistent volume."""

    retention: str = "15d"
    retention_size: str | None = Field(default=None, description="e.g. 45GB; keep below storageSize")
    storage_size: str = "50Gi"
    storage_class: str | None = Field(default=None, description="None: the cluster default class")
    replicas: int = Field(default=1, ge=1, le=3)

    @field_validator("retention")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not DURATION.match(value):
            raise ValueError(f"{value!r} is not a Prometheus duration such as 15d, 36h or 2w")
        return value

    @field_validator("retention_size")
    @classmethod
    def _bytes(cls, value: str | None) -> str | None:
        if value is not None and not BYTES.match(value):
            raise ValueError(f"{value!r} is not a Prometheus size such as 45GB or 512MB")
        return value

    _valid_size = field_validator("storage_size")(classmethod(lambda cls, v: _quantity(v)))


class AlertmanagerSettings(Section):
    """Alertmanager keeps silences and notification state on a small volume."""

    storage_size: str = "5Gi"
    replicas: int = Field(default=1, ge=1, le=5)
    repeat_interval: str = "4h"

    _valid_size = field_validator("storage_size")(classmethod(lambda cls, v: _quantity(v)))

    @field_validator("repeat_interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not DURATION.match(value):
            raise ValueError(f"{value!r} is not a duration such as 4h or 30m")
        return value


class Thresholds(Section):
    """Alert thresholds; rendered into the `llmops-parameters` rule group as series."""

    error_ratio: float = Field(default=0.05, gt=0, lt=1, description="LLMHighErrorRate")
    latency_p95_seconds: float = Field(default=10.0, gt=0, description="LLMHighLatency")
    queue_backlog: int = Field(default=50, ge=1, description="TGIQueueBacklog (per pod)")
    gpu_memory_ratio: float = Field(default=0.95, gt=0.5, le=1, description="GPUMemoryExhaustion")


def _objective(value: float) -> float:
    """An availability objective the fast-burn alert can actually reach."""
    if not 0 < value < 1:
        raise ValueError(f"{value} is not an availability objective; use a ratio such as 0.995")
    if FAST_BURN * (1 - value) >= 1:
        raise ValueError(f"{value} leaves an error budget so large that a {FAST_BURN}x burn would "
                         f"need more than 100% errors; use at least {1 - 1 / FAST_BURN:.4f}")
    return value


class SloSettings(Section):
    """Availability objective (share of non-5xx answers over 30 days), per model or default."""

    default_objective: float = 0.99
    objectives: dict[str, float] = {}

    @field_validator("default_objective")
    @classmethod
    def _default_reachable(cls, value: float) -> float:
        return _objective(value)

    @field_validator("objectives")
    @classmethod
    def _each_reachable(cls, values: dict[str, float]) -> dict[str, float]:
        problems = []
        for model, value in values.items():
            try:
                _objective(value)
            except ValueError as exc:
                problems.append(f"{model}: {exc}")
        if problems:
            raise ValueError("\n".join(problems))
        return values


class Receiver(Section):
    """Where alerts go. `secretKey` names the `llmops-secrets:` key holding the URL/routing key."""

    name: str
    type: Literal["slack", "pagerduty", "webhook"]
    secret_key: str
    channel: str | None = Field(default=None, description="slack only; default: the webhook's")

    @field_validator("name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not NAME.match(value) or value == "null":
            raise ValueError(f"{value!r} is not a receiver name (lower-case letters, digits, '-'; "
                             "not 'null')")
        return value

    @field_validator("secret_key")
    @classmethod
    def _key_name(cls, value: str) -> str:
        if not KEY.match(value):
            raise ValueError(f"{value!r} is not a config key name such as slackWebhookUrl "
                             f"(it is read from {SECRETS_NAMESPACE}:<key>)")
        return value

    @model_validator(mode="after")
    def _channel_is_slack_only(self) -> Receiver:
        if self.channel is not None and self.type != "slack":
            raise ValueError(f"channel is only valid for slack receivers, not {self.type}")
        return self


class Routes(Section):
    """Receivers per alert severity; an empty list drops that severity (Alertmanager UI only)."""

    critical: list[str] = []
    warning: list[str] = []
    info: list[str] = []


class MonitoringConfig(Section):
    """The monitoring stack of one environment."""

    namespace: str = "monitoring"
    runbook_base_url: str | None = Field(
        default=None, description="prefix for runbook_url (e.g. https://github.com/org/repo/blob/main/)")
    prometheus: PrometheusSettings = PrometheusSettings()
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    resources: WorkloadResources = WorkloadResources()
    thresholds: Thresholds = Thresholds()
    slo: SloSettings = SloSettings()
    receivers: list[Receiver] = []
    routes: Routes = Routes()

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes namespace name")
        return value

    @field_validator("runbook_base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https://\S+/$", value):
            raise ValueError(f"{value!r} must be an https:// URL ending with '/'")
        return value

    @model_validator(mode="after")
    def _routes_name_receivers(self) -> MonitoringConfig:
        names = [r.name for r in self.receivers]
        problems = [f"receivers: {n!r} is listed more than once" for n in repeated(names)]
        for severity in ("critical", "warning", "info"):
            for i, name in enumerate(getattr(self.routes, severity)):
                if name not in names:
                    known = ", ".join(names) or "none defined"
                    problems.append(f"routes.{severity}[{i}]: no receiver named {name!r} "
                                    f"(receivers: {known})")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def secret_keys(self) -> list[str]:
        """The `llmops-secrets:` keys the receivers need, in order, without repeats."""
        return list(dict.fromkeys(r.secret_key for r in self.receivers))


def read_monitoring_secrets(config: MonitoringConfig):
    """Read the receivers' secrets and the Grafana password from `llmops-secrets:` as secrets.

    Returns (grafana_admin_password, {secretKey: secret output}); the program passes both to
    `MonitoringArgs`. Missing keys fail with Pulumi's own message naming the key.
    """
    import pulumi

    secrets = pulumi.Config(SECRETS_NAMESPACE)
    return (secrets.require_secret(GRAFANA_PASSWORD_KEY),
            {key: secrets.require_secret(key) for key in config.secret_keys()})
