"""Security groups and VPC flow logs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from policies.rules import (
    Finding,
    Resource,
    Rule,
    RuleContext,
    as_list,
    internet_wide,
    known,
    of_type,
    related,
)

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
ALL_PROTOCOLS = ("-1", "all")


def _ingress_rules(type_token: str, props: Mapping[str, Any]) -> Iterator[tuple[Any, Any, Any, list]]:
    """(protocol, fromPort, toPort, CIDRs) of every ingress rule the resource declares."""
    if type_token in (SECURITY_GROUP, DEFAULT_SECURITY_GROUP):
        for rule in as_list(props.get("ingress")):
            if isinstance(rule, Mapping):
                yield (rule.get("protocol"), rule.get("fromPort"), rule.get("toPort"),
                       as_list(rule.get("cidrBlocks")) + as_list(rule.get("ipv6CidrBlocks")))
    elif type_token == SG_RULE:
        if props.get("type") == "ingress":
            yield (props.get("protocol"), props.get("fromPort"), props.get("toPort"),
                   as_list(props.get("cidrBlocks")) + as_list(props.get("ipv6CidrBlocks")))
    elif type_token == SG_INGRESS_RULE:
        yield (props.get("ipProtocol"), props.get("fromPort"), props.get("toPort"),
               as_list(props.get("cidrIpv4")) + as_list(props.get("cidrIpv6")))


def _covers(protocol: Any, from_port: Any, to_port: Any, port: int) -> bool:
    if str(protocol).lower() in ALL_PROTOCOLS:
        return True
    if str(protocol).lower() not in ("tcp", "6"):
        return False
    if not (known(from_port) and known(to_port)):
        return False
    return int(from_port) <= port <= int(to_port)


def _describe(protocol: Any, from_port: Any, to_port: Any) -> str:
    if str(protocol).lower() in ALL_PROTOCOLS:
        return "of all traffic"
    ports = f"{from_port}" if from_port == to_port else f"{from_port}-{to_port}"
    return f"{protocol} {ports}"


def check_admin_ports(type_token: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    problems = []
    for protocol, from_port, to_port, cidrs in _ingress_rules(type_token, props):
        world = internet_wide(cidrs)
        if not world:
            continue
        exposed = [p for p in ctx["adminPorts"] if _covers(protocol, from_port, to_port, int(p))]
        if exposed:
            problems.append(f"ingress {_describe(protocol, from_port, to_port)} from {', '.join(world)} "
                            f"opens admin port(s) {', '.join(map(str, exposed))} to the internet")
    return problems


def check_flow_logs(resources: Sequence[Resource], _ctx: RuleContext) -> list[Finding]:
    vpcs = of_type(resources, VPC)
    flow_logs = of_type(resources, FLOW_LOG)
    findings = []
    for vpc in vpcs:
        if not any(related(f, vpc, vpcs, f.props.get("vpcId")) for f in flow_logs):
            findings.append(Finding(f"VPC {vpc.name!r} has no flow log", vpc.urn))
    return findings


RULES = [
    Rule(
        name="security-group-no-public-admin-ports",
        description="No security group opens SSH, RDP or Kubernetes admin ports (6443 API, 10250 "
        "kubelet) to 0.0.0.0/0, ::/0 or any CIDRs that together cover more than a /8 of the internet.",
        remediation="Restrict the ingress CIDR to the VPC or a bastion/VPN range, or use SSM Session "
        "Manager instead of SSH.",
        resource_types=(SECURITY_GROUP, DEFAULT_SECURITY_GROUP, SG_RULE, SG_INGRESS_RULE),
        check=check_admin_ports,
        config_schema={"adminPorts": {"type": "array", "items": {"type": "integer"},
                                      "default": [22, 3389, 6443, 10250]}},
    ),
    Rule(
        name="vpc-flow-logs-enabled",
        description="Every VPC has a flow log, so network forensics are possible after an incident.",
        remediation="Add aws.ec2.FlowLog(vpc_id=vpc.id, traffic_type='ALL', ...) to a CloudWatch log "
        "group or S3 bucket (components/network.py does this).",
        stack_check=check_flow_logs,
    ),
]
