"""The platform stack: everything created through the AWS API (runs anywhere).

Network -> Cluster (+ add-ons, GPU node role) -> Karpenter's interruption queue -> storage
(bucket, registry, ECR) -> IRSA roles for the workloads -> the in-VPC CI runner -> outputs
(+ SSM). The workloads stack (stacks/workloads_stack.py) reads the outputs named in vocabulary/contract.py.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.ci_runner import CiRunner, CiRunnerArgs, build_log_group_name
from components.cluster import Cluster, ClusterArgs, control_plane_log_group_name
from components.container_logs import (
    ContainerLogs,
    ContainerLogsArgs,
    application_log_group_name,
    container_log_group_names,
)
from components.image_cache import ImageCache
from components.interruption_queue import InterruptionQueue
from components.log_encryption import LogEncryptionKey, LogEncryptionKeyArgs
from components.network import Network, NetworkArgs, flow_log_group_name
from components.published_outputs import (
    OutputsReadPolicy,
    OutputsReadPolicyArgs,
    PublishedOutputs,
    PublishedOutputsArgs,
)
from components.storage import ModelStorage, ModelStorageArgs
from components.tagging import register_default_tags
from components.workload_roles import WorkloadRoles, WorkloadRolesArgs
from vocabulary.config import PlatformConfig, load_from_runtime
from vocabulary.contract import config_digest
from vocabulary.outputs_schema import PLATFORM, SCHEMAS, VERSION_OUTPUT, parameter_name


def build_platform(cfg: PlatformConfig) -> dict[str, pulumi.Input]:
    """Compose the platform from validated config; export and return its outputs."""
    register_default_tags(cfg.resource_tags())
    zones = aws.get_availability_zones(state="available")
    identity = aws.get_caller_identity()
    if len(zones.names) < cfg.network.az_count:
        raise pulumi.RunError(
            f"llmops:network.azCount is {cfg.network.az_count} but {cfg.region} offers only "
            f"{len(zones.names)} available zones: {', '.join(zones.names)}")

    runner_project = f"{cfg.cluster_name}-workloads"
    # one key for every log group the platform creates, its policy naming exactly those groups
    log_key = LogEncryptionKey("logs", LogEncryptionKeyArgs(
        cluster_name=cfg.cluster_name, region=cfg.region, account_id=identity.account_id,
        log_group_names=[control_plane_log_group_name(cfg.cluster_name), flow_log_group_name("network"),
                         *container_log_group_names(cfg.cluster_name),
                         build_log_group_name(runner_project)]))
    network = Network("network", NetworkArgs(
        config=cfg.network, availability_zones=list(zones.names),
        cluster_name=cfg.cluster_name, region=cfg.region, account_id=identity.account_id,
        log_key_arn=log_key.arn))
    cluster = Cluster("cluster", ClusterArgs(
        config=cfg.cluster, cluster_name=cfg.cluster_name, region=cfg.region,
        account_id=identity.account_id, private_subnet_ids=network.private_subnet_ids,
        resource_tags=cfg.resource_tags(), log_key_arn=log_key.arn))
    container_logs = ContainerLogs("container-logs", ContainerLogsArgs(
        cluster_name=cfg.cluster_name, retention_days=cfg.cluster.log_retention_days,
        kms_key_arn=log_key.arn))
    # GPU capacity is Karpenter's (workloads stack); the AWS side is its queue and roles
    interruptions = InterruptionQueue("interruptions", cfg.cluster_name)
    images = ImageCache("images", credential_arn=cfg.images.ghcr_credential_arn, region=cfg.region,
                        account_id=identity.account_id, node_role_name=cluster.gpu_node_role_name)
    storage = ModelStorage("storage", ModelStorageArgs(
        config=cfg.storage, name_prefix=cfg.cluster_name, account_id=identity.account_id,
        region=cfg.region))
    roles = WorkloadRoles("workload-roles", WorkloadRolesArgs(
        cluster_name=cfg.cluster_name, region=cfg.region, account_id=identity.account_id,
        oidc_provider_arn=cluster.oidc_provider_arn, oidc_issuer_url=cluster.oidc_issuer_url,
        serving_namespace=cfg.serving.namespace, models=cfg.models,
        bucket_arn=storage.bucket_arn, key_arn=storage.key_arn,
        registry_prefix=cfg.storage.registry_prefix,
        log_groups=[application_log_group_name(cfg.cluster_name)],
        gpu_node_role_arn=cluster.gpu_node_role_arn, interruption_queue_arn=interruptions.arn,
        hosted_zone_id=cfg.gateway.hosted_zone_id, gateway_host=cfg.gateway.host))
    runner = CiRunner("ci-runner", CiRunnerArgs(
        config=cfg.ci, project_name=runner_project, cluster_name=cfg.cluster_name,
        cluster=cluster.name, cluster_security_group_id=cluster.security_group_id,
        region=cfg.region, account_id=identity.account_id, vpc_id=network.vpc_id,
        private_subnet_ids=network.private_subnet_ids, bucket_arn=storage.bucket_arn,
        key_arn=storage.key_arn, registry_prefix=cfg.storage.registry_prefix,
        # the runner publishes the workloads' mirror only, never the platform's
        parameter_prefix=parameter_name(cfg.project, cfg.environment, "workloads", ""),
        log_retention_days=cfg.cluster.log_retention_days, log_key_arn=log_key.arn))

    outputs: dict[str, pulumi.Input] = {
        "environment": cfg.environment, "region": cfg.region,
        "vpcId": network.vpc_id, "privateSubnetIds": network.private_subnet_ids,
        "publicSubnetIds": network.public_subnet_ids,
        "clusterName": cluster.name, "clusterEndpoint": cluster.endpoint,
        "oidcProviderArn": cluster.oidc_provider_arn, "kubeconfig": cluster.kubeconfig,
        "modelBucket": storage.bucket_name, "modelKeyArn": storage.key_arn,
        "registryPrefix": cfg.storage.registry_prefix,
        "registryPublisherPolicyArn": storage.registry_publisher_policy_arn,
        "platformRepositoryUrl": storage.gateway_repository_url,
        "workloadRoleArns": roles.arns, "imageMirrors": images.mirrors,
        "karpenter": {"interruptionQueue": interruptions.name, "nodeRoleName": cluster.gpu_node_role_name},
        "applicationLogGroup": container_logs.application_log_group,
        "ciRunnerRoleArn": runner.role_arn, "ciRunsOn": runner.runs_on,
        "configDigest": config_digest(cfg),
        VERSION_OUTPUT: PLATFORM.version,
        # the platform owns the read policy of both stacks' mirrors, so the in-VPC runner
        # needs no IAM write access
        "appReadPolicyArn": OutputsReadPolicy("outputs-read", OutputsReadPolicyArgs(
            schemas=tuple(SCHEMAS.values()), project=cfg.project, environment=cfg.environment,
            region=cfg.region, account_id=identity.account_id, key_arn=storage.key_arn,
            policy_name=f"{cfg.cluster_name}-outputs-read")).arn,
    }
    for key, value in outputs.items():
        pulumi.export(key, value)
    PublishedOutputs("published", PublishedOutputsArgs(
        schema=PLATFORM, project=cfg.project, environment=cfg.environment, values=outputs,
        key_arn=storage.key_arn))
    return outputs


def main() -> None:
    build_platform(load_from_runtime())
