"""Which Ingress hosts the external-dns release publishes, as the `gateway-host-resolves` deploy
check reads its chart values (external-dns 1.21): a host it does not watch gets no record and
the gateway's name never resolves. One small Ingress per case, no plan."""

from __future__ import annotations

import pytest

from llmops.offline.deploy_checks.cluster_services import _watches
from llmops.offline.recorder import RecordedResource

HOST = "api.llm.example.com"


def ingress(labels: dict | None = None, annotations: dict | None = None,
            namespace: str = "gateway") -> RecordedResource:
    metadata = {"namespace": namespace, "labels": labels or {}, "annotations": annotations or {}}
    return RecordedResource(urn="urn:ingress", type="kubernetes:networking.k8s.io/v1:Ingress",
                            name="gateway", parent=None, custom=True,
                            inputs={"metadata": metadata, "spec": {"rules": [{"host": HOST}]}})


RELEASE = RecordedResource(urn="urn:dns", type="kubernetes:helm.sh/v3:Release", name="dns",
                           parent=None, custom=True, inputs={"namespace": "external-dns"})


def watches(values: dict, target: RecordedResource | None = None, host: str = HOST) -> bool:
    return _watches(values, RELEASE, target or ingress(), host)


@pytest.mark.parametrize(("selector", "labels", "published"), [
    (None, {}, True),
    ("dns=public", {"dns": "public"}, True),
    ("dns==public", {"dns": "public"}, True),
    ("dns=public", {"dns": "private"}, False),
    ("dns=public", {}, False),
    ("dns=public,tier=edge", {"dns": "public", "tier": "edge"}, True),
    ("dns=public,tier=edge", {"dns": "public"}, False),
    ("dns=public, tier = edge", {"dns": "public", "tier": "edge"}, True),
    # forms this reader does not evaluate count as not selecting (the check then fails loudly)
    ("dns!=private", {"dns": "public"}, False),
    ("dns", {"dns": "public"}, False), ("dns", {"dns": ""}, False),
])
def test_a_label_filter_publishes_only_ingresses_whose_labels_match_every_term(selector, labels,
                                                                              published):
    assert watches({"labelFilter": selector}, ingress(labels=labels)) is published


def test_the_annotation_filter_is_read_from_annotations_not_labels():
    values = {"annotationFilter": "dns=public"}
    assert watches(values, ingress(annotations={"dns": "public"})) is True
    assert watches(values, ingress(labels={"dns": "public"})) is False


@pytest.mark.parametrize(("values", "published"), [
    ({}, True),
    ({"provider": "aws"}, True), ({"provider": {"name": "aws"}}, True),
    ({"provider": "cloudflare"}, False), ({"provider": {"name": "google"}}, False),
    ({"sources": ["service"]}, False), ({"sources": "ingress"}, True),
    ({"sources": ["service", "ingress"]}, True),
])
def test_only_the_aws_provider_watching_ingresses_publishes_the_host(values, published):
    assert watches(values) is published


def test_a_namespaced_release_watches_its_source_namespace_or_else_its_own():
    assert watches({"namespaced": True, "sourceNamespace": "gateway"}) is True
    assert watches({"namespaced": True, "sourceNamespace": "other"}) is False
    assert watches({"namespaced": True}) is False  # its own namespace: external-dns
    assert watches({"namespaced": True}, ingress(namespace="external-dns")) is True
    assert watches({"namespaced": False, "sourceNamespace": "other"}) is True


@pytest.mark.parametrize(("filters", "published"), [
    ([], True), (["example.com"], True), ([".example.com"], True), (HOST, True),
    (["llm.example.com", "other.org"], True), (["other.org"], False),
    (["ample.com"], False),  # a suffix of the name, not of a label boundary
    (["api.llm.example.com.au"], False),
])
def test_a_domain_filter_matches_the_host_or_a_parent_domain_on_a_label_boundary(filters, published):
    assert watches({"domainFilters": filters}) is published
