"""vLLM model servers as the stacks render them: every flag exists in the pinned release, the
config maps onto its flags, the pod runs unprivileged with its caches on writable volumes,
and scaling, scraping and routing use the names that release defines."""

from __future__ import annotations

import pytest
import yaml

from components.engines import TGI, VLLM, engine_of, flags_of
from components.gateway_routes import routing_document
from llmops.offline.plan import run_plan
from tests.conftest import STACKS
from vocabulary.config import ConfigError
from vocabulary.config.serving import ModelConfig

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CACHE = "/data/models/entries/qwen-2-5-32b/2025-09-20/5ede1c97bbab6ce5cda5812749b4c0bdf79b18dd/files"


def _vllm_deployments(plan):
    return [d.inputs for d in plan.of_type(DEPLOYMENT)
            if d.inputs["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name") == "vllm"]


def _server(deployment):
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _flag(args, flag):
    return args[args.index(flag) + 1]


@pytest.fixture(scope="module")
def prod_vllm(plans):
    [deployment] = _vllm_deployments(plans["prod"])
    return deployment


def test_prod_serves_a_model_on_vllm_and_dev_stays_on_tgi(plans):
    assert {m.name: m.engine for m in plans["prod"].config.models} == {
        "llama-3-8b": "tgi", "qwen-2-5-32b": "vllm"}
    assert _vllm_deployments(plans["dev"]) == []


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_rendered_flag_exists_in_the_pinned_vllm(plans, stack):
    """Each option on each vLLM container is one vLLM 0.34.0 defines (the list in
    components/engines/data/vllm-0.34.0.flags, extracted from the wheel's arg_utils.py and
    entrypoints/common/cli_args.py); flags recent releases removed never appear."""
    known = VLLM.known_flags()
    deployments = _vllm_deployments(plans[stack])
    assert deployments
    for deployment in deployments:
        flags = flags_of(_server(deployment)["args"])
        assert set(flags) <= known, set(flags) - known
        assert not set(flags) & VLLM.removed_flags
        assert len(flags) == len(set(flags))  # argparse keeps the last one: no silent override


def test_the_flag_list_is_the_release_s_own():
    known = VLLM.known_flags()
    assert {"--tensor-parallel-size", "--max-num-seqs", "--served-model-name", "--enable-prefix-caching",
            "--shutdown-timeout"} <= known
    assert "--disable-log-requests" not in known  # removed upstream: --enable-log-requests now
    assert "--model-id" not in known              # TGI's, not vLLM's
    assert VLLM.removed_flags.isdisjoint(known)


def test_vllm_runs_the_model_from_the_node_cache_with_the_config_mapped_onto_its_flags(prod_vllm):
    server = _server(prod_vllm)
    args = server["args"]
    assert server["image"] == "docker.io/vllm/vllm-openai:v0.34.0"
    assert server["command"] == ["vllm", "serve"]
    assert _flag(args, "--model") == CACHE  # the verified local copy, never a Hub id
    assert _flag(args, "--served-model-name") == "qwen-2-5-32b"
    assert (_flag(args, "--host"), _flag(args, "--port")) == ("0.0.0.0", "8000")
    assert _flag(args, "--tensor-parallel-size") == "4"          # shards = GPUs
    assert _flag(args, "--max-model-len") == "16384"             # maxTotalTokens
    assert _flag(args, "--max-num-seqs") == "128"                # maxConcurrentRequests
    assert _flag(args, "--max-num-batched-tokens") == "16384"    # maxBatchPrefillTokens
    assert _flag(args, "--quantization") == "awq_marlin" and "--dtype" not in args
    assert "--enable-prefix-caching" in args
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in server["env"]
    assert server["ports"] == [{"name": "http", "containerPort": 8000}]


def test_an_unquantized_model_gets_its_dtype():
    model = ModelConfig.model_validate({
        "name": "mm", "engine": "vllm", "registry": {"stage": "production"}, "gpuShape": "24gib-x1",
        "paramsBillion": 1, "dtype": "float16", "maxInputTokens": 1, "maxTotalTokens": 2,
        "maxBatchPrefillTokens": 128, "replicas": {"min": 1, "max": 1}})
    args = engine_of(model).args(model, "/m")
    assert _flag(args, "--dtype") == "float16" and "--quantization" not in args


def test_the_vllm_pod_is_non_root_and_writes_only_to_its_own_volumes(prod_vllm):
    pod = prod_vllm["spec"]["template"]["spec"]
    server = _server(prod_vllm)
    context = server["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 2000
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    writable = {m["mountPath"] for m in server["volumeMounts"] if not m.get("readOnly")}
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    assert {m["name"] for m in server["volumeMounts"] if m["mountPath"] in writable} <= empty_dirs
    env = {e["name"]: e["value"] for e in server["env"]}
    # every directory vLLM 0.34.0 (vllm/envs.py), Triton and Torch Inductor write
    for name in ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "VLLM_CACHE_ROOT", "VLLM_CONFIG_ROOT",
                 "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR", "HF_HOME"):
        assert any(env[name] == d or env[name].startswith(d + "/") for d in writable), name
    assert server["workingDir"] in writable
    assert "/tmp" in writable  # VLLM_RPC_BASE_PATH defaults to the temp dir
    cache = next(m for m in server["volumeMounts"] if m["name"] == "model-cache")
    assert cache["readOnly"] is True
    assert {"name": "shm", "mountPath": "/dev/shm"} in server["volumeMounts"]


def test_the_vllm_pod_is_probed_budgeted_and_protected_like_tgi(plans, prod_vllm):
    server = _server(prod_vllm)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"] == {"path": "/health", "port": "http"}
    startup = server["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    pod = prod_vllm["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == TGI.termination_grace_s > VLLM.graceful_shutdown_s
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone", "kubernetes.io/hostname",
        "llmops.io/capacity-tier"}  # prod: 2+ replicas split between spot and the on-demand floor
    labels = prod_vllm["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "model-server"
    budgets = {b.inputs["metadata"]["name"]: b.inputs["spec"]
               for b in plans["prod"].of_type("kubernetes:policy/v1:PodDisruptionBudget")}
    assert budgets["vllm-qwen-2-5-32b"]["maxUnavailable"] == 1


def test_keda_scales_vllm_on_its_waiting_requests(plans):
    scaler = next(s.inputs for s in plans["prod"].of_type("kubernetes:keda.sh/v1alpha1:ScaledObject")
                  if s.inputs["metadata"]["name"] == "vllm-qwen-2-5-32b")
    [trigger] = scaler["spec"]["triggers"]
    # the gauge vllm/v1/metrics/loggers.py (0.34.0) registers, per replica
    assert trigger["metadata"]["query"] == (
        'sum(vllm:num_requests_waiting{namespace="llm-serving",model="qwen-2-5-32b",track="stable"})')
    assert trigger["metricType"] == "AverageValue"
    assert scaler["spec"]["scaleTargetRef"] == {"name": "vllm-qwen-2-5-32b"}


def test_vllm_pods_are_scraped_on_their_api_port_as_job_vllm(plans):
    monitor = next(m.inputs for m in plans["prod"].of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")
                   if m.inputs["metadata"]["name"] == "vllm-qwen-2-5-32b")
    assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "vllm",
                                                         "llmops.io/model": "qwen-2-5-32b"}
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "http"
    assert {"targetLabel": "job", "replacement": "vllm"} in endpoint["relabelings"]


def test_the_routing_document_tells_the_gateway_each_model_s_engine(plans):
    plan = plans["prod"]
    document = yaml.safe_load(routing_document(plan.outputs["modelRoutes"], plan.config.models))
    assert document["models"]["qwen-2-5-32b"]["engine"] == "vllm"
    assert document["models"]["qwen-2-5-32b"]["backends"]["stable"]["url"] == (
        "http://vllm-qwen-2-5-32b.llm-serving.svc:8000")
    assert document["models"]["llama-3-8b"]["engine"] == "tgi"


@pytest.mark.parametrize("stack", STACKS)
def test_every_engine_image_is_pre_pulled_once(plans, stack):
    plan = plans[stack]
    images = [c["image"] for c in plan.one("kubernetes:apps/v1:DaemonSet", "prepull").inputs[
        "spec"]["template"]["spec"]["initContainers"]]
    used = {m.engine for m in plan.config.models}
    assert len(images) == len(used)
    assert any("vllm-openai" in i for i in images) == ("vllm" in used)


VLLM_ERRORS = [
    ({"llmops:models.0.quantize": "eetq", "llmops:models.0.dtype": None},
     "llmops:models[0]: quantize 'eetq' is not served by vLLM; with engine: vllm use one of awq, gptq, fp8, "
     "compressed-tensors, or engine: tgi"),
    ({"llmops:models.0.loraAdapters": ["org/adapter"]},
     "llmops:models[0]: loraAdapters are Hub ids TGI resolves; vLLM needs local adapter paths"),
    ({"llmops:models.0.maxConcurrentRequests": 9000},
     "llmops:models[0]: maxBatchPrefillTokens (8192) must be at least maxConcurrentRequests (9000) for vLLM"),
    ({"llmops:models.0.engine": "sglang"},
     "llmops:models[0].engine: Input should be 'tgi' or 'vllm'"),
    ({"llmops:serving.vllmImage": "vllm/vllm-openai:latest"},
     "llmops:serving.vllmImage: 'vllm/vllm-openai:latest' must be pinned"),
]


@pytest.mark.parametrize(("overrides", "expected"), VLLM_ERRORS, ids=[e[1][18:58] for e in VLLM_ERRORS])
def test_settings_vllm_cannot_serve_name_the_model_and_the_way_out(overrides, expected):
    with pytest.raises(ConfigError) as caught:
        run_plan("dev", overrides={"llmops:models.0.engine": "vllm", **overrides})
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems


def test_the_policy_pack_checks_vllm_deployments_as_model_servers(plans, prod_vllm):
    """The pack's serving rules (GPU, probes, PDB, pinned registry versions) select model
    servers by the component label, so vLLM's are held to them too, and pass."""
    from policies.kubernetes import DEPLOYMENT as POLICY_DEPLOYMENT
    from policies.kubernetes import SERVING_LABELS, check_serving_gpu, check_serving_probes, is_serving

    assert is_serving(POLICY_DEPLOYMENT, prod_vllm, SERVING_LABELS)
    context = {"servingLabels": SERVING_LABELS}
    assert check_serving_gpu(POLICY_DEPLOYMENT, prod_vllm, context) == []
    assert check_serving_probes(POLICY_DEPLOYMENT, prod_vllm, context) == []
    without_gpu = {**prod_vllm, "spec": {**prod_vllm["spec"], "template": {
        **prod_vllm["spec"]["template"], "spec": {**prod_vllm["spec"]["template"]["spec"], "containers": [
            {**_server(prod_vllm), "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}}}}
    assert check_serving_gpu(POLICY_DEPLOYMENT, without_gpu, context)
