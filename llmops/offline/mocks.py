"""Offline stand-ins for AWS and Kubernetes: realistic ids, ARNs and invoke answers.

Mocked outputs are only what `new_resource` returns (no autonaming, no provider defaults),
so each resource gets its inputs echoed back plus the computed outputs the program reads.
IDs are derived from the resource name, so two plans of the same stack are identical.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import pulumi

from vocabulary.errors import LlmopsError

STAGE_KEY = re.compile(r"^(?P<prefix>.*)models/(?P<model>[^/]+)/stages/(?P<stage>[^/]+)\.json$")
MANIFEST_KEY = re.compile(r"^(?P<prefix>.*)models/(?P<model>[^/]+)/(?P<version>[^/]+)/manifest\.json$")

ACCOUNT_ID = "123456789012"

#: Type token -> AWS id prefix, as the real API returns them.
ID_PREFIXES = {
    "aws:ec2/vpc:Vpc": "vpc-", "aws:ec2/subnet:Subnet": "subnet-",
    "aws:ec2/internetGateway:InternetGateway": "igw-", "aws:ec2/natGateway:NatGateway": "nat-",
    "aws:ec2/eip:Eip": "eipalloc-", "aws:ec2/routeTable:RouteTable": "rtb-",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "rtbassoc-",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce-", "aws:ec2/securityGroup:SecurityGroup": "sg-",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg-",
    "aws:ec2/flowLog:FlowLog": "fl-", "aws:ec2/launchTemplate:LaunchTemplate": "lt-",
    "aws:ec2/securityGroupRule:SecurityGroupRule": "sgrule-",
}

#: Type token -> (service, ARN resource part; {name} is the physical name). Regional unless
#: the service is global (iam, s3).
ARN_SHAPES = {
    "aws:iam/role:Role": ("iam", "role/{name}"),
    "aws:iam/policy:Policy": ("iam", "policy/{name}"),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
        ("iam", "oidc-provider/oidc.eks.{region}.amazonaws.com/id/{hash}"),
    "aws:s3/bucket:Bucket": ("s3", "{name}"), "aws:s3/bucketV2:BucketV2": ("s3", "{name}"),
    "aws:kms/key:Key": ("kms", "key/{uuid}"), "aws:kms/alias:Alias": ("kms", "{name}"),
    "aws:cloudwatch/logGroup:LogGroup": ("logs", "log-group:{name}"),
    "aws:ec2/vpc:Vpc": ("ec2", "vpc/{id}"), "aws:ec2/subnet:Subnet": ("ec2", "subnet/{id}"),
    "aws:ec2/securityGroup:SecurityGroup": ("ec2", "security-group/{id}"),
    "aws:ec2/launchTemplate:LaunchTemplate": ("ec2", "launch-template/{id}"),
    "aws:eks/cluster:Cluster": ("eks", "cluster/{name}"),
    "aws:eks/nodeGroup:NodeGroup": ("eks", "nodegroup/{cluster}/{name}/{uuid}"),
    "aws:eks/addon:Addon": ("eks", "addon/{cluster}/{name}/{uuid}"),
    "aws:ecr/repository:Repository": ("ecr", "repository/{name}"),
    "aws:sns/topic:Topic": ("sns", "{name}"),
    "aws:sqs/queue:Queue": ("sqs", "{name}"),
    "aws:cloudwatch/eventRule:EventRule": ("events", "rule/{name}"),
    "aws:ssm/parameter:Parameter": ("ssm", "parameter{name}"),
}
GLOBAL_SERVICES = {"iam", "s3"}

#: Resources whose physical name Pulumi would autoname (name + random suffix) when not given.
NAME_INPUT = {"aws:s3/bucket:Bucket": "bucket", "aws:s3/bucketV2:BucketV2": "bucket",
              "aws:eks/cluster:Cluster": "name", "aws:eks/nodeGroup:NodeGroup": "nodeGroupName",
              "aws:ecr/repository:Repository": "name"}


def _digest(*parts: str, length: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _uuid(seed: str) -> str:
    h = _digest(seed, length=32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


OutputHook = Callable[[str, dict[str, Any], dict[str, Any]], dict[str, Any]]


class OfflineMocks(pulumi.runtime.Mocks):
    """Answers resource registrations and invokes like AWS would, deterministically.

    `output_hooks` maps a type token to a function (name, inputs, state) -> extra outputs,
    for resources whose computed outputs the program reads (cluster endpoint, OIDC issuer...).
    `call_hooks` maps an invoke token to a function (args) -> result.
    """

    def __init__(self, region: str, account_id: str = ACCOUNT_ID,
                 registry: dict[str, Any] | None = None,
                 registry_source: str = "stacks/offline-registry.yaml"):
        self.region = region
        self.account_id = account_id
        self.registry = registry or {}
        #: how messages name the file `registry` came from
        self.registry_source = registry_source
        self.output_hooks: dict[str, OutputHook] = dict(OUTPUT_HOOKS)
        #: org/project/stack -> (outputs, secret output names): what StackReferences read
        self.stack_references: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {}
        self.call_hooks: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "aws:index/getAvailabilityZones:getAvailabilityZones": self._zones,
            "aws:index/getCallerIdentity:getCallerIdentity": self._identity,
            "aws:index/getRegion:getRegion": lambda _a: {"name": self.region, "id": self.region,
                                                         "region": self.region},
            "aws:s3/getObject:getObject": self._registry_object,
            "aws:index/getPartition:getPartition": lambda _a: {
                "partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"},
        }

    # -- resources -----------------------------------------------------------------------
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        typ, name, inputs = args.typ, args.name, dict(args.inputs)
        if typ == "pulumi:pulumi:StackReference":
            return self._stack_reference(str(args.resource_id or inputs.get("name")))
        state = dict(inputs)
        physical = self._physical_name(typ, name, inputs)
        if typ in NAME_INPUT:
            state.setdefault(NAME_INPUT[typ], physical)
        state.setdefault("name", physical)
        resource_id = self._id(typ, name, physical)
        if typ in ARN_SHAPES:
            state.setdefault("arn", self.arn(typ, name, physical, resource_id, inputs))
        if typ.startswith("aws:"):
            state.setdefault("tagsAll", inputs.get("tags", {}))
        hook = self.output_hooks.get(typ)
        if hook:
            state.update(hook(name, inputs, {**state, "id": resource_id, "region": self.region,
                                             "accountId": self.account_id}))
        return resource_id, state

    def _stack_reference(self, stack_name: str) -> tuple[str, dict]:
        if stack_name not in self.stack_references:
            known = ", ".join(self.stack_references) or "none"
            raise LlmopsError(f"the offline plan has no stack {stack_name!r} to reference "
                              f"(known: {known}); llmops:platformStack must name the "
                              "environment's platform stack")
        outputs, secret_names = self.stack_references[stack_name]
        return stack_name, {"name": stack_name, "outputs": outputs,
                            "secretOutputNames": list(secret_names)}

    def _physical_name(self, typ: str, name: str, inputs: dict[str, Any]) -> str:
        given = inputs.get(NAME_INPUT.get(typ, "name"))
        return given if isinstance(given, str) and given else f"{name}-{_digest(typ, name, length=7)}"

    def _id(self, typ: str, name: str, physical: str) -> str:
        if typ == "aws:kms/key:Key":
            return _uuid(typ + name)
        if typ in ID_PREFIXES:
            return ID_PREFIXES[typ] + _digest(typ, name)
        return physical

    def arn(self, typ: str, name: str, physical: str, resource_id: str,
            inputs: dict[str, Any]) -> str:
        service, shape = ARN_SHAPES[typ]
        resource = shape.format(name=physical, id=resource_id, uuid=_uuid(typ + name),
                                region=self.region, hash=_digest(name, length=32).upper(),
                                cluster=inputs.get("clusterName", "cluster"))
        if service in GLOBAL_SERVICES:
            region, account = "", ("" if service == "s3" else self.account_id)
        else:
            region, account = self.region, self.account_id
        return f"arn:aws:{service}:{region}:{account}:{resource}"

    # -- invokes -------------------------------------------------------------------------
    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        hook = self.call_hooks.get(args.token)
        if hook is None:
            raise NotImplementedError(
                f"the offline plan has no answer for invoke {args.token}; "
                "add one to llmops/offline/mocks.py")
        return hook(dict(args.args)), []

    def _zones(self, _args: dict[str, Any]) -> dict[str, Any]:
        letters = "abcdef" if self.region == "us-east-1" else "abcd"
        names = [f"{self.region}{c}" for c in letters]
        prefix = "".join(part[:3] if i == 0 else part[:1] for i, part in
                         enumerate(self.region.split("-")))
        return {"names": names, "zoneIds": [f"{prefix}-az{i + 1}" for i in range(len(names))],
                "state": "available", "id": self.region}

    def _registry_object(self, args: dict[str, Any]) -> dict[str, Any]:
        """Answer registry reads (stage pointers, manifests) from the offline registry file."""
        bucket, key = args.get("bucket", ""), args.get("key", "")
        stage = STAGE_KEY.match(key)
        manifest = MANIFEST_KEY.match(key)
        match = stage or manifest
        entry = self.registry.get(match["model"], {}) if match else {}
        version = (entry.get("stages", {}).get(stage["stage"]) if stage
                   else manifest["version"] if manifest else None)
        facts = entry.get("versions", {}).get(version) if version else None
        if facts is None:
            raise LlmopsError(
                f"reading s3://{bucket}/{key}: NoSuchKey (the offline registry, "
                f"{self.registry_source}, has no such model, stage or version)")
        prefix, model = match["prefix"], match["model"]
        record = {"name": model, "version": version, "revision": facts["revision"],
                  "uri": f"s3://{bucket}/{prefix}models/{model}/{version}/files/"}
        if stage:
            record["stage"] = stage["stage"]
        return {"bucket": bucket, "key": key, "body": json.dumps(record),
                "contentType": "application/json", "id": f"{bucket}/{key}"}

    def _identity(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {"accountId": self.account_id, "id": self.account_id,
                "arn": f"arn:aws:iam::{self.account_id}:user/offline-plan",
                "userId": "AIDAOFFLINEPLAN"}


def _eks_cluster(name: str, inputs: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    region, token = state["region"], _digest(name, length=32).upper()
    vpc = {**inputs.get("vpcConfig", {}), "clusterSecurityGroupId": "sg-" + _digest("eks", name),
           "vpcId": "vpc-" + _digest("vpc", name)}
    return {"endpoint": f"https://{token}.gr7.{region}.eks.amazonaws.com",
            "certificateAuthority": {"data": "T0ZGTElORS1DQQ=="},
            "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{token}"}]}],
            "vpcConfig": vpc, "status": "ACTIVE", "platformVersion": "eks.1"}


def _node_group(name: str, inputs: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    group = inputs.get("nodeGroupName", name)
    return {"resources": [{"autoscalingGroups": [{"name": f"eks-{group}-{_uuid(group)}"}]}],
            "status": "ACTIVE"}


def _oidc_provider(name: str, inputs: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    url = str(inputs.get("url", "")).removeprefix("https://")
    return {"arn": f"arn:aws:iam::{state['accountId']}:oidc-provider/{url}"}


#: Computed outputs of resources the program reads, by type token.
OUTPUT_HOOKS: dict[str, OutputHook] = {
    "aws:eks/cluster:Cluster": _eks_cluster,
    "aws:eks/nodeGroup:NodeGroup": _node_group,
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": _oidc_provider,
    "aws:ec2/launchTemplate:LaunchTemplate": lambda _n, _i, _s: {"latestVersion": 1},
    "aws:kms/key:Key": lambda _n, _i, s: {"keyId": s["id"]},
    "aws:sqs/queue:Queue": lambda _n, _i, s: {
        "url": f"https://sqs.{s['region']}.amazonaws.com/{s['accountId']}/{s['name']}"},
    "aws:ecr/repository:Repository": lambda _n, i, s: {
        "repositoryUrl": f"{s['accountId']}.dkr.ecr.{s['region']}.amazonaws.com/{s['name']}"},
}
