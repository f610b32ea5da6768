"""Who may talk to whom under a set of Kubernetes NetworkPolicies: a small evaluator of the
networking.k8s.io/v1 semantics over recorded manifests (camelCase inputs).

Rules implemented (https://kubernetes.io/docs/concepts/services-networking/network-policies/):
- a pod is isolated for ingress (egress) when a policy in its namespace selects it and lists
  Ingress (Egress) in policyTypes (absent policyTypes: Ingress, plus Egress when egress rules
  exist); an isolated pod accepts only what some selecting policy's rule allows;
- a rule with no `from`/`to` matches every peer, with no `ports` every port;
- a peer's podSelector alone means pods of the policy's namespace, namespaceSelector alone
  every pod of the matching namespaces, both together pods matching both; ipBlock matches
  the address (minus `except`);
- traffic flows when the source's egress and the destination's ingress both allow it.
Namespaces carry `kubernetes.io/metadata.name` automatically, as the API server sets it.
The kubelet's probes from the pod's own node are not modelled: the VPC CNI always allows
the node's IP (aws/aws-network-policy-agent#65).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Pod:
    """A pod by namespace and labels; `ip` only matters for ipBlock peers."""

    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str | None = None
    named_ports: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class External:
    """An address outside the pod network (a load balancer ENI, S3, the API server)."""

    ip: str


Endpoint = Pod | External


@dataclass(frozen=True)
class Policy:
    namespace: str
    name: str
    spec: Mapping[str, Any]

    def types(self) -> set[str]:
        declared = self.spec.get("policyTypes")
        if declared:
            return set(declared)
        return {"Ingress", *(["Egress"] if self.spec.get("egress") else [])}


def policies_from(resources: Iterable[Any]) -> list[Policy]:
    """NetworkPolicies among recorded resources (RecordedResource or plan-JSON dicts)."""
    out = []
    for r in resources:
        type_token = r.get("type") if isinstance(r, Mapping) else r.type
        if type_token != NETWORK_POLICY:
            continue
        inputs = r.get("inputs") if isinstance(r, Mapping) else r.inputs
        meta = inputs.get("metadata") or {}
        out.append(Policy(meta.get("namespace") or "default", meta.get("name", ""), inputs.get("spec") or {}))
    return out


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist)."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        if (op == "In" and (not present or labels[key] not in values)) \
                or (op == "NotIn" and present and labels[key] in values) \
                or (op == "Exists" and not present) or (op == "DoesNotExist" and present):
            return False
    return True


def _in_block(ip: str | None, block: Mapping[str, Any]) -> bool:
    if ip is None:
        return False
    address = ipaddress.ip_address(ip)
    if address not in ipaddress.ip_network(block["cidr"]):
        return False
    return not any(address in ipaddress.ip_network(e) for e in block.get("except") or [])


def _peer_matches(peer: Mapping[str, Any], policy_ns: str, other: Endpoint,
                  namespaces: Mapping[str, Mapping[str, str]]) -> bool:
    if "ipBlock" in peer:
        return _in_block(other.ip, peer["ipBlock"])
    if not isinstance(other, Pod):
        return False  # pod and namespace selectors never match addresses outside the pod network
    ns_labels = {**namespaces.get(other.namespace, {}), NAME_LABEL: other.namespace}
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], ns_labels):
            return False
    elif other.namespace != policy_ns:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], other.labels)


def _port_matches(ports: Sequence[Mapping[str, Any]] | None, port: int, protocol: str,
                  target: Endpoint) -> bool:
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        wanted = p.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            named = target.named_ports if isinstance(target, Pod) else {}
            wanted = named.get(wanted, -1)
        end = p.get("endPort", wanted)
        if wanted <= port <= end:
            return True
    return False


def _direction_allows(policies: Sequence[Policy], pod: Pod, other: Endpoint, port: int,
                      protocol: str, namespaces: Mapping[str, Mapping[str, str]],
                      direction: str, target: Endpoint) -> bool:
    kind, rules_key, peers_key = (("Ingress", "ingress", "from") if direction == "ingress"
                                  else ("Egress", "egress", "to"))
    selecting = [p for p in policies if p.namespace == pod.namespace and kind in p.types()
                 and selects(p.spec.get("podSelector"), pod.labels)]
    if not selecting:
        return True  # not isolated in this direction
    for policy in selecting:
        for rule in policy.spec.get(rules_key) or []:
            peers = rule.get(peers_key)
            if peers and not any(_peer_matches(peer, policy.namespace, other, namespaces)
                                 for peer in peers):
                continue
            if _port_matches(rule.get("ports"), port, protocol, target):
                return True
    return False


def allowed(policies: Sequence[Policy], source: Endpoint, destination: Endpoint, port: int,
            protocol: str = "TCP", namespaces: Mapping[str, Mapping[str, str]] | None = None) -> bool:
    """May `source` open a connection to `destination` on `port`/`protocol`?"""
    namespaces = namespaces or {}
    if isinstance(source, Pod) and not _direction_allows(
            policies, source, destination, port, protocol, namespaces, "egress", destination):
        return False
    return not isinstance(destination, Pod) or _direction_allows(
        policies, destination, source, port, protocol, namespaces, "ingress", destination)


def default_denies_ingress(policies: Sequence[Policy], namespace: str) -> bool:
    """Does some policy in `namespace` select every pod for Ingress with no rule at all?"""
    return any(p.namespace == namespace and "Ingress" in p.types()
               and not (p.spec.get("podSelector") or {}).get("matchLabels")
               and not (p.spec.get("podSelector") or {}).get("matchExpressions")
               and not p.spec.get("ingress") for p in policies)
