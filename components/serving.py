"""Model serving: the namespace, KEDA, and one ModelServer per configured model (on its
engine, TGI or vLLM), with each model's versions resolved from the registry at deploy time."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.model_cache import CACHE_HOST_PATH
from components.model_release import resolve
from components.model_server import ModelServer, ModelServerArgs, RegistryAccess
from components.pod_security import KEDA_LEVEL, SERVING_BOUND, SERVING_LEVEL, namespace_labels
from components.router import PrefixRouter, PrefixRouterArgs, is_routed
from components.serving_admission import ServingAdmission
from vocabulary.config.gpu import GpuPool
from vocabulary.config.placement import pools_of_shape, shape_cache_reserve_gib
from vocabulary.config.serving import ModelConfig, ServingConfig

KEDA_REPO = "https://kedacore.github.io/charts"
KEDA_NAMESPACE = "keda"


@dataclass(frozen=True)
class ModelServingArgs:
    serving: ServingConfig
    models: list[ModelConfig]
    pools: list[GpuPool]
    access: RegistryAccess
    reader_role_arns: pulumi.Input[dict[str, str]]  # model -> IRSA role (platform stack)
    #: engine name -> its image (serving.tgiImage, serving.vllmImage), through the regional
    #: mirror when there is one
    images: pulumi.Input[dict[str, str]]
    #: the NodePools and device plugin (components/gpu_nodes.py) the model Deployments wait for
    gpu_capacity: tuple[pulumi.Resource, ...] = ()
    #: the NodePool the routers run on (the traffic pool), which their Deployments wait for
    router_capacity: tuple[pulumi.Resource, ...] = ()


def smallest_node(pools: list[GpuPool], shape: str) -> GpuPool:
    """The pool of `shape` with the smallest node: pods are sized to fit every candidate."""
    return min(pools_of_shape(pools, shape),
               key=lambda p: (p.smallest.memory_gib, p.smallest.vcpu))


class ModelServing(pulumi.ComponentResource):
    """Everything the model servers need in the cluster; `routes` is what the gateway routes by."""

    def __init__(self, name: str, args: ModelServingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:serving:ModelServing", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # the admission policy exists before the namespace that relaxes PSA to privileged
        admission = ServingAdmission(f"{name}-admission", (CACHE_HOST_PATH,), opts=child)
        self.namespace = serving_ns = k8s.core.v1.Namespace(f"{name}-ns", metadata=k8s.meta.v1.ObjectMetaArgs(
            name=args.serving.namespace, labels=namespace_labels(SERVING_LEVEL, bound=SERVING_BOUND)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[admission]))
        # our own Namespace (not the chart's create_namespace) so it carries PSA labels
        keda_ns = k8s.core.v1.Namespace(f"{name}-keda-ns", metadata=k8s.meta.v1.ObjectMetaArgs(
            name=KEDA_NAMESPACE, labels=namespace_labels(KEDA_LEVEL)), opts=child)
        #: what must exist before anything is applied into these namespaces (network policies)
        self.namespace = serving_ns
        self.namespaces = [serving_ns, keda_ns]
        keda = k8s.helm.v3.Release(
            f"{name}-keda", name="keda", namespace=KEDA_NAMESPACE, chart="keda",
            version=args.serving.keda_chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=KEDA_REPO),
            values={"nodeSelector": {"llmops.io/node-role": "system"},
                    "resources": {"operator": {"requests": {"cpu": "100m", "memory": "256Mi"},
                                               "limits": {"cpu": "1", "memory": "1Gi"}},
                                  "metricServer": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                                   "limits": {"cpu": "1", "memory": "512Mi"}}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[keda_ns]))

        role_arns = pulumi.Output.from_input(args.reader_role_arns)
        images = pulumi.Output.from_input(args.images)
        self.routes: dict[str, pulumi.Output] = {}
        self.versions: dict[str, pulumi.Output] = {}
        for model in args.models:
            refs = ({"blue": model.blue_green.blue, "green": model.blue_green.green}
                    if model.blue_green else {"stable": model.registry})
            if model.canary:
                refs["canary"] = model.canary.registry
            versions = {track: resolve(model.name, ref, args.access.bucket, args.access.registry_prefix,
                                       opts=pulumi.InvokeOptions(parent=self))
                        for track, ref in refs.items()}
            service = ModelServer(model.name, ModelServerArgs(
                model=model, node=smallest_node(args.pools, model.gpu_shape),
                cache_reserve_gib=shape_cache_reserve_gib(pools_of_shape(args.pools, model.gpu_shape)),
                serving=args.serving,
                versions=versions, access=args.access,
                reader_role_arn=role_arns.apply(lambda arns, m=model.name: arns[m]),
                image=images.apply(lambda i, e=model.engine: i[e]),
                namespace=serving_ns, crds=(keda,), gpu_capacity=args.gpu_capacity), opts=child)
            routers: dict[str, pulumi.Output[str]] = {}
            if is_routed(model):
                # a router per track, each selecting its own track's pods (components/router.py)
                urls = PrefixRouter(f"{model.name}-router", PrefixRouterArgs(
                    model=model, tracks=list(versions), namespace=args.serving.namespace,
                    image=args.access.weights_image, after=(serving_ns,),
                    node_capacity=args.router_capacity), opts=child).urls
                live = model.blue_green.active if model.blue_green else "stable"
                routers = {"stable": urls[live], **({"canary": urls["canary"]} if "canary" in urls else {})}
            self.routes[model.name] = pulumi.Output.all(
                stable=service.url, canary=service.canary_url or "", routers=routers).apply(
                lambda r, w=service.canary_weight: {"stable": r["stable"],
                                                    **({"canary": r["canary"], "canaryWeight": w}
                                                       if r["canary"] else {}),
                                                    **({"routers": r["routers"]} if r["routers"] else {})})
            self.versions[model.name] = pulumi.Output.all(*versions.values()).apply(
                lambda vs, tracks=list(versions): {t: {"version": v.version, "revision": v.revision,
                                                       "source": v.source}
                                                   for t, v in zip(tracks, vs, strict=True)})
        self.register_outputs({"routes": self.routes})
