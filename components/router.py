"""Prefix-cache-aware routing per model track: vllm-router 0.1.17 (the vLLM project's router,
https://github.com/vllm-project/router, PyPI `vllm-router`), carried by the platform image
(serving/Dockerfile pins it), as a Deployment per track that discovers the track's ready pods
through the Kubernetes API and sends each request to the replica whose prefix cache already
holds its prompt (policy `cache_aware`: a prefix tree per worker of the prompt's token ids, which
the router asks every worker's render API for on each request, src/backend/preprocess.rs
`prepare_http_token_inputs`; a prompt no worker holds goes to the least-loaded one). vLLM serves
that API with --enable-scale-out (components/engines/vllm.py renders it for routed models); TGI
3.3.7 has none, so a TGI model's router uses `consistent_hash` instead, on a key of the prompt's
leading text that the gateway sets (docs/routing.md "TGI models"). Measured in
bench/routing.py, chosen in docs/routing.md.

Only for models that may run more than one replica (replicas.max > 1): with one replica there
is nothing to choose. Each track (stable | canary | blue | green) has its own router selecting
only that track's pods, so the gateway's canary split stays the gateway's decision and a canary
request never lands on a stable replica. The router is reachable from the gateway only
(components/network_policies.py), so auth, budgets, cache, PII and audit stay in front of it.

Discovery (vllm-router 0.1.17 `src/service_discovery.rs`): a watch on pods matching
`--selector` in `--service-discovery-namespace`; a pod becomes a worker when it is Running and
Ready, and leaves when it is deleted. Hence a Role in the serving namespace with pods
get/list/watch, nothing else. Unhealthy workers leave rotation by the router's own health
checks (`--health-check-interval-secs`), and a request to a dead worker is retried on another.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.engines import engine_of
from components.nodepools import TRAFFIC_NODES, TRAFFIC_TOLERATION
from components.pod_security import hardened_container, runtime_default_pod
from vocabulary.config.serving import ModelConfig

#: the PyPI release the platform image installs (serving/Dockerfile, pyproject's extras)
VLLM_ROUTER_VERSION = "0.1.17"
ROUTER_NAME = "vllm-router"
ROUTER_COMPONENT = {"app.kubernetes.io/component": "router"}
ROUTER_PORT = 8100
#: vllm-router's Prometheus listener (`--prometheus-port`, its default 29000)
ROUTER_METRICS_PORT = 29000
#: the platform image's non-root user (serving/Dockerfile)
PLATFORM_UID = 10001
#: how often the router probes each worker's /health; a worker failing three probes in a row
#: (`--health-failure-threshold`, default 3) leaves rotation until it passes two again
HEALTH_CHECK_INTERVAL_S = 10
#: a worker that fails this many attempts in a row leaves rotation (its circuit breaker opens)
#: for BREAKER_OPEN_S, then is probed again. The release's default, 10, equals two requests'
#: five attempts each: cache_aware retries a dead replica's prompts on that same replica, so
#: with 10 the first two requests after a replica dies fail; with 3 the first request's
#: third attempt already goes to a survivor (tests/routing/test_router_failures.py)
BREAKER_FAILURES, BREAKER_OPEN_S = 3, 10
MODEL_LABEL, TRACK_LABEL = "llmops.io/model", "llmops.io/track"  # components/model_server.py


def is_routed(model: ModelConfig) -> bool:
    """A model gets prefix-aware routing when it may run more than one replica."""
    return model.replicas.max > 1


def router_name(model: str, track: str) -> str:
    """`router-<model>[-<track>]`: the Deployment, Service and budget of one track's router."""
    return f"router-{model}" if track == "stable" else f"router-{model}-{track}"


def worker_selector(model: ModelConfig, track: str) -> dict[str, str]:
    """The labels of the track's model-server pods (components/model_server.py's selector)."""
    return {"app.kubernetes.io/name": engine_of(model).name, MODEL_LABEL: model.name, TRACK_LABEL: track}


#: engines whose servers answer the render API `cache_aware` keys on (vLLM with
#: --enable-scale-out, components/engines/vllm.py). TGI 3.3.7 has none: its router uses
#: `consistent_hash` on the `x-session-id` the gateway derives from the prompt's leading text
#: (`routerAffinity: prompt-prefix`, serving/gateway/affinity.py; docs/routing.md "TGI models")
RENDERING_ENGINES = frozenset({"vllm"})
PROMPT_PREFIX = "prompt-prefix"  # serving/gateway/affinity.py's setting


def policy_of(model: ModelConfig) -> str:
    """The router's `--policy` for the model's engine (both names from `vllm-router --help`)."""
    return "cache_aware" if model.engine in RENDERING_ENGINES else "consistent_hash"


def affinity_of(model: ModelConfig) -> str | None:
    """The gateway's `routerAffinity` for the model's routed tracks: the prompt-prefix key for
    a router that hashes it, none for one that keys on token ids."""
    return PROMPT_PREFIX if policy_of(model) == "consistent_hash" else None


def router_args(*, policy: str | None = None, workers: list[str] | None = None,
                model: ModelConfig | None = None, track: str = "stable", namespace: str = "") -> list[str]:
    """vllm-router's flags (checked against `vllm-router --help` of 0.1.17): the routing
    policy (the model's engine's, `policy_of`, unless named) at the release's defaults (the ones
    bench/routing.py measures), and either static `workers` (the bench) or Kubernetes
    discovery of the track's ready pods (the cluster)."""
    policy = policy or (policy_of(model) if model is not None else "cache_aware")
    flags = ["--policy", policy, "--health-check-interval-secs", str(HEALTH_CHECK_INTERVAL_S),
             "--cb-failure-threshold", str(BREAKER_FAILURES), "--cb-timeout-duration-secs",
             str(BREAKER_OPEN_S)]
    if workers is not None:
        return [*flags, "--worker-urls", *workers, "--worker-startup-check-interval", "1"]
    if model is None or not namespace:
        raise ValueError("router_args needs static workers, or a model and its namespace for discovery")
    selector = [f"{k}={v}" for k, v in worker_selector(model, track).items()]
    return [*flags, "--host", "0.0.0.0", "--port", str(ROUTER_PORT),
            "--prometheus-host", "0.0.0.0", "--prometheus-port", str(ROUTER_METRICS_PORT),
            "--service-discovery", "--service-discovery-namespace", namespace,
            "--service-discovery-port", str(engine_of(model).http_port), "--selector", *selector]


def router_labels(model: str, track: str) -> dict[str, str]:
    """The router pods' labels; the Deployment selects on all of them (never add to it)."""
    return {"app.kubernetes.io/name": ROUTER_NAME, "app.kubernetes.io/part-of": "llmops",
            **ROUTER_COMPONENT, MODEL_LABEL: model, TRACK_LABEL: track}


@dataclass(frozen=True)
class PrefixRouterArgs:
    model: ModelConfig
    tracks: list[str]                   # the model's tracks: stable [+ canary] | blue + green
    namespace: str
    image: pulumi.Input[str]            # the platform image (carries vllm-router)
    after: tuple[pulumi.Resource, ...] = ()  # the serving Namespace
    #: what the router pods need to be scheduled (the traffic NodePool, components/gpu_nodes.py):
    #: the Deployments' rollout waits would otherwise run out while Karpenter is not up yet
    node_capacity: tuple[pulumi.Resource, ...] = ()


class PrefixRouter(pulumi.ComponentResource):
    """One model's routers, one per track; `urls` maps each track to its router Service."""

    urls: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: PrefixRouterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:serving:PrefixRouter", name, None, opts)
        model, ns = args.model, args.namespace
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.after))
        account = f"router-{model.name}"
        meta = lambda n, **kw: k8s.meta.v1.ObjectMetaArgs(  # noqa: E731
            name=n, namespace=ns, labels={"app.kubernetes.io/part-of": "llmops", MODEL_LABEL: model.name},
            **kw)
        # the router watches pods through the API server: read-only, this namespace only
        k8s.core.v1.ServiceAccount(f"{name}-sa", metadata=meta(account), opts=child)
        k8s.rbac.v1.Role(f"{name}-role", metadata=meta(account), rules=[k8s.rbac.v1.PolicyRuleArgs(
            api_groups=[""], resources=["pods"], verbs=["get", "list", "watch"])], opts=child)
        k8s.rbac.v1.RoleBinding(
            f"{name}-binding", metadata=meta(account),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role",
                                             name=account),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=account, namespace=ns)], opts=child)
        self.urls = {}
        for track in args.tracks:
            self._track(name, model, track, ns, account, args.image, child, pulumi.ResourceOptions(
                parent=self, depends_on=[*args.after, *args.node_capacity]))
            self.urls[track] = pulumi.Output.from_input(
                f"http://{router_name(model.name, track)}.{ns}.svc:{ROUTER_PORT}")
        self.register_outputs({"urls": self.urls})

    def _track(self, name: str, model: ModelConfig, track: str, ns: str, account: str,
               image: pulumi.Input[str], child: pulumi.ResourceOptions,
               rollout: pulumi.ResourceOptions) -> None:
        labels, object_name = router_labels(model.name, track), router_name(model.name, track)
        probe = lambda **kw: k8s.core.v1.ProbeArgs(  # noqa: E731
            # /liveness answers while the process serves; readiness must not follow the
            # workers' health, or a model scaled to zero would leave its router unready and
            # the rollout waiting (the gateway's cold-start hold covers a router with no workers)
            http_get=k8s.core.v1.HTTPGetActionArgs(path="/liveness", port="http"), **kw)
        container = k8s.core.v1.ContainerArgs(
            name="router", image=image, command=[ROUTER_NAME],
            args=router_args(model=model, track=track, namespace=ns),
            ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=ROUTER_PORT),
                   k8s.core.v1.ContainerPortArgs(name="metrics", container_port=ROUTER_METRICS_PORT)],
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": "250m", "memory": "256Mi"}, limits={"cpu": "2", "memory": "1Gi"}),
            readiness_probe=probe(period_seconds=5, failure_threshold=3, timeout_seconds=3),
            liveness_probe=probe(period_seconds=15, failure_threshold=4, timeout_seconds=5),
            security_context=hardened_container(non_root_uid=PLATFORM_UID, read_only_root=True))
        replicas = 2 if model.replicas.min >= 2 else 1
        spread = [k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1, topology_key=key, when_unsatisfiable="ScheduleAnyway",
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels))
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")]
        k8s.apps.v1.Deployment(
            f"{name}-{track}",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=ns, labels=labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate", rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                        max_surge=1, max_unavailable=0)),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=account, automount_service_account_token=True,
                        security_context=runtime_default_pod(),
                        node_selector=dict(TRAFFIC_NODES), tolerations=[TRAFFIC_TOLERATION],
                        termination_grace_period_seconds=30,
                        topology_spread_constraints=spread, containers=[container]))),
            opts=rollout)
        k8s.core.v1.Service(
            f"{name}-svc-{track}",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=ns, labels=labels),
            spec=k8s.core.v1.ServiceSpecArgs(type="ClusterIP", selector=labels, ports=[
                k8s.core.v1.ServicePortArgs(name="http", port=ROUTER_PORT, target_port="http")]),
            opts=child)
        # one router down at a time; with one replica the budget never blocks a node drain
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb-{track}",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=ns, labels=labels),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels)),
            opts=child)


def router_pod_monitor_spec(namespace: str) -> dict:
    """Scrape every router (one PodMonitor for all), labelled by model and track like the
    engines' own series, job `vllm-router` (the alerts and dashboard select by it)."""
    return {
        "namespaceSelector": {"matchNames": [namespace]},
        "selector": {"matchLabels": {"app.kubernetes.io/name": ROUTER_NAME, **ROUTER_COMPONENT}},
        "podMetricsEndpoints": [{
            "port": "metrics", "path": "/metrics", "interval": "15s",
            "relabelings": [
                {"targetLabel": "job", "replacement": ROUTER_NAME},
                {"sourceLabels": ["__meta_kubernetes_pod_label_llmops_io_model"], "targetLabel": "model"},
                {"sourceLabels": ["__meta_kubernetes_pod_label_llmops_io_track"], "targetLabel": "track"},
            ]}],
    }
