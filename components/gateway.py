"""The gateway in the cluster: its Deployment (non-root, read-only root), routing config in
a ConfigMap, API keys in a Secret, Service, HPA, PDB, and an HTTPS Ingress through the AWS
Load Balancer Controller (installed here, pinned, with its own IRSA role)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.nodepools import TRAFFIC_NODES, TRAFFIC_TOLERATION
from components.pod_security import GATEWAY_LEVEL, namespace_labels
from components.workload_roles import LOAD_BALANCER_CONTROLLER_ACCOUNT
from vocabulary.config.gateway import GatewayConfig

NAMESPACE = "llm-gateway"
NAME = "llm-gateway"
PORT = 8000
CONFIG_DIR = "/etc/llm-gateway"
LBC_REPO = "https://aws.github.io/eks-charts"
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
#: Streams may run this long; the ALB idle timeout and the pod's drain window match it.
STREAM_SECONDS = 300
#: Time for the ALB to stop sending new requests to a terminating pod before it stops listening.
PRE_STOP_SECONDS = 15
#: Per-process caps (serving/gateway/server.py): open client connections, and requests in
#: flight; beyond either a client gets 503 with Retry-After. The pod spec has no ulimit field
#: (core/v1 Container), so the process raises its own soft RLIMIT_NOFILE at start to
#: connections + in-flight + headroom, up to the hard limit the container runtime sets, and
#: lowers its connection cap (with a warning) if that hard limit is smaller.
MAX_CONNECTIONS = 4096
MAX_INFLIGHT = 1024
#: The controller adds a readiness gate to pods in namespaces with this label, so a rollout
#: waits until the ALB reports the new pod healthy before the old one goes.
READINESS_GATE_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"
CONFIG_CHECKSUM = "llmops.io/config-checksum"


@dataclass(frozen=True)
class GatewayArgs:
    config: GatewayConfig
    cluster_name: str
    region: str
    vpc_id: pulumi.Input[str]
    image_repository: pulumi.Input[str]
    routing_config: pulumi.Input[str]   # the gateway's YAML config (models -> backends)
    api_keys: pulumi.Input[str]         # secret: the key file (hashed keys -> allowed models)
    load_balancer_controller_role_arn: pulumi.Input[str]  # IRSA role from the platform stack
    resource_tags: dict[str, str]       # cost tags for the load balancers the controller creates
    #: the NodePool the gateway's pods need (components/gpu_nodes.py traffic_pool): its rollout
    #: waits for it, not for Karpenter's releases to come up within the rollout's own await
    node_pool: pulumi.Resource | None = None


class Gateway(pulumi.ComponentResource):
    """The LLM gateway and the load balancer in front of it."""

    url: pulumi.Output[str]

    def __init__(self, name: str, args: GatewayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:gateway:Gateway", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        controller = self._load_balancer_controller(name, args, child)

        namespace = k8s.core.v1.Namespace(f"{name}-ns", metadata=k8s.meta.v1.ObjectMetaArgs(
            name=NAMESPACE, labels={**namespace_labels(GATEWAY_LEVEL),
                                    READINESS_GATE_LABEL: "enabled"}), opts=child)
        self.namespaces = [namespace]
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        labels = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "llmops"}
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=k8s.meta.v1.ObjectMetaArgs(name=NAME, namespace=NAMESPACE,
                                                                  labels=labels),
            data={"config.yaml": args.routing_config}, opts=in_ns)
        keys = k8s.core.v1.Secret(
            f"{name}-keys", metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{NAME}-keys",
                                                                namespace=NAMESPACE, labels=labels),
            type="Opaque", string_data={"keys.yaml": pulumi.Output.secret(args.api_keys)}, opts=in_ns)

        probe = lambda path, **kw: k8s.core.v1.ProbeArgs(  # noqa: E731
            http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port="http"), **kw)
        container = k8s.core.v1.ContainerArgs(
            name="gateway",
            image=pulumi.Output.concat(args.image_repository, ":", cfg.image_tag),
            command=["llmops", "gateway", "--config", f"{CONFIG_DIR}/config.yaml",
                     "--host", "0.0.0.0", "--port", str(PORT),
                     # on SIGTERM /ready fails, new requests get 503 with Retry-After and
                     # streams may finish, within the pod's grace period
                     "--drain-seconds", str(STREAM_SECONDS),
                     "--max-connections", str(MAX_CONNECTIONS), "--max-inflight", str(MAX_INFLIGHT)],
            ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=PORT)],
            resources={"requests": {"cpu": "500m", "memory": "512Mi"},
                       "limits": {"cpu": "2", "memory": "1Gi"}},
            # /ready fails first when the process drains; /health (liveness) stays up
            readiness_probe=probe("/ready", period_seconds=5, failure_threshold=2),
            # keep serving while the ALB deregisters the pod, then drain in-flight streams
            lifecycle=k8s.core.v1.LifecycleArgs(pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                sleep=k8s.core.v1.SleepActionArgs(seconds=PRE_STOP_SECONDS))),
            liveness_probe=probe("/health", period_seconds=10, failure_threshold=6),
            security_context=k8s.core.v1.SecurityContextArgs(
                run_as_non_root=True, run_as_user=10001, allow_privilege_escalation=False,
                read_only_root_filesystem=True, capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")),
            volume_mounts=[k8s.core.v1.VolumeMountArgs(name="config", mount_path=CONFIG_DIR,
                                                       read_only=True),
                           k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")])
        config_volume = k8s.core.v1.VolumeArgs(
            name="config", projected=k8s.core.v1.ProjectedVolumeSourceArgs(sources=[
                k8s.core.v1.VolumeProjectionArgs(config_map=k8s.core.v1.ConfigMapProjectionArgs(
                    name=config_map.metadata.name)),
                k8s.core.v1.VolumeProjectionArgs(secret=k8s.core.v1.SecretProjectionArgs(
                    name=keys.metadata.name))]))
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=NAME, namespace=NAMESPACE, labels=labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=cfg.replicas.min,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    # the gateway reads its routing at start: a changed route (a canary added or
                    # removed) rolls the pods, as a changed image would
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels, annotations={
                        CONFIG_CHECKSUM: pulumi.Output.from_input(args.routing_config).apply(
                            lambda text: hashlib.sha256(text.encode()).hexdigest())}),
                    spec=k8s.core.v1.PodSpecArgs(
                        automount_service_account_token=False,
                        termination_grace_period_seconds=PRE_STOP_SECONDS + STREAM_SECONDS + 15,
                        node_selector=dict(TRAFFIC_NODES), tolerations=[TRAFFIC_TOLERATION],
                        containers=[container],
                        volumes=[config_volume, k8s.core.v1.VolumeArgs(
                            name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="64Mi"))],
                        topology_spread_constraints=[k8s.core.v1.TopologySpreadConstraintArgs(
                            max_skew=1, topology_key="topology.kubernetes.io/zone",
                            when_unsatisfiable="ScheduleAnyway",
                            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels))]))),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace, *filter(None, [args.node_pool])],
                                        ignore_changes=["spec.replicas"]))
        service = k8s.core.v1.Service(
            f"{name}-svc", metadata=k8s.meta.v1.ObjectMetaArgs(name=NAME, namespace=NAMESPACE, labels=labels),
            spec=k8s.core.v1.ServiceSpecArgs(type="ClusterIP", selector=labels, ports=[
                k8s.core.v1.ServicePortArgs(name="http", port=80, target_port="http")]), opts=in_ns)
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa", metadata=k8s.meta.v1.ObjectMetaArgs(name=NAME, namespace=NAMESPACE),
            spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
                scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                    api_version="apps/v1", kind="Deployment", name=deployment.metadata.name),
                min_replicas=cfg.replicas.min, max_replicas=cfg.replicas.max,
                metrics=[k8s.autoscaling.v2.MetricSpecArgs(
                    type="Resource", resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                        name="cpu", target=k8s.autoscaling.v2.MetricTargetArgs(
                            type="Utilization", average_utilization=70)))]),
            opts=in_ns)
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb", metadata=k8s.meta.v1.ObjectMetaArgs(name=NAME, namespace=NAMESPACE),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                min_available=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels)),
            opts=in_ns)
        k8s.networking.v1.Ingress(
            f"{name}-ingress", metadata=k8s.meta.v1.ObjectMetaArgs(
                name=NAME, namespace=NAMESPACE, annotations={
                    "alb.ingress.kubernetes.io/scheme": cfg.scheme,
                    "alb.ingress.kubernetes.io/target-type": "ip",
                    "alb.ingress.kubernetes.io/listen-ports": '[{"HTTPS":443}]',
                    "alb.ingress.kubernetes.io/certificate-arn": cfg.certificate_arn,
                    "alb.ingress.kubernetes.io/ssl-policy": TLS_POLICY,
                    "alb.ingress.kubernetes.io/healthcheck-path": "/health",
                    # streams can be long: keep idle connections open for 5 minutes
                    "alb.ingress.kubernetes.io/load-balancer-attributes":
                        f"idle_timeout.timeout_seconds={STREAM_SECONDS}",
                    "alb.ingress.kubernetes.io/target-group-attributes":
                        # in-flight streams may finish while the target deregisters
                        f"deregistration_delay.timeout_seconds={STREAM_SECONDS}"}),
            spec=k8s.networking.v1.IngressSpecArgs(
                ingress_class_name="alb",
                tls=[k8s.networking.v1.IngressTLSArgs(hosts=[cfg.host])],
                rules=[k8s.networking.v1.IngressRuleArgs(
                    host=cfg.host, http=k8s.networking.v1.HTTPIngressRuleValueArgs(paths=[
                        k8s.networking.v1.HTTPIngressPathArgs(
                            path="/", path_type="Prefix",
                            backend=k8s.networking.v1.IngressBackendArgs(
                                service=k8s.networking.v1.IngressServiceBackendArgs(
                                    name=service.metadata.name,
                                    port=k8s.networking.v1.ServiceBackendPortArgs(name="http"))))]))]),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace, controller]))
        self.url = pulumi.Output.from_input(f"https://{cfg.host}")
        self.register_outputs({"url": self.url})

    def _load_balancer_controller(self, name, args: GatewayArgs, child) -> k8s.helm.v3.Release:
        namespace = LOAD_BALANCER_CONTROLLER_ACCOUNT[0]
        return k8s.helm.v3.Release(
            f"{name}-lbc", name="aws-load-balancer-controller", namespace=namespace,
            chart="aws-load-balancer-controller", version=args.config.load_balancer_controller_chart,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=LBC_REPO),
            values=load_balancer_controller_values(args), opts=child)


def load_balancer_controller_values(args: GatewayArgs) -> dict:
    """Chart values. The controller tags what it creates with `elbv2.k8s.aws/cluster` itself
    and refuses to start when `defaultTags` names a reserved key, so defaultTags carries only
    the stack's cost tags. The Service mutator webhook is off: this platform exposes nothing
    through Services of type LoadBalancer, and with the webhook on (failurePolicy Fail) a
    controller outage would reject every Service created in the cluster."""
    return {"clusterName": args.cluster_name, "region": args.region, "vpcId": args.vpc_id,
            "serviceAccount": {"create": True, "name": LOAD_BALANCER_CONTROLLER_ACCOUNT[1],
                               "annotations": {"eks.amazonaws.com/role-arn":
                                               args.load_balancer_controller_role_arn}},
            "nodeSelector": {"llmops.io/node-role": "system"},
            "defaultTags": dict(args.resource_tags),
            "enableServiceMutatorWebhook": False,
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                          "limits": {"cpu": "500m", "memory": "512Mi"}}}
