"""CIDR maths for the VPC: pure functions, no Pulumi, so they are fast to test and to reuse
from config validation (an impossible layout fails before any resource exists)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPv4Net = ipaddress.IPv4Network


@dataclass(frozen=True)
class SubnetPair:
    """The two subnets of one availability zone."""

    az_index: int
    private: str
    public: str


class LayoutError(ValueError):
    """The requested subnets do not fit, or collide."""


def carve(vpc_cidr: str, count: int, prefix: int, start: IPv4Net | None = None) -> list[IPv4Net]:
    """The first `count` aligned /prefix blocks of `vpc_cidr`, after `start` if given."""
    vpc = ipaddress.ip_network(vpc_cidr)
    if prefix < vpc.prefixlen:
        raise LayoutError(f"a /{prefix} subnet is larger than the VPC {vpc_cidr}")
    blocks: list[IPv4Net] = []
    for block in vpc.subnets(new_prefix=prefix):
        if start is not None and int(block.network_address) <= int(start.broadcast_address):
            continue
        blocks.append(block)
        if len(blocks) == count:
            return blocks
    raise LayoutError(
        f"{count} x /{prefix} subnets do not fit in {vpc_cidr}"
        + (f" after {start}" if start is not None else "")
    )


def default_layout(
    vpc_cidr: str, az_count: int, private_prefix: int, public_prefix: int
) -> list[SubnetPair]:
    """Private subnets first (large, for pod IPs with the VPC CNI), public ones after them."""
    private = carve(vpc_cidr, az_count, private_prefix)
    public = carve(vpc_cidr, az_count, public_prefix, start=private[-1])
    return [SubnetPair(i, str(p), str(q)) for i, (p, q) in enumerate(zip(private, public, strict=True))]


def overlaps(named_cidrs: list[tuple[str, str]]) -> list[str]:
    """Every pair of overlapping CIDRs, described by the names the caller gave them."""
    nets = [(name, ipaddress.ip_network(cidr)) for name, cidr in named_cidrs]
    found = []
    for i, (name_a, net_a) in enumerate(nets):
        for name_b, net_b in nets[i + 1 :]:
            if net_a.overlaps(net_b):
                found.append(f"{name_a} {net_a} overlaps {name_b} {net_b}")
    return found
