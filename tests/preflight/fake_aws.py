"""Fakes of what moto lacks, answering as the real services do on the wire:

- Service Quotas: moto 5 serves only the `vpc` service's quotas; `ec2` quotas are answered
  from `EC2_QUOTAS` in the real `{"Quota": {...}}` shape (and NoSuchResourceException
  otherwise, as moto does). `serve_ec2_quotas` installs it into moto's backend.
- CodeConnections: not in moto at all; a real botocore client with botocore's Stubber.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.stub import Stubber
from moto.servicequotas.models import ServiceQuotasBackend

#: quota code -> vCPUs, what the fake Service Quotas answers for service `ec2`
EC2_QUOTAS: dict[str, float] = {}
_QUOTA_NAMES = {"L-DB2E81BA": "Running On-Demand G and VT instances",
                "L-3819A6DF": "All G and VT Spot Instance Requests",
                "L-417A185B": "Running On-Demand P instances",
                "L-7212CCBC": "All P Spot Instance Requests"}
_moto_get_service_quota = ServiceQuotasBackend.get_service_quota


def _get_service_quota(self: ServiceQuotasBackend, service_code: str, quota_code: str) -> dict[str, Any]:
    if service_code == "ec2" and quota_code in EC2_QUOTAS:
        return {"ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
                "QuotaArn": f"arn:aws:servicequotas:{self.region_name}:{self.account_id}:ec2/{quota_code}",
                "QuotaCode": quota_code, "QuotaName": _QUOTA_NAMES[quota_code],
                "Value": EC2_QUOTAS[quota_code], "Unit": "None", "Adjustable": True, "GlobalQuota": False}
    return _moto_get_service_quota(self, service_code, quota_code)


def serve_ec2_quotas(on: bool) -> None:
    ServiceQuotasBackend.get_service_quota = (  # type: ignore[method-assign]
        _get_service_quota if on else _moto_get_service_quota)


def stubbed_connection(region: str, arn: str, status: str) -> tuple[Any, Stubber]:
    """A CodeConnections client that answers GetConnection for `arn` with `status`, once."""
    client = boto3.client("codeconnections", region_name=region)
    stubber = Stubber(client)
    stubber.add_response("get_connection", {"Connection": {
        "ConnectionName": "github", "ConnectionArn": arn, "ProviderType": "GitHub",
        "OwnerAccountId": arn.split(":")[4], "ConnectionStatus": status}}, {"ConnectionArn": arn})
    stubber.activate()
    return client, stubber


def image_manifest() -> str:
    return json.dumps({"schemaVersion": 2,
                       "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                       "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                  "size": 7023, "digest": "sha256:" + "a" * 64}, "layers": []})
