"""`llmops:cluster`: the EKS control plane, its add-ons, the system node group and the pins
of what provisions GPU nodes (Karpenter, the NVIDIA device plugin)."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from vocabulary.config.base import Section, size_order_problem
from vocabulary.config.network import RetentionDays, parse_cidr
from vocabulary.cpu_instances import CpuInstance, cpu_instances

#: EKS versions in standard support that this platform is tested against.
SUPPORTED_VERSIONS = ("1.32", "1.33", "1.34")
#: First VPC CNI release whose node agent enforces NetworkPolicies.
NETWORK_POLICY_CNI = (1, 14, 0)
ADDON_VERSION = re.compile(r"^v\d+\.\d+\.\d+-eksbuild\.\d+$")
ROLE_ARN = re.compile(r"^arn:aws:iam::\d{12}:role/[\w+=,.@/-]+$")
CONTROL_PLANE_LOGS = ("api", "audit", "authenticator", "controllerManager", "scheduler")
REQUIRED_LOGS = ("api", "audit", "authenticator")


def check_role_arns(values: list[str]) -> list[str]:
    bad = [v for v in values if not ROLE_ARN.match(v)]
    if bad:
        raise ValueError(f"not IAM role ARNs (arn:aws:iam::<12 digits>:role/<name>): {bad}")
    return values


class AddonVersions(Section):
    """Pinned EKS add-on versions (`aws eks describe-addon-versions --kubernetes-version X`)."""

    vpc_cni: str
    coredns: str
    kube_proxy: str
    aws_ebs_csi_driver: str

    @field_validator("vpc_cni", "coredns", "kube_proxy", "aws_ebs_csi_driver")
    @classmethod
    def _pinned(cls, value: str) -> str:
        if not ADDON_VERSION.match(value):
            raise ValueError(f"{value!r} is not a pinned add-on version such as v1.33.5-eksbuild.2")
        return value

    @field_validator("vpc_cni")
    @classmethod
    def _enforces_network_policies(cls, value: str) -> str:
        if tuple(int(n) for n in value[1:].split("-")[0].split(".")) < NETWORK_POLICY_CNI:
            raise ValueError(f"{value} cannot enforce NetworkPolicies; the VPC CNI does from "
                             "v1.14.0 (use v1.14.0-eksbuild.3 or later)")
        return value


class HelmPin(Section):
    """A Helm chart pinned by version, with the image tag it runs."""

    chart_version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    image_tag: str = Field(pattern=r"^v?\d+\.\d+\.\d+$")


class KarpenterPin(Section):
    """Karpenter's charts (controller and CRDs, one release) and the GPU nodes' AMI release."""

    chart_version: str = Field(pattern=r"^\d+\.\d+\.\d+$", description="karpenter and "
                               "karpenter-crd chart version (oci://public.ecr.aws/karpenter)")
    ami_version: str = Field(pattern=r"^v\d{8}$", description="EKS AL2023 AMI release for "
                             "GPU nodes (awslabs/amazon-eks-ami tag, e.g. v20260724); the "
                             "EC2NodeClass alias al2023@<this>, never @latest")


class SystemNodes(Section):
    """The small on-demand node group that runs add-ons and controllers."""

    instance_types: list[str] = Field(default=["m6i.large", "m6a.large"], min_length=1)
    min_size: int = Field(default=2, ge=1)
    max_size: int = Field(default=4, ge=1)
    desired_size: int = Field(default=2, ge=1)
    root_volume_gib: int = Field(default=50, ge=20, le=1000)

    @model_validator(mode="after")
    def _sizes_are_ordered(self) -> SystemNodes:
        problem = size_order_problem(self.min_size, self.desired_size, self.max_size)
        if problem:
            raise ValueError(problem)
        return self


class TrafficNodes(Section):
    """A Karpenter NodePool (on-demand CPU nodes) for the request path's pods, the gateway and
    the routers, which autoscale: the system node group has a fixed size (nothing scales it),
    so it keeps the controllers only. Its nodes carry a taint only those pods tolerate."""

    instance_types: list[str] = Field(default=["m6i.large", "m6a.large", "m6i.xlarge", "m6a.xlarge"],
                                      min_length=2)
    max_nodes: int = Field(default=6, ge=1, le=100, description="the NodePool's limits: this many "
                           "of its largest type's vCPUs and memory (what `llmops cost` prices)")

    @field_validator("instance_types")
    @classmethod
    def _known_cpu_types(cls, values: list[str]) -> list[str]:
        known = cpu_instances()
        unknown = [v for v in values if v not in known]
        if unknown:
            raise ValueError(f"unknown CPU instance types {unknown}; known: {', '.join(sorted(known))} "
                             "(vocabulary/data/cpu_instances.yaml)")
        return values

    @property
    def instances(self) -> list[CpuInstance]:
        return [cpu_instances()[t] for t in self.instance_types]


class ClusterConfig(Section):
    """The EKS cluster. Endpoint access is private; public access only from listed CIDRs."""

    version: str
    endpoint_public_access: bool = False
    public_access_cidrs: list[str] = []
    admin_role_arns: list[str] = Field(min_length=1)
    log_types: list[str] = list(CONTROL_PLANE_LOGS)
    log_retention_days: RetentionDays = 90
    system_nodes: SystemNodes = SystemNodes()
    traffic_nodes: TrafficNodes = TrafficNodes()
    addons: AddonVersions
    karpenter: KarpenterPin
    nvidia_device_plugin: HelmPin
    #: the resource metrics API (metrics.k8s.io) that CPU/memory HPAs read; kubernetes-sigs/
    #: metrics-server tag metrics-server-helm-chart-3.13.1 (appVersion 0.8.1)
    metrics_server: HelmPin = HelmPin(chart_version="3.13.1", image_tag="v0.8.1")
    support_type: Literal["STANDARD", "EXTENDED"] = Field(
        default="STANDARD", description="EKS upgrade policy: STANDARD auto-upgrades at the end "
        "of standard support instead of billing extended support (6x the hourly fee)")

    @field_validator("version")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in SUPPORTED_VERSIONS:
            raise ValueError(f"{value!r} is not a supported EKS version; allowed: "
                             f"{', '.join(SUPPORTED_VERSIONS)}")
        return value

    @field_validator("public_access_cidrs")
    @classmethod
    def _never_the_world(cls, values: list[str]) -> list[str]:
        problems, nets = [], []
        for i, value in enumerate(values):
            try:
                net = parse_cidr(value)
            except ValueError as exc:
                problems.append(f"[{i}] {exc}")
                continue
            nets.append(net)
            if net.prefixlen < 8:
                problems.append(f"[{i}] {value} opens the API endpoint to (nearly) the whole "
                                "internet; list your office/VPN CIDRs instead")
        # the world split into pieces (256 x /8, or /9s...) is still the world
        addresses = sum(n.num_addresses for n in ipaddress.collapse_addresses(nets))
        if not problems and addresses > 2**24:
            problems.append(f"together they open the API endpoint to {addresses:,} addresses, more "
                            "than a /8; list your office/VPN CIDRs instead")
        if problems:
            raise ValueError("\n".join(problems))
        return values

    @field_validator("admin_role_arns")
    @classmethod
    def _role_arns(cls, values: list[str]) -> list[str]:
        return check_role_arns(values)

    @field_validator("log_types")
    @classmethod
    def _logs(cls, values: list[str]) -> list[str]:
        unknown = [v for v in values if v not in CONTROL_PLANE_LOGS]
        missing = [v for v in REQUIRED_LOGS if v not in values]
        if unknown:
            raise ValueError(f"unknown log types {unknown}; allowed: {', '.join(CONTROL_PLANE_LOGS)}")
        if missing:
            raise ValueError(f"{', '.join(missing)} logging cannot be turned off")
        return values

    @model_validator(mode="after")
    def _consistent(self) -> ClusterConfig:
        problems = []
        if self.endpoint_public_access and not self.public_access_cidrs:
            problems.append("endpointPublicAccess is true but publicAccessCidrs is empty "
                            "(EKS would open the endpoint to 0.0.0.0/0); list allowed CIDRs")
        if not self.endpoint_public_access and self.public_access_cidrs:
            problems.append("publicAccessCidrs is set but endpointPublicAccess is false")
        minor = self.version.split(".")[1]
        for key, tag in (("addons.kubeProxy", self.addons.kube_proxy),):
            if tag.lstrip("v").split(".")[:2] != ["1", minor]:
                problems.append(f"{key} {tag} does not match Kubernetes {self.version}; "
                                f"use a v1.{minor}.x release")
        if problems:
            raise ValueError("\n".join(problems))
        return self
