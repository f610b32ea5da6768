"""The Pulumi program: typed config in, the platform's components wired in order, outputs out.

`main()` is what `pulumi up` runs (via stacks/__main__.py) and what `llmops plan` runs under
mocks. It validates the whole config before the first resource is registered.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.cluster import Cluster, ClusterArgs
from components.cluster_autoscaling import ClusterAutoscaling, ClusterAutoscalingArgs
from components.gateway import Gateway, GatewayArgs
from components.gateway_routes import routing_document
from components.gpu_instances import gpu_instances
from components.gpu_nodes import GpuNodePools, GpuNodePoolsArgs
from components.monitoring import Monitoring, MonitoringArgs
from components.network import Network, NetworkArgs
from components.published_outputs import PublishedOutputs
from components.serving import ModelServing, ModelServingArgs
from components.storage import ModelStorage, ModelStorageArgs
from components.tagging import register_default_tags
from components.tgi import RegistryAccess
from stacks.config import PlatformConfig, load_from_runtime
from stacks.config.monitoring import read_monitoring_secrets

#: Outputs mirrored to SSM for non-Pulumi consumers (never secrets such as kubeconfig).
PUBLISHED_OUTPUTS = ("clusterName", "vpcId", "modelBucket", "registryPrefix", "gatewayUrl",
                     "modelRoutes", "modelVersions")


def build_platform(cfg: PlatformConfig) -> None:
    """Compose the platform from validated config and export what applications consume."""
    register_default_tags(cfg.resource_tags())
    zones = aws.get_availability_zones(state="available")
    identity = aws.get_caller_identity()
    if len(zones.names) < cfg.network.az_count:
        raise pulumi.RunError(
            f"llmops:network.azCount is {cfg.network.az_count} but {cfg.region} offers only "
            f"{len(zones.names)} available zones: {', '.join(zones.names)}")

    network = Network("network", NetworkArgs(
        config=cfg.network, availability_zones=list(zones.names),
        cluster_name=cfg.cluster_name, region=cfg.region, account_id=identity.account_id))

    cluster = Cluster("cluster", ClusterArgs(
        config=cfg.cluster, cluster_name=cfg.cluster_name, region=cfg.region,
        account_id=identity.account_id, private_subnet_ids=network.private_subnet_ids,
        resource_tags=cfg.resource_tags()))
    GpuNodePools("gpu", GpuNodePoolsArgs(
        pools=cfg.gpu_pools, cluster_name=cfg.cluster_name, cluster=cluster.name,
        node_role_arn=cluster.node_role_arn, subnet_ids=network.private_subnet_ids,
        resource_tags=cfg.resource_tags()))
    ClusterAutoscaling("scaling", ClusterAutoscalingArgs(
        cluster_name=cfg.cluster_name, region=cfg.region, account_id=identity.account_id,
        oidc_provider_arn=cluster.oidc_provider_arn, oidc_issuer_url=cluster.oidc_issuer_url,
        pools=cfg.gpu_pools, autoscaler=cfg.cluster.cluster_autoscaler,
        device_plugin=cfg.cluster.nvidia_device_plugin),
        opts=pulumi.ResourceOptions(provider=cluster.provider))

    storage = ModelStorage("storage", ModelStorageArgs(
        config=cfg.storage, name_prefix=cfg.cluster_name, account_id=identity.account_id,
        region=cfg.region))
    serving = ModelServing("serving", ModelServingArgs(
        serving=cfg.serving, models=cfg.models, pools=cfg.gpu_pools, access=RegistryAccess(
            bucket=storage.bucket_name, bucket_arn=storage.bucket_arn, key_arn=storage.key_arn,
            registry_prefix=cfg.storage.registry_prefix, region=cfg.region,
            weights_image=storage.gateway_repository_url.apply(
                lambda url: f"{url}:{cfg.serving.weights_image_tag}"),
            oidc_provider_arn=cluster.oidc_provider_arn, oidc_issuer_url=cluster.oidc_issuer_url)),
        opts=pulumi.ResourceOptions(provider=cluster.provider))

    gateway = Gateway("gateway", GatewayArgs(
        config=cfg.gateway, cluster_name=cfg.cluster_name, region=cfg.region,
        account_id=identity.account_id, vpc_id=network.vpc_id,
        image_repository=storage.gateway_repository_url,
        routing_config=pulumi.Output.from_input(serving.routes).apply(
            lambda routes: routing_document(routes, cfg.models)),
        api_keys=pulumi.Output.secret(cfg.gateway_api_keys),
        oidc_provider_arn=cluster.oidc_provider_arn, oidc_issuer_url=cluster.oidc_issuer_url),
        opts=pulumi.ResourceOptions(provider=cluster.provider))
    grafana_password, receiver_secrets = read_monitoring_secrets(cfg.monitoring)
    monitoring = Monitoring("monitoring", MonitoringArgs(
        config=cfg.monitoring, models=[m.name for m in cfg.models], instance_prices=gpu_instances(),
        grafana_admin_password=grafana_password, receiver_secrets=receiver_secrets),
        opts=pulumi.ResourceOptions(provider=cluster.provider))

    outputs = {
        "environment": cfg.environment, "region": cfg.region,
        "vpcId": network.vpc_id, "privateSubnetIds": network.private_subnet_ids,
        "publicSubnetIds": network.public_subnet_ids,
        "clusterName": cluster.name, "clusterEndpoint": cluster.endpoint,
        "oidcProviderArn": cluster.oidc_provider_arn, "kubeconfig": cluster.kubeconfig,
        "modelBucket": storage.bucket_name, "modelKeyArn": storage.key_arn,
        "registryPrefix": cfg.storage.registry_prefix,
        "registryPublisherPolicyArn": storage.registry_publisher_policy_arn,
        "gatewayRepositoryUrl": storage.gateway_repository_url, "gatewayUrl": gateway.url,
        "grafanaUrl": monitoring.grafana_url, "prometheusUrl": monitoring.prometheus_url,
        "modelRoutes": serving.routes, "modelVersions": serving.versions,
    }
    for key, value in outputs.items():
        pulumi.export(key, value)
    PublishedOutputs("published", cfg.project, cfg.environment,
                     {key: outputs[key] for key in PUBLISHED_OUTPUTS})


def main() -> None:
    build_platform(load_from_runtime())
