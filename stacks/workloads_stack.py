"""The workloads stack: everything applied through the Kubernetes API (runs inside the VPC).

It reads the platform stack's outputs (vocabulary/contract.py) through `pulumi.StackReference`
and deploys: the gp3 StorageClass, Karpenter with the GPU NodePools and the NVIDIA device
plugin, KEDA and a model server per model (TGI or vLLM), the gateway with its load balancer
controller, monitoring, and Fluent Bit shipping container logs (the gateway's audit lines) to
CloudWatch. Run it after
the platform stack, once images are published and models registered (README).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.external_dns import ExternalDns, ExternalDnsArgs
from components.gateway import NAMESPACE as GATEWAY_NAMESPACE
from components.gateway import PORT as GATEWAY_PORT
from components.gateway import Gateway, GatewayArgs
from components.gateway_routes import routing_document
from components.gpu_nodes import GpuCapacity, GpuCapacityArgs
from components.image_cache import mirrored
from components.image_prepull import ImagePrepull
from components.log_shipping import LogShipping, LogShippingArgs
from components.metrics_server import MetricsServer
from components.model_server import RegistryAccess
from components.monitoring import NODE_AGENTS_NAMESPACE, Monitoring, MonitoringArgs
from components.network_policies import Namespaces, NetworkIsolation, NetworkIsolationArgs, address_ranges
from components.published_outputs import PublishedOutputs, PublishedOutputsArgs
from components.serving import KEDA_NAMESPACE, ModelServing, ModelServingArgs
from components.storage_class import EncryptedGp3
from components.tagging import register_default_tags
from vocabulary.config import ConfigError, PlatformConfig, load_workloads_config
from vocabulary.config.monitoring import read_monitoring_secrets
from vocabulary.contract import config_digest, platform_stack_name
from vocabulary.gpu_instances import gpu_instances
from vocabulary.outputs_schema import VERSION_OUTPUT, WORKLOADS


def check_platform_digest(deployed: str | None, expected: str, platform_stack: str) -> str:
    """Stop a workloads deploy whose platform was built from other configuration."""
    if deployed != expected:
        raise pulumi.RunError(
            f"the platform stack {platform_stack} was deployed from different configuration "
            f"(configDigest {deployed or 'missing'}, this environment file gives {expected}): "
            "run `pulumi up` on the platform stack first, then this one")
    return deployed


def build_workloads(cfg: PlatformConfig) -> dict[str, pulumi.Input]:
    """Compose the workloads from validated config and the platform's outputs."""
    if not cfg.gateway_api_keys:
        raise ConfigError(f"the workloads stack {cfg.environment!r}", [
            "llmops:gatewayApiKeys is not set; set it with `pulumi config set --secret "
            "llmops:gatewayApiKeys < keys.yaml` in stacks/workloads"])
    register_default_tags(cfg.resource_tags())
    platform_name = platform_stack_name(cfg, pulumi.get_organization())
    platform = pulumi.StackReference("platform", stack_name=platform_name)
    digest = platform.get_output("configDigest").apply(
        lambda d: check_platform_digest(d, config_digest(cfg), platform_name))
    roles = platform.require_output("workloadRoleArns")
    # every Kubernetes object waits for the digest check: nothing is applied to a platform
    # that is behind its configuration
    provider = k8s.Provider(
        "cluster", kubeconfig=pulumi.Output.all(platform.require_output("kubeconfig"), digest)
        .apply(lambda v: v[0]), enable_server_side_apply=True)
    in_cluster = pulumi.ResourceOptions(provider=provider)

    storage_class = EncryptedGp3("gp3", opts=in_cluster)
    # each engine's image, through the regional mirror when there is one
    engine_images = {"tgi": cfg.serving.tgi_image, "vllm": cfg.serving.vllm_image}
    images = platform.require_output("imageMirrors").apply(
        lambda mirrors: {e: mirrored(i, mirrors or {}) for e, i in engine_images.items()})
    karpenter = platform.require_output("karpenter")
    gpu = GpuCapacity("gpu", GpuCapacityArgs(
        pools=cfg.gpu_pools, cluster_name=cfg.cluster_name,
        cluster_endpoint=platform.require_output("clusterEndpoint"), karpenter=cfg.cluster.karpenter,
        device_plugin=cfg.cluster.nvidia_device_plugin, controller_role_arn=roles["karpenter"],
        interruption_queue=karpenter["interruptionQueue"], node_role_name=karpenter["nodeRoleName"],
        resource_tags=cfg.resource_tags(), models=cfg.models, traffic=cfg.cluster.traffic_nodes),
        opts=in_cluster)
    serving = ModelServing("serving", ModelServingArgs(
        serving=cfg.serving, models=cfg.models, pools=cfg.gpu_pools,
        access=RegistryAccess(
            bucket=platform.require_output("modelBucket"),
            registry_prefix=cfg.storage.registry_prefix, region=cfg.region,
            weights_image=platform.require_output("platformRepositoryUrl").apply(
                lambda url: f"{url}:{cfg.serving.weights_image_tag}")),
        reader_role_arns=roles["models"], images=images,
        gpu_capacity=(gpu.device_plugin, *gpu.node_pools),
        router_capacity=tuple(filter(None, [gpu.traffic_pool]))), opts=in_cluster)
    if cfg.images.prepull and cfg.models:
        used = sorted({m.engine for m in cfg.models})
        ImagePrepull("prepull", namespace=cfg.serving.namespace,
                     images=[images.apply(lambda i, e=e: i[e]) for e in used],
                     after=[serving.namespace], opts=in_cluster)
    gateway = Gateway("gateway", GatewayArgs(
        config=cfg.gateway, cluster_name=cfg.cluster_name, region=cfg.region,
        vpc_id=platform.require_output("vpcId"),
        image_repository=platform.require_output("platformRepositoryUrl"),
        routing_config=pulumi.Output.from_input(serving.routes).apply(
            lambda routes: routing_document(routes, cfg.models)),
        api_keys=pulumi.Output.secret(cfg.gateway_api_keys),
        load_balancer_controller_role_arn=roles["loadBalancerController"],
        resource_tags=cfg.resource_tags(), node_pool=gpu.traffic_pool), opts=in_cluster)
    # the gateway's HPA scales on CPU (metrics.k8s.io); its host resolves through external-dns
    MetricsServer("metrics", cfg.cluster.metrics_server, opts=in_cluster)
    ExternalDns("dns", ExternalDnsArgs(
        pin=cfg.gateway.external_dns, hosted_zone_id=cfg.gateway.hosted_zone_id,
        source_namespace=GATEWAY_NAMESPACE, owner_id=cfg.cluster_name, region=cfg.region,
        role_arn=roles["externalDns"], after=gateway.namespaces), opts=in_cluster)
    grafana_password, receiver_secrets = read_monitoring_secrets(cfg.monitoring)
    monitoring = Monitoring("monitoring", MonitoringArgs(
        config=cfg.monitoring, models=[m.name for m in cfg.models], instance_prices=gpu_instances(),
        engines={m.name: m.engine for m in cfg.models},
        grafana_admin_password=grafana_password, receiver_secrets=receiver_secrets,
        storage=[storage_class.storage_class]), opts=in_cluster)
    LogShipping("logs", LogShippingArgs(
        region=cfg.region, log_group=platform.require_output("applicationLogGroup"),
        role_arn=roles["logShipper"], after=[monitoring.node_agents]), opts=in_cluster)

    # after the namespaces only: a policy must never wait behind a model's rollout
    NetworkIsolation("isolation", NetworkIsolationArgs(
        namespaces=Namespaces(serving=cfg.serving.namespace, gateway=GATEWAY_NAMESPACE,
                              monitoring=cfg.monitoring.namespace, keda=KEDA_NAMESPACE,
                              node_agents=NODE_AGENTS_NAMESPACE),
        gateway_port=GATEWAY_PORT, vpc_cidr=cfg.network.cidr,
        **address_ranges(cfg.network, cfg.gateway.scheme),
        after=[*serving.namespaces, *gateway.namespaces, *monitoring.namespaces]), opts=in_cluster)

    outputs: dict[str, pulumi.Input] = {
        "environment": cfg.environment, "platformStack": platform_name,
        "gatewayUrl": gateway.url, "grafanaUrl": monitoring.grafana_url,
        "prometheusUrl": monitoring.prometheus_url,
        "modelRoutes": serving.routes, "modelVersions": serving.versions,
        "models": [m.name for m in cfg.models],
        # re-exported so an application stack reads one stack (vocabulary/outputs_schema.py)
        "kubeconfig": platform.require_output("kubeconfig"),
        "appReadPolicyArn": platform.require_output("appReadPolicyArn"),
        VERSION_OUTPUT: WORKLOADS.version,
    }
    for key, value in outputs.items():
        pulumi.export(key, value)
    # the region comes from the environment file, not from this stack's own aws:region
    PublishedOutputs("published", PublishedOutputsArgs(
        schema=WORKLOADS, project=cfg.project, environment=cfg.environment, values=outputs),
        opts=pulumi.ResourceOptions(provider=aws.Provider("aws", region=cfg.region)))
    return outputs


def main() -> None:
    build_workloads(load_workloads_config())
