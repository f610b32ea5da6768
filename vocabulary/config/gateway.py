"""`llmops:gateway`: how the gateway is exposed and sized. Its API keys live in the secret
config key `llmops:gatewayApiKeys` (set with `pulumi config set --secret`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from vocabulary.config.arns import check_placed, stack_place
from vocabulary.config.base import Section
from vocabulary.config.cluster import HelmPin
from vocabulary.config.serving import Replicas


class GatewayConfig(Section):
    host: str = Field(pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,}$")
    certificate_arn: str = Field(pattern=r"^arn:aws:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")
    scheme: Literal["internet-facing", "internal"] = "internal"
    image_tag: str = Field(default="0.1.0", pattern=r"^\d+\.\d+\.\d+$")
    replicas: Replicas = Replicas(min=2, max=6)
    load_balancer_controller_chart: str = Field(default="1.13.0", pattern=r"^\d+\.\d+\.\d+$")
    hosted_zone_id: str = Field(pattern=r"^Z[A-Z0-9]{1,31}$", description=(
        "the Route53 hosted zone `host` is a name in: external-dns keeps `host` pointed at the "
        "gateway's load balancer there, and may change no other zone"))
    #: kubernetes-sigs/external-dns tag external-dns-helm-chart-1.21.1 (appVersion 0.21.0)
    external_dns: HelmPin = HelmPin(chart_version="1.21.1", image_tag="v0.21.0")

    @field_validator("certificate_arn")
    @classmethod
    def _certificate_in_the_stacks_region(cls, value: str, info: ValidationInfo) -> str:
        # ACM certificates are regional; an ALB uses one of its own region (vocabulary/config/arns.py)
        return check_placed(value, stack_place(info.context), region_why=(
            "an ALB can only use an ACM certificate of its own region: request or import one "
            "there"))
