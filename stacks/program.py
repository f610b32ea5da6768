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
from stacks.config import PlatformConfig, load_from_runtime
from stacks.config.monitoring import read_monitoring_secrets


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
        serving=cfg.serving, models=cfg.models, pools=cfg.gpu_pools, bucket=storage.bucket_name,
        bucket_arn=storage.bucket_arn, key_arn=storage.key_arn,
        registry_prefix=cfg.storage.registry_prefix, region=cfg.region,
        weights_image=storage.gateway_repository_url.apply(
            lambda url: f"{url}:{cfg.serving.weights_image_tag}"),
        oidc_provider_arn=cluster.oidc_provider_arn, oidc_issuer_url=cluster.oidc_issuer_url),
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

    pulumi.export("environment", cfg.environment)
    pulumi.export("region", cfg.region)
    pulumi.export("vpcId", network.vpc_id)
    pulumi.export("privateSubnetIds", network.private_subnet_ids)
    pulumi.export("publicSubnetIds", network.public_subnet_ids)
    pulumi.export("clusterName", cluster.name)
    pulumi.export("clusterEndpoint", cluster.endpoint)
    pulumi.export("oidcProviderArn", cluster.oidc_provider_arn)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("modelBucket", storage.bucket_name)
    pulumi.export("modelKeyArn", storage.key_arn)
    pulumi.export("registryPrefix", cfg.storage.registry_prefix)
    pulumi.export("registryPublisherPolicyArn", storage.registry_publisher_policy_arn)
    pulumi.export("gatewayRepositoryUrl", storage.gateway_repository_url)
    pulumi.export("gatewayUrl", gateway.url)
    pulumi.export("grafanaUrl", monitoring.grafana_url)
    pulumi.export("prometheusUrl", monitoring.prometheus_url)
    pulumi.export("modelRoutes", serving.routes)
    pulumi.export("modelVersions", serving.versions)
    PublishedOutputs("published", cfg.project, cfg.environment, {
        "clusterName": cluster.name, "vpcId": network.vpc_id, "modelBucket": storage.bucket_name,
        "registryPrefix": cfg.storage.registry_prefix, "gatewayUrl": gateway.url,
        "modelRoutes": serving.routes,
        "modelVersions": serving.versions})


def main() -> None:
    build_platform(load_from_runtime())
