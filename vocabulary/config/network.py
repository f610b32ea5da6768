"""`llmops:network`: the VPC, its subnets per availability zone, NAT, endpoints, flow logs."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from vocabulary.config.base import Section, repeated
from vocabulary.subnets import LayoutError, SubnetPair, default_layout, overlaps

#: Interface endpoints the platform knows how to create (service suffix after com.amazonaws.<region>.).
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "sts", "logs", "ec2", "elasticloadbalancing",
                       "autoscaling", "ssm", "kms", "monitoring")
#: Retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096,
                      1827, 2192, 2557, 2922, 3288, 3653)
PRIVATE_RANGES = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12",
                                                          "192.168.0.0/16", "100.64.0.0/10"))


def parse_cidr(value: str) -> ipaddress.IPv4Network:
    """A strict IPv4 CIDR, with a message that says what was wrong."""
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ipaddress.AddressValueError as exc:
        raise ValueError(f"{value!r} is not an IPv4 CIDR such as 10.0.0.0/16 ({exc})") from None
    except ipaddress.NetmaskValueError:
        raise ValueError(f"{value!r} has an invalid prefix length; use /0 to /32") from None
    except ValueError:
        fixed = ipaddress.IPv4Network(value, strict=False)
        raise ValueError(f"{value!r} has host bits set; did you mean {fixed}?") from None


def _cloudwatch_retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        allowed = ", ".join(map(str, LOG_RETENTION_DAYS))
        raise ValueError(f"{days} is not a CloudWatch retention period; allowed: {allowed}")
    return days


#: Days of log retention CloudWatch accepts.
RetentionDays = Annotated[int, AfterValidator(_cloudwatch_retention)]


class FlowLogs(Section):
    """VPC flow logs to CloudWatch Logs."""

    retention_days: RetentionDays = 90
    traffic_type: Literal["ALL", "ACCEPT", "REJECT"] = "ALL"


class NetworkConfig(Section):
    """The VPC. Subnets are carved automatically unless listed explicitly (one per AZ)."""

    cidr: str
    az_count: int = Field(ge=2, le=6, description="EKS needs subnets in at least 2 AZs")
    nat: Literal["single", "per-az"] = Field(
        description="single: one NAT gateway (cheap, one AZ's failure cuts egress); "
        "per-az: one per AZ (production)")
    private_subnet_prefix: int = Field(default=19, ge=16, le=24)
    public_subnet_prefix: int = Field(default=24, ge=20, le=28)
    private_subnets: list[str] | None = None
    public_subnets: list[str] | None = None
    interface_endpoints: list[Literal[INTERFACE_ENDPOINTS]] = ["ecr.api", "ecr.dkr", "sts", "logs"]
    flow_logs: FlowLogs = FlowLogs()

    @field_validator("cidr")
    @classmethod
    def _cidr_is_private_vpc_range(cls, value: str) -> str:
        net = parse_cidr(value)
        if not 16 <= net.prefixlen <= 24:
            raise ValueError(f"{value} is a /{net.prefixlen}; a VPC CIDR must be /16 to /24 "
                             "(/24 leaves too few addresses for pods)")
        if not any(net.subnet_of(r) for r in PRIVATE_RANGES):
            raise ValueError(f"{value} is not in a private range (10/8, 172.16/12, "
                             "192.168/16, 100.64/10)")
        return value

    @field_validator("private_subnets", "public_subnets")
    @classmethod
    def _subnets_are_cidrs(cls, values: list[str] | None) -> list[str] | None:
        problems = []
        for i, value in enumerate(values or []):
            try:
                parse_cidr(value)
            except ValueError as exc:
                problems.append(f"[{i}] {exc}")
        if problems:
            raise ValueError("\n".join(problems))
        return values

    @field_validator("interface_endpoints")
    @classmethod
    def _endpoints_are_unique(cls, values: list[str]) -> list[str]:
        dupes = repeated(values)
        if dupes:
            raise ValueError(f"listed more than once: {', '.join(dupes)}")
        return values

    @model_validator(mode="after")
    def _layout_fits(self) -> NetworkConfig:
        problems: list[str] = []
        for key, given in (("privateSubnets", self.private_subnets),
                           ("publicSubnets", self.public_subnets)):
            if given is not None and len(given) != self.az_count:
                problems.append(f"{key} lists {len(given)} subnets; azCount is {self.az_count}, "
                                "so list exactly one per AZ")
        if problems:
            raise ValueError("\n".join(problems))
        try:
            layout = self.layout()
        except LayoutError as exc:
            raise ValueError(f"subnets do not fit: {exc}; use a larger cidr or smaller "
                             "privateSubnetPrefix/publicSubnetPrefix") from None
        vpc = ipaddress.ip_network(self.cidr)
        named = [(f"privateSubnets[{p.az_index}]", p.private) for p in layout]
        named += [(f"publicSubnets[{p.az_index}]", p.public) for p in layout]
        for name, cidr in named:
            if not ipaddress.ip_network(cidr).subnet_of(vpc):
                problems.append(f"{name} {cidr} is outside the VPC cidr {self.cidr}")
        problems += overlaps(named)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def layout(self) -> list[SubnetPair]:
        """The subnets of each AZ: explicit lists when given, otherwise carved from the CIDR."""
        carved = None
        if self.private_subnets is None or self.public_subnets is None:
            carved = default_layout(self.cidr, self.az_count, self.private_subnet_prefix,
                                    self.public_subnet_prefix)
        private = self.private_subnets or [p.private for p in carved or []]
        public = self.public_subnets or [p.public for p in carved or []]
        return [SubnetPair(i, private[i], public[i]) for i in range(self.az_count)]

    @property
    def nat_gateway_count(self) -> int:
        return self.az_count if self.nat == "per-az" else 1
