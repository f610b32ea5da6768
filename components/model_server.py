"""One model on its engine (TGI or vLLM, components/engines/): service account with a
model-reader IRSA role, Deployment(s) whose pods read verified weights from the node-shared
model cache, Services, a disruption budget and a KEDA scaler on the engine's queue depth.
Releases: a canary track, or blue/green colours. Nothing here branches on the engine's name:
what differs (flags, ports, environment, writable directories, queue metric) is the engine's."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.engines import COMPONENT_LABEL, Engine, engine_of
from components.engines.pod import pod_resources, shm_size_gib, start_budgets
from components.gpu_nodes import GPU_SHAPE_LABEL, GPU_TAINT_KEY, capacity_spread
from components.model_cache import WEIGHTS_DIR, cache_pod
from components.model_release import ResolvedVersion
from components.pod_security import hardened_container, runtime_default_pod
from components.workload_roles import model_reader_account
from serving.registry.cache import cache_files_path
from vocabulary.config.gpu import GpuPool
from vocabulary.config.serving import ModelConfig, ServingConfig

MODEL_LABEL = "llmops.io/model"
TRACK_LABEL = "llmops.io/track"
VERSION_ANNOTATION = "llmops.io/model-version"
REVISION_ANNOTATION = "llmops.io/model-revision"
STAGE_ANNOTATION = "llmops.io/registry-stage"


@dataclass(frozen=True)
class RegistryAccess:
    """Where model weights live and how a pod gets to them (from storage and the cluster)."""

    bucket: pulumi.Input[str]
    registry_prefix: str
    region: str
    weights_image: pulumi.Input[str]


@dataclass(frozen=True)
class ModelServerArgs:
    """What one model deployment needs; built from typed config and other components' outputs."""

    model: ModelConfig
    node: GpuPool          # the smallest pool of the model's shape: what every pod must fit
    cache_reserve_gib: int  # free disk a weights fetch leaves on any node of the shape
    serving: ServingConfig
    versions: dict[str, pulumi.Output[ResolvedVersion]]  # track -> resolved registry version
    access: RegistryAccess
    reader_role_arn: pulumi.Input[str]  # IRSA role from the platform stack (WorkloadRoles)
    image: pulumi.Input[str]            # the engine's image, through the regional mirror if any
    #: what must exist first: the serving Namespace (every object) and the KEDA release that
    #: installs the ScaledObject CRD (the scalers); never the provider's retries
    namespace: pulumi.Resource | None = None
    crds: tuple[pulumi.Resource, ...] = ()
    #: what the pods need to get a GPU node at all: the NodePools and the device plugin
    gpu_capacity: tuple[pulumi.Resource, ...] = ()


def deployment_name(model: ModelConfig, track: str) -> str:
    """`<engine>-<model>[-<track>]`: the Deployment, its Service, budget and scaler."""
    return engine_of(model).deployment_name(model.name, track)


class ModelServer(pulumi.ComponentResource):
    """A model behind a stable Service name, with an optional canary or blue/green pair."""

    url: pulumi.Output[str]

    def __init__(self, name: str, args: ModelServerArgs, opts: pulumi.ResourceOptions | None = None):
        # the TGI-only component was llmops:serving:TgiService: the alias keeps its URNs
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            aliases=[pulumi.Alias(type_="llmops:serving:TgiService")]))
        super().__init__("llmops:serving:ModelServer", name, None, opts)
        model, ns = args.model, args.serving.namespace
        self._model, self._engine = model, engine_of(model)
        engine = self._engine
        in_ns = [args.namespace] if args.namespace is not None else []
        child = pulumi.ResourceOptions(parent=self, depends_on=in_ns)
        self._after_crds = pulumi.ResourceOptions(parent=self, depends_on=[*in_ns, *args.crds])
        self._in_ns = in_ns
        self._gpu_capacity = list(args.gpu_capacity)
        account = model_reader_account(model.name)
        k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata=k8s.meta.v1.ObjectMetaArgs(
                name=account, namespace=ns,
                annotations={"eks.amazonaws.com/role-arn": args.reader_role_arn}),
            automount_service_account_token=False, opts=child)

        self.services: dict[str, pulumi.Output[str]] = {}
        for track, version in args.versions.items():
            self._deployment(name, track, version, account, args)
            self._service(name, deployment_name(model, track), {TRACK_LABEL: track}, ns, child)
            self._disruption_budget(name, track, ns, child)
            self._scaler(name, track, args)
            self.services[track] = pulumi.Output.from_input(
                f"http://{deployment_name(model, track)}.{ns}.svc:{engine.http_port}")

        if model.blue_green:
            live = model.blue_green.active
            idle = "green" if live == "blue" else "blue"
            main = deployment_name(model, "stable")
            # flipping `active` in config re-points these two Services: the cut-over
            self._service(name, main, {TRACK_LABEL: live}, ns, child, suffix="active")
            self._service(name, f"{main}-preview", {TRACK_LABEL: idle}, ns, child, suffix="preview")
            self.url = pulumi.Output.from_input(f"http://{main}.{ns}.svc:{engine.http_port}")
        else:
            self.url = self.services["stable"]
        self.canary_url = self.services.get("canary")
        self.canary_weight = model.canary.weight if model.canary else 0
        self.engine = engine.name
        self.register_outputs({"url": self.url})

    def _labels(self, track: str) -> dict[str, str]:
        """The selector (immutable on a Deployment: never add to it)."""
        return {"app.kubernetes.io/name": self._engine.name, "app.kubernetes.io/part-of": "llmops",
                MODEL_LABEL: self._model.name, TRACK_LABEL: track}

    def _container(self, args: ModelServerArgs, local: pulumi.Output[str], budgets,
                   weights_mount: k8s.core.v1.VolumeMountArgs) -> k8s.core.v1.ContainerArgs:
        """The engine's container: its command line, environment, ports and writable dirs."""
        model, engine = args.model, self._engine
        probe = lambda **kw: k8s.core.v1.ProbeArgs(  # noqa: E731
            http_get=k8s.core.v1.HTTPGetActionArgs(path="/health", port="http"), **kw)
        ports = [k8s.core.v1.ContainerPortArgs(name="http", container_port=engine.http_port)]
        if engine.metrics_port:
            ports.append(k8s.core.v1.ContainerPortArgs(name="metrics", container_port=engine.metrics_port))
        return k8s.core.v1.ContainerArgs(
            name=engine.name, image=args.image, command=engine.command(),
            args=local.apply(lambda path: engine.args(model, path)),
            working_dir=engine.working_dir,
            env=[k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in engine.env(model).items()],
            ports=ports,
            resources=pod_resources(model, args.node.smallest),
            startup_probe=probe(period_seconds=10, failure_threshold=budgets.startup_probe_s // 10,
                                timeout_seconds=5),
            readiness_probe=probe(period_seconds=10, failure_threshold=3, timeout_seconds=5),
            liveness_probe=probe(period_seconds=30, failure_threshold=6, timeout_seconds=10),
            security_context=hardened_container(non_root_uid=engine.run_as_uid,
                                                read_only_root=engine.read_only_root),
            volume_mounts=[weights_mount,
                           k8s.core.v1.VolumeMountArgs(name="shm", mount_path="/dev/shm"),
                           *[k8s.core.v1.VolumeMountArgs(name=s.name, mount_path=s.path)
                             for s in engine.scratch]])

    def _deployment(self, name, track, version: pulumi.Output[ResolvedVersion], account,
                    args: ModelServerArgs) -> k8s.apps.v1.Deployment:
        model, ns = args.model, args.serving.namespace
        labels = self._labels(track)
        # what network policies and the policy pack select model servers by, on the pods
        pod_labels = {**labels, **COMPONENT_LABEL}
        # the verified copy the engine reads: <cache>/entries/<model>/<version>/<revision>/files
        local = version.apply(lambda v: cache_files_path(WEIGHTS_DIR, model.name, v.version, v.revision))
        budgets = start_budgets(model, args.node.smallest)
        access = args.access
        # line-rate, resumable, checksum-verified fetch into the node-shared cache, held for
        # the pod's life (components/model_cache.py)
        weights = cache_pod(model.name, version, image=access.weights_image, bucket=access.bucket,
                            registry_prefix=access.registry_prefix, region=access.region,
                            reserve_gib=args.cache_reserve_gib,
                            fetch_resources=budgets.fetch_resources)
        server = self._container(args, local, budgets, weights.server_mount)
        annotations = pulumi.Output.from_input(version).apply(lambda v: {
            VERSION_ANNOTATION: v.version, REVISION_ANNOTATION: v.revision, STAGE_ANNOTATION: v.source})
        # the shape's NodePools: Karpenter buys spot first, on-demand when spot is not there
        shape_affinity = k8s.core.v1.AffinityArgs(node_affinity=k8s.core.v1.NodeAffinityArgs(
            required_during_scheduling_ignored_during_execution=k8s.core.v1.NodeSelectorArgs(
                node_selector_terms=[k8s.core.v1.NodeSelectorTermArgs(match_expressions=[
                    k8s.core.v1.NodeSelectorRequirementArgs(
                        key=GPU_SHAPE_LABEL, operator="In", values=[model.gpu_shape])])])))
        # ScheduleAnyway: GPU capacity is scarce; a skewed replica beats a pending one
        spread = [k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1, topology_key=key, when_unsatisfiable="ScheduleAnyway",
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels))
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")] + [
            k8s.core.v1.TopologySpreadConstraintArgs(**c, label_selector=k8s.meta.v1.LabelSelectorArgs(
                match_labels=labels)) for c in capacity_spread(args.node, model.replicas.min)]
        volumes = [
            *weights.volumes,
            k8s.core.v1.VolumeArgs(name="shm", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                medium="Memory", size_limit=f"{shm_size_gib(model)}Gi")),
            *[k8s.core.v1.VolumeArgs(name=s.name, empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                medium="Memory" if s.memory else None, size_limit=f"{s.size_gib}Gi"))
              for s in self._engine.scratch]]
        pod_spec = k8s.core.v1.PodSpecArgs(
            service_account_name=account,
            termination_grace_period_seconds=self._engine.termination_grace_s,
            security_context=runtime_default_pod(),
            init_containers=weights.init_containers, containers=[server],
            tolerations=[k8s.core.v1.TolerationArgs(key=GPU_TAINT_KEY, operator="Exists",
                                                    effect="NoSchedule")],
            affinity=shape_affinity, topology_spread_constraints=spread, volumes=volumes)
        pod_annotations = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(self._engine.metrics_port or self._engine.http_port),
            "prometheus.io/path": "/metrics"}
        return k8s.apps.v1.Deployment(
            f"{name}-{track}",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=deployment_name(model, track), namespace=ns,
                                                labels=pod_labels, annotations=annotations),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=max(1, model.replicas.min),
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate", rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(
                        max_surge=1, max_unavailable=0)),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=pod_labels, annotations=pod_annotations),
                    spec=pod_spec)),
            # KEDA owns the replica count once the scaler exists. The engine waits for the
            # rollout as long as a cold start can take (node, image, weights, load), not 10 min.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*self._in_ns, *self._gpu_capacity], ignore_changes=["spec.replicas"],
                custom_timeouts=pulumi.CustomTimeouts(create=f"{budgets.await_s}s",
                                                      update=f"{budgets.await_s}s")))

    def _service(self, name, service_name, track_selector, ns, child, suffix=None) -> None:
        engine = self._engine
        selector = {"app.kubernetes.io/name": engine.name, MODEL_LABEL: self._model.name, **track_selector}
        ports = [k8s.core.v1.ServicePortArgs(name="http", port=engine.http_port, target_port="http")]
        if engine.metrics_port:
            ports.append(k8s.core.v1.ServicePortArgs(name="metrics", port=engine.metrics_port,
                                                     target_port="metrics"))
        k8s.core.v1.Service(
            f"{name}-svc-{suffix or track_selector[TRACK_LABEL]}",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=service_name, namespace=ns,
                                                labels={**selector, "app.kubernetes.io/part-of": "llmops"}),
            spec=k8s.core.v1.ServiceSpecArgs(type="ClusterIP", selector=selector, ports=ports),
            opts=child)

    def _disruption_budget(self, name, track, ns, child) -> None:
        # one voluntary disruption at a time; never blocks drains of single-replica dev models
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb-{track}",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=deployment_name(self._model, track), namespace=ns),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=self._labels(track))),
            opts=child)

    def _scaler(self, name, track, args: ModelServerArgs) -> None:
        """KEDA ScaledObject: the engine's queue depth per replica drives replicas; cron keeps
        known peaks."""
        model = args.model
        triggers = scaler_triggers(self._engine, model, track, args.serving)
        k8s.apiextensions.CustomResource(
            f"{name}-scaler-{track}", api_version="keda.sh/v1alpha1", kind="ScaledObject",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=deployment_name(model, track),
                                                namespace=args.serving.namespace),
            spec=scaled_object_spec(model, track, triggers),
            opts=self._after_crds)


def scaler_triggers(engine: Engine, model: ModelConfig, track: str, serving: ServingConfig) -> list[dict]:
    """The engine's queue gauge summed over the track's pods, per replica (AverageValue,
    explicit: KEDA 2.17's webhook refuses a fallback without it), plus the model's peaks."""
    query = (f'sum({engine.queue_metric}{{namespace="{serving.namespace}",'
             f'model="{model.name}",track="{track}"}})')
    triggers = [{"type": "prometheus", "metricType": "AverageValue", "metadata": {
        "serverAddress": serving.prometheus_url, "query": query,
        "threshold": str(model.queue_target), "ignoreNullValues": "true"}}]
    if wakes_from_zero(model, track):
        # at zero replicas the engine exports no queue: the gateway's gauge of requests it
        # holds for this model (llm_requests_waiting, while the routing document's coldStart
        # hold lasts) activates the scaler above KEDA's default activationThreshold of 0
        triggers.append({"type": "prometheus", "metricType": "AverageValue", "metadata": {
            "serverAddress": serving.prometheus_url,
            "query": f'sum(llm_requests_waiting{{model="{model.name}"}})',
            "threshold": str(model.queue_target), "ignoreNullValues": "true"}})
    triggers += [{"type": "cron", "metadata": {
        "timezone": s.timezone, "start": s.start, "end": s.end, "desiredReplicas": str(s.replicas)}}
        for s in model.schedules if track in ("stable", "blue", "green")]
    return triggers


def wakes_from_zero(model: ModelConfig, track: str) -> bool:
    """The track the gateway sends the model's traffic to may scale to zero (replicas.min 0,
    which llmops:serving.minReplicas allows only where the environment does): the stable
    track, or the live colour. Canaries keep one replica."""
    live = model.blue_green.active if model.blue_green else "stable"
    return model.replicas.min == 0 and track == live


def scaled_object_spec(model: ModelConfig, track: str, triggers: list[dict]) -> dict:
    minimum = model.replicas.min if track in ("stable", "blue", "green") else 1
    return {
        # by name, not by the Deployment's output: the scaler only needs to exist and must not
        # wait behind a model's (long) rollout
        "scaleTargetRef": {"name": deployment_name(model, track)},
        "minReplicaCount": minimum,
        "maxReplicaCount": model.replicas.max,
        "pollingInterval": 15,
        "cooldownPeriod": 600,
        # Prometheus unreachable (restart, upgrade): keep what runs, never fewer than the
        # floor, instead of freezing or scaling to the minimum
        "fallback": {"failureThreshold": 3, "replicas": max(1, minimum),
                     "behavior": "currentReplicasIfHigher"},
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
            "scaleUp": {"stabilizationWindowSeconds": 0,
                        "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]},
            # GPU pods are slow to come back: give traffic 10 minutes to return
            "scaleDown": {"stabilizationWindowSeconds": 600,
                          "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}]}}}},
        "triggers": triggers,
    }
