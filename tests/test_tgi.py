"""Model servers as rendered for each stack (TGI here, vLLM in test_vllm.py): flags, GPUs,
probes, placement, scaling, releases."""

from __future__ import annotations

import kubernetes_validate
import pytest

from components.engines import TGI, flags_of
from components.engines.pod import NODE_PROVISION_S, start_budgets
from llmops.offline import crd_schema
from llmops.offline.manifests import manifests, write_manifests
from llmops.offline.plan import run_plan
from tests.conftest import STACKS
from vocabulary.config import ConfigError
from vocabulary.gpu_instances import gpu_instances

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
#: Custom resources (kind -> apiVersion, the fields their operators require).
CRD_REQUIRED = {
    "ScaledObject": ("keda.sh/v1alpha1", lambda spec: spec["scaleTargetRef"]["name"] and all(
        {"type", "metadata"} <= set(t) for t in spec["triggers"])),
    "PodMonitor": ("monitoring.coreos.com/v1", lambda spec: spec["selector"] and all(
        "port" in e for e in spec["podMetricsEndpoints"])),
    "ServiceMonitor": ("monitoring.coreos.com/v1", lambda spec: spec["selector"] and all(
        "port" in e for e in spec["endpoints"])),
    "PrometheusRule": ("monitoring.coreos.com/v1", lambda spec: all(
        g["name"] and all(("alert" in r or "record" in r) and r["expr"] for r in g["rules"])
        for g in spec["groups"])),
}
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"


def _deployment(plan, name):
    found = [d for d in plan.of_type(DEPLOYMENT) if d.inputs["metadata"]["name"] == name]
    assert len(found) == 1, [d.inputs["metadata"]["name"] for d in plan.of_type(DEPLOYMENT)]
    return found[0].inputs


def _pod(deployment):
    return deployment["spec"]["template"]["spec"]


def _flag(args, flag):
    return args[args.index(flag) + 1]


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_object_validates_against_the_cluster_schema(plans, stack):
    plan = plans[stack]
    version = plan.config.cluster.version
    objects = manifests(plan.resources)
    assert objects
    for manifest in objects:
        if crd_schema.knows(manifest):  # Karpenter's kinds: the pinned release's CRD schema
            assert crd_schema.problems(manifest) == [], manifest["metadata"]["name"]
            continue
        if manifest["kind"] in CRD_REQUIRED:  # no OpenAPI schema offline: check required fields
            api_version, check = CRD_REQUIRED[manifest["kind"]]
            assert manifest["apiVersion"] == api_version
            assert check(manifest["spec"]), manifest["metadata"]["name"]
            continue
        kubernetes_validate.validate(manifest, version, strict=True)


def test_tgi_runs_with_the_exact_launcher_flags_from_config():
    plan = run_plan("prod", overrides={"llmops:models.1.engine": "tgi"})
    tgi = _pod(_deployment(plan, "tgi-qwen-2-5-32b"))["containers"][0]
    args = tgi["args"]
    assert tgi["image"] == "ghcr.io/huggingface/text-generation-inference:3.3.7"
    # the verified copy in the weights cache: model / version / revision
    assert _flag(args, "--model-id") == (
        "/data/models/entries/qwen-2-5-32b/2025-09-20/5ede1c97bbab6ce5cda5812749b4c0bdf79b18dd/files")
    assert _flag(args, "--num-shard") == "4"
    assert _flag(args, "--quantize") == "awq" and "--dtype" not in args
    assert _flag(args, "--max-input-tokens") == "8192"
    assert _flag(args, "--max-total-tokens") == "16384"
    assert _flag(args, "--max-batch-prefill-tokens") == "16384"
    assert _flag(args, "--usage-stats") == "off"
    assert _flag(args, "--prometheus-port") == "9000"
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in tgi["env"]
    assert {"name": "metrics", "containerPort": 9000} in tgi["ports"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_tgi_flag_exists_in_the_pinned_release(plans, stack):
    """Each flag of each rendered TGI container is a long option of v3.3.7's launcher
    (components/engines/data/tgi-3.3.7.flags, from launcher/src/main.rs at that tag)."""
    known = TGI.known_flags()
    containers = [c for d in plans[stack].of_type(DEPLOYMENT) for c in _pod(d.inputs)["containers"]
                  if c["name"] == "tgi"]
    assert containers
    for container in containers:
        assert set(flags_of(container["args"])) <= known, set(flags_of(container["args"])) - known


def test_the_tgi_flag_list_catches_a_flag_the_launcher_does_not_have():
    assert {"--max-input-tokens", "--prometheus-port", "--usage-stats"} <= TGI.known_flags()
    assert "--max-num-seqs" not in TGI.known_flags()  # vLLM's, not TGI's


def test_gpu_limit_equals_shards_and_cpu_memory_come_from_the_instance(plans):
    tgi = _pod(_deployment(plans["prod"], "tgi-llama-3-8b"))["containers"][0]
    # 1 shard on prod's 24gib-x1 pool, whose smallest type is a g5.2xlarge (1 GPU, 8 vCPU, 32 GiB):
    # its allocatable after the GPU node DaemonSets' budget, minus the pod's sidecar
    # (components/allocatable.py)
    assert tgi["resources"]["limits"] == {"cpu": "7200m", "memory": "28160Mi", "nvidia.com/gpu": "1"}
    assert tgi["resources"]["requests"] == tgi["resources"]["limits"]
    big = _pod(_deployment(plans["prod"], "vllm-qwen-2-5-32b"))["containers"][0]
    assert big["resources"]["limits"]["nvidia.com/gpu"] == "4"


def test_shared_memory_is_a_memory_backed_empty_dir(plans):
    pod = _pod(_deployment(plans["prod"], "vllm-qwen-2-5-32b"))
    shm = next(v for v in pod["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "shm", "mountPath": "/dev/shm"} in mounts


def test_probes_give_slow_loading_models_minutes_not_seconds(plans):
    deployment = _deployment(plans["prod"], "tgi-llama-3-8b")
    tgi = _pod(deployment)["containers"][0]
    startup = tgi["startupProbe"]
    assert startup["httpGet"] == {"path": "/health", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    assert tgi["readinessProbe"]["httpGet"]["path"] == "/health"
    assert tgi["livenessProbe"]["periodSeconds"] * tgi["livenessProbe"]["failureThreshold"] >= 180
    assert _pod(deployment)["terminationGracePeriodSeconds"] >= 90


def test_start_budgets_grow_with_model_size_and_cover_a_new_node():
    from vocabulary.config.serving import ModelConfig

    def model(params, shards=1):
        return ModelConfig.model_validate({
            "name": "mm", "registry": {"stage": "production"}, "gpuShape": "24gib-x1",
            "paramsBillion": params, "shards": shards,
            "maxInputTokens": 1, "maxTotalTokens": 2, "maxBatchPrefillTokens": 1,
            "replicas": {"min": 1, "max": 1}})
    node = gpu_instances()["g5.48xlarge"]
    small, large = start_budgets(model(8), node), start_budgets(model(400), node)
    assert small.startup_probe_s == 600  # TGI's first start never gets less than 10 minutes
    assert large.startup_probe_s > small.startup_probe_s
    assert large.await_s > small.await_s
    # sharding loads in parallel: the probe budget shrinks with more GPUs
    assert start_budgets(model(400, shards=8), node).startup_probe_s < large.startup_probe_s
    for budgets in (small, large):
        assert budgets.await_s >= NODE_PROVISION_S + budgets.startup_probe_s


def test_weights_come_from_the_registry_into_the_node_cache_with_checksums(plans):
    pod = _pod(_deployment(plans["prod"], "tgi-llama-3-8b"))
    (fetch,) = [c for c in pod["initContainers"] if c["name"] == "fetch-weights"]
    assert fetch["image"].endswith("/llmops-prod/llm-gateway:0.1.0")
    assert fetch["command"][:2] == ["llmops", "registry"]
    command = fetch["command"]
    revision = "8afb486c1db24fe5011ec46dfbe5b5dccdb575c2"
    assert command[command.index("fetch"):] == [
        "fetch", "llama-3-8b", "--cache-dir", "/data/models", "--version", "2025-10-01",
        "--revision", revision, "--reserve-gib", command[command.index("--reserve-gib") + 1],
        "--no-progress"]
    # the command exists and parses as written
    from llmops.cli import build_parser
    parsed = build_parser().parse_args(
        [c if isinstance(c, str) else "bucket" for c in command[1:]])
    assert (parsed.name, str(parsed.cache_dir), parsed.version, parsed.revision) == (
        "llama-3-8b", "/data/models", "2025-10-01", revision)
    assert fetch["securityContext"]["readOnlyRootFilesystem"] is True
    # sized for a line-rate fetch on the node (components/cold_start.py), not a fixed 4 CPUs
    assert fetch["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}  # g5.2xlarge: 8 vCPU
    assert pod["serviceAccountName"] == "tgi-llama-3-8b"


def test_prod_multi_replica_models_spread_evenly_across_spot_and_the_on_demand_floor(plans):
    """Never all replicas in one spot market: prod's models (>= 2 replicas) spread with
    DoNotSchedule on the capacity tier, whose two domains are the flex NodePool (spot first,
    on-demand fallback) and the on-demand-only floor; both carry the shape the pods select."""
    plan = plans["prod"]
    pools = {p.inputs["metadata"]["name"]: p.inputs["spec"]
             for p in plan.of_type("kubernetes:karpenter.sh/v1:NodePool")
             if "llmops.io/capacity-tier" in p.inputs["spec"]["template"]["metadata"]["labels"]}
    tiers = {spec["template"]["metadata"]["labels"]["llmops.io/capacity-tier"]: spec
             for spec in pools.values()}
    capacity = {tier: next(r["values"] for r in spec["template"]["spec"]["requirements"]
                           if r["key"] == "karpenter.sh/capacity-type") for tier, spec in tiers.items()}
    assert capacity == {"flex": ["spot", "on-demand"], "floor": ["on-demand"]}
    for name in ("tgi-llama-3-8b", "vllm-qwen-2-5-32b"):
        pod = _pod(_deployment(plan, name))
        spread = [c for c in pod["topologySpreadConstraints"]
                  if c["topologyKey"] == "llmops.io/capacity-tier"]
        assert [(c["maxSkew"], c["whenUnsatisfiable"]) for c in spread] == [(1, "DoNotSchedule")]
        term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"][0]["matchExpressions"][0]
        shape = [spec["template"]["metadata"]["labels"] for spec in pools.values()
                 if spec["template"]["metadata"]["labels"][term["key"]] in term["values"]]
        assert sorted(labels["llmops.io/capacity-tier"] for labels in shape) == ["flex", "floor"]


def test_a_single_replica_model_has_no_capacity_spread(plans):
    pod = _pod(_deployment(plans["dev"], "tgi-llama-3-8b"))
    assert "llmops.io/capacity-tier" not in {c["topologyKey"] for c in pod["topologySpreadConstraints"]}


def test_pods_tolerate_the_gpu_taint_select_their_gpu_shape_and_spread_across_zones(plans):
    pod = _pod(_deployment(plans["dev"], "tgi-llama-3-8b"))
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"][0]["matchExpressions"][0]
    assert term == {"key": "llmops.io/gpu-shape", "operator": "In", "values": ["24gib-x1"]}
    keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert "topology.kubernetes.io/zone" in keys


@pytest.mark.parametrize("stack", STACKS)
def test_nothing_pins_a_model_server_to_its_node(plans, stack):
    """Consolidation may move any model server (fallback replicas go back to spot); the PDB,
    not an annotation, limits how many go at once."""
    for deployment in plans[stack].of_type(DEPLOYMENT):
        annotations = deployment.inputs["spec"]["template"]["metadata"].get("annotations", {})
        assert annotations.get("karpenter.sh/do-not-disrupt") != "true"
        assert "cluster-autoscaler.kubernetes.io/safe-to-evict" not in annotations


def test_each_track_has_a_disruption_budget(plans):
    plan = plans["prod"]
    budgets = {b.inputs["metadata"]["name"]: b.inputs["spec"]
               for b in plan.of_type("kubernetes:policy/v1:PodDisruptionBudget")
               if b.inputs["metadata"]["namespace"] == "llm-serving"}
    # (and each track's router: tests/test_routing_layer.py)
    assert set(budgets) == {"tgi-llama-3-8b", "tgi-llama-3-8b-canary", "vllm-qwen-2-5-32b",
                            "router-llama-3-8b", "router-llama-3-8b-canary", "router-qwen-2-5-32b"}
    assert budgets["tgi-llama-3-8b"]["maxUnavailable"] == 1
    assert budgets["tgi-llama-3-8b"]["selector"]["matchLabels"]["llmops.io/track"] == "stable"


def test_keda_scales_on_queue_depth_with_scheduled_peaks_and_slow_scale_down(plans):
    plan = plans["prod"]
    scaler = next(s.inputs for s in plan.of_type(SCALED_OBJECT)
                  if s.inputs["metadata"]["name"] == "tgi-llama-3-8b")
    spec = scaler["spec"]
    prometheus = next(t for t in spec["triggers"] if t["type"] == "prometheus")
    assert "tgi_queue_size" in prometheus["metadata"]["query"]
    # per replica, said explicitly: KEDA 2.17's webhook refuses a fallback without it
    assert prometheus["metricType"] == "AverageValue"
    assert 'model="llama-3-8b"' in prometheus["metadata"]["query"]
    assert prometheus["metadata"]["threshold"] == "8"
    cron = next(t for t in spec["triggers"] if t["type"] == "cron")
    assert cron["metadata"] == {"timezone": "America/New_York", "start": "0 7 * * 1-5",
                                "end": "0 19 * * 1-5", "desiredReplicas": "4"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 8)
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300
    assert not any(t["type"] == "cpu" for t in spec["triggers"])
    # Prometheus down: KEDA keeps the replicas it has (never below the floor)
    assert spec["fallback"] == {"failureThreshold": 3, "replicas": 2,
                                "behavior": "currentReplicasIfHigher"}
    keda = plan.one("kubernetes:helm.sh/v3:Release", "serving-keda").inputs
    assert keda["version"] == "2.17.0"


def test_canary_gets_its_own_deployment_service_and_the_split_is_an_output(plans):
    plan = plans["prod"]
    canary = _deployment(plan, "tgi-llama-3-8b-canary")
    stable = _deployment(plan, "tgi-llama-3-8b")
    assert canary["metadata"]["annotations"]["llmops.io/model-version"] == "2025-11-12"
    assert stable["metadata"]["annotations"]["llmops.io/model-version"] == "2025-10-01"
    assert plan.outputs["modelRoutes"]["llama-3-8b"] == {
        "stable": "http://tgi-llama-3-8b.llm-serving.svc:8080",
        "canary": "http://tgi-llama-3-8b-canary.llm-serving.svc:8080", "canaryWeight": 5,
        # each track's prefix-aware router (tests/test_routing_layer.py)
        "routers": {"stable": "http://router-llama-3-8b.llm-serving.svc:8100",
                    "canary": "http://router-llama-3-8b-canary.llm-serving.svc:8100"}}


def test_blue_green_active_service_selects_the_live_colour_and_preview_the_other(plans):
    plan = plans["staging"]
    services = {s.inputs["metadata"]["name"]: s.inputs["spec"]["selector"]
                for s in plan.of_type("kubernetes:core/v1:Service")}
    assert services["vllm-qwen-2-5-32b"]["llmops.io/track"] == "blue"
    assert services["vllm-qwen-2-5-32b-preview"]["llmops.io/track"] == "green"
    assert _deployment(plan, "vllm-qwen-2-5-32b-blue")["metadata"]["annotations"][
        "llmops.io/registry-stage"] == "production"


def test_flipping_active_is_the_cut_over():
    plan = run_plan("staging", overrides={"llmops:models.1.blueGreen.active": "green"})
    services = {s.inputs["metadata"]["name"]: s.inputs["spec"]["selector"]
                for s in plan.of_type("kubernetes:core/v1:Service")}
    assert services["vllm-qwen-2-5-32b"]["llmops.io/track"] == "green"
    assert services["vllm-qwen-2-5-32b-preview"]["llmops.io/track"] == "blue"


def test_stage_is_resolved_from_the_registry_and_the_version_is_an_output(plans):
    versions = plans["staging"].outputs["modelVersions"]["llama-3-8b"]
    assert versions["stable"] == {"version": "2025-10-01", "source": "production",
                                  "revision": "8afb486c1db24fe5011ec46dfbe5b5dccdb575c2"}
    assert versions["canary"]["source"] == "staging"


def test_model_reader_role_is_bound_to_the_models_service_account(plans):
    import json

    plan = plans["prod"]
    name = "workload-roles-reader-llama-3-8b"
    role = plan.one("aws:iam/role:Role", name)
    assert role.stack == "platform"
    condition = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:llm-serving:tgi-llama-3-8b" in condition.values()
    account = next(a for a in plan.of_type("kubernetes:core/v1:ServiceAccount")
                   if a.inputs["metadata"]["name"] == "tgi-llama-3-8b")
    assert account.stack == "workloads"
    assert account.inputs["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == (
        plan.stack_outputs["platform"]["workloadRoleArns"]["models"]["llama-3-8b"])
    policy = json.loads(plan.one("aws:iam/rolePolicy:RolePolicy", name).inputs["policy"])
    read = next(s for s in policy["Statement"] if s["Sid"] == "ReadModelObjects")
    assert read["Resource"].endswith("/registry/models/llama-3-8b/*")


def test_manifests_are_written_one_file_per_object(plans, tmp_path):
    written = write_manifests(plans["staging"].resources, tmp_path)
    names = {p.name for p in written}
    assert "llm-serving--deployment--vllm-qwen-2-5-32b-green.yaml" in names
    assert "cluster--namespace--llm-serving.yaml" in names
    assert len(names) == len(written)


def test_launcher_uses_dtype_when_not_quantized():
    from vocabulary.config.serving import ModelConfig

    model = ModelConfig.model_validate({
        "name": "mm", "registry": {"stage": "production"}, "gpuShape": "24gib-x1", "paramsBillion": 1,
        "dtype": "float16", "maxInputTokens": 1, "maxTotalTokens": 2, "maxBatchPrefillTokens": 1,
        "replicas": {"min": 1, "max": 1}, "loraAdapters": ["a/b", "c/d"]})
    args = TGI.args(model, "/m")
    assert _flag(args, "--dtype") == "float16" and "--quantize" not in args
    assert _flag(args, "--lora-adapters") == "a/b,c/d"


MODEL_ERRORS = [
    ({"llmops:models.0.shards": 3},
     "llmops:models[0] (llama-3-8b).shards: 3 must divide the 1 GPU(s) per node of shape '24gib-x1'"),
    ({"llmops:models.0.maxInputTokens": 9000},
     "llmops:models[0]: maxInputTokens (9000) must be less than maxTotalTokens (8192)"),
    ({"llmops:models.0.maxBatchPrefillTokens": 1000},
     "llmops:models[0]: maxBatchPrefillTokens (1000) must be at least maxInputTokens (4096)"),
    ({"llmops:models.0.quantize": "awq"},
     "llmops:models[0]: dtype and quantize are exclusive in TGI; give one"),
    ({"llmops:models.0.paramsBillion": 70},
     "llmops:models[0] (llama-3-8b): 70B parameters at bfloat16 need 130.4 GiB of weights"),
    ({"llmops:models.0.gpuShape": "80gib-x8"},
     "llmops:models[0] (llama-3-8b).gpuShape: no GPU pool has shape '80gib-x8'; pool shapes: 24gib-x1"),
    ({"llmops:models.0.quantize": "int3", "llmops:models.0.dtype": None},
     "llmops:models[0].quantize: Input should be 'awq'"),
    ({"llmops:models.0.registry": {"stage": "production", "version": "v1"}},
     "llmops:models[0].registry: give exactly one of stage"),
    ({"llmops:serving.tgiImage": "ghcr.io/huggingface/text-generation-inference:latest"},
     "llmops:serving.tgiImage: 'ghcr.io/huggingface/text-generation-inference:latest' must be pinned"),
    ({"llmops:models.0.canary": {"registry": {"stage": "production"}, "weight": 80}},
     "llmops:models[0].canary.weight: Input should be less than or equal to 50 (got 80)"),
]


@pytest.mark.parametrize(("overrides", "expected"), MODEL_ERRORS,
                         ids=[e.split(":", 2)[-1][:40] for _, e in MODEL_ERRORS])
def test_impossible_model_settings_name_the_model_and_the_field(overrides, expected):
    with pytest.raises(ConfigError) as caught:
        run_plan("dev", overrides=overrides)
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems
