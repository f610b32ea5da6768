"""Every config validator at its edges: the value just allowed and the one just refused, with
the line a user reads. The shipped stack files are validated with one setting overridden,
without running the program (fast enough for mutation testing; tests/test_config_errors.py
proves the same errors stop a real plan)."""

from __future__ import annotations

from typing import Any

import pytest

from vocabulary.config import ConfigError, PlatformConfig, parse_platform_config, secret_config_keys
from vocabulary.config.base import key_path, repeated, size_order_problem
from vocabulary.config.network import LOG_RETENTION_DAYS
from vocabulary.stackfile import DELETE, OFFLINE_SECRET, read_stack_config

MODEL = "llmops:models.0"


def validate(overrides: dict[str, Any] | None = None, stack: str = "dev") -> PlatformConfig:
    config = read_stack_config(stack)
    config = config.with_overrides({k: OFFLINE_SECRET for k in secret_config_keys()})
    config = config.with_overrides(overrides or {})
    return parse_platform_config(config.values, project="llmops", stack=stack, source=config.source)


def problems(overrides: dict[str, Any], stack: str = "dev") -> list[str]:
    try:
        validate(overrides, stack)
    except ConfigError as exc:
        return exc.problems
    return []


def refused(overrides: dict[str, Any], stack: str = "dev") -> str:
    found = problems(overrides, stack)
    assert len(found) == 1, found
    return found[0]


def test_the_shipped_stacks_are_valid():
    for stack in ("dev", "staging", "prod"):
        assert problems({}, stack) == []


# -- network -----------------------------------------------------------------------------------

@pytest.mark.parametrize("cidr", ["10.20.0.0/16", "172.16.0.0/16", "172.31.0.0/16", "192.168.0.0/16",
                                  "100.64.0.0/16", "100.127.0.0/16"])
def test_vpc_cidrs_in_private_ranges_pass(cidr):
    assert problems({"llmops:network.cidr": cidr}) == []


@pytest.mark.parametrize("cidr", ["11.0.0.0/16", "9.255.0.0/16", "172.15.0.0/16", "172.32.0.0/16",
                                  "192.167.0.0/16", "192.169.0.0/16", "100.63.0.0/16", "100.128.0.0/16"])
def test_vpc_cidrs_just_outside_private_ranges_are_refused(cidr):
    assert refused({"llmops:network.cidr": cidr}) == (
        f"llmops:network.cidr: {cidr} is not in a private range (10/8, 172.16/12, 192.168/16, 100.64/10)")


def test_a_vpc_wider_than_slash_16_is_refused():
    assert refused({"llmops:network.cidr": "10.20.0.0/15"}) == (
        "llmops:network.cidr: 10.20.0.0/15 is a /15; a VPC CIDR must be /16 to /24 (/24 leaves too "
        "few addresses for pods)")


SMALL_VPC = {"llmops:network.cidr": "10.20.0.0/24",
             "llmops:network.privateSubnets": ["10.20.0.0/26", "10.20.0.64/26"],
             "llmops:network.publicSubnets": ["10.20.0.128/27", "10.20.0.160/27"]}


def test_a_slash_24_vpc_is_the_smallest_allowed():
    assert problems(SMALL_VPC) == []
    tiny = {**SMALL_VPC, "llmops:network.cidr": "10.20.0.0/25"}
    assert problems(tiny)[0] == (
        "llmops:network.cidr: 10.20.0.0/25 is a /25; a VPC CIDR must be /16 to /24 (/24 leaves too "
        "few addresses for pods)")


@pytest.mark.parametrize(("cidr", "expected"), [
    ("10.20.0.0/33", "'10.20.0.0/33' has an invalid prefix length; use /0 to /32"),
    ("10.20.0.0", "10.20.0.0 is a /32; a VPC CIDR must be /16 to /24"),
    ("10.20.1.0/16", "'10.20.1.0/16' has host bits set; did you mean 10.20.0.0/16?"),
    ("fd00::/16", "'fd00::/16' is not an IPv4 CIDR such as 10.0.0.0/16"),
])
def test_malformed_cidrs_say_what_is_wrong(cidr, expected):
    assert problems({"llmops:network.cidr": cidr})[0].startswith(f"llmops:network.cidr: {expected}")


@pytest.mark.parametrize(("key", "low", "high"), [
    ("azCount", 2, 6), ("privateSubnetPrefix", 16, 24), ("publicSubnetPrefix", 20, 28)])
def test_network_sizes_are_bounded_on_both_sides(key, low, high):
    assert refused({f"llmops:network.{key}": low - 1}) == (
        f"llmops:network.{key}: Input should be greater than or equal to {low} (got {low - 1})")
    assert refused({f"llmops:network.{key}": high + 1}) == (
        f"llmops:network.{key}: Input should be less than or equal to {high} (got {high + 1})")


def test_network_size_limits_themselves_are_accepted():
    assert problems({"llmops:network.azCount": 6, "llmops:network.privateSubnetPrefix": 20}) == []
    assert problems({"llmops:network.privateSubnetPrefix": 24, "llmops:network.publicSubnetPrefix": 28}) == []
    assert problems({"llmops:network.privateSubnetPrefix": 18, "llmops:network.publicSubnetPrefix": 20}) == []


def test_a_private_subnet_as_large_as_the_vpc_does_not_fit():
    assert refused({"llmops:network.privateSubnetPrefix": 16}).startswith(
        "llmops:network: subnets do not fit:")


def test_explicit_subnets_must_be_cidrs_one_per_az():
    assert refused({"llmops:network.privateSubnets": ["10.20.0.0/19", "nope"]}).startswith(
        "llmops:network.privateSubnets: [1] 'nope' is not an IPv4 CIDR")
    assert refused({"llmops:network.privateSubnets": ["10.20.0.0/19", "10.20.32.0/19", "10.20.64.0/19"]}) == (
        "llmops:network: privateSubnets lists 3 subnets; azCount is 2, so list exactly one per AZ")


def test_explicit_subnets_are_used_as_given():
    config = validate(SMALL_VPC)
    assert [(p.az_index, p.private, p.public) for p in config.network.layout()] == [
        (0, "10.20.0.0/26", "10.20.0.128/27"), (1, "10.20.0.64/26", "10.20.0.160/27")]


def test_nat_gateways_follow_the_nat_setting():
    single = validate({"llmops:network.nat": "single", "llmops:network.azCount": 3}).network
    per_az = validate({"llmops:network.nat": "per-az", "llmops:network.azCount": 3}).network
    assert (single.nat_gateway_count, per_az.nat_gateway_count) == (1, 3)


#: CloudWatch Logs PutRetentionPolicy: the retention periods AWS accepts.
CLOUDWATCH_RETENTION = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                        2192, 2557, 2922, 3288, 3653)


def test_the_retention_table_is_cloudwatch_s():
    assert LOG_RETENTION_DAYS == CLOUDWATCH_RETENTION


@pytest.mark.parametrize("days", CLOUDWATCH_RETENTION)
def test_every_cloudwatch_retention_period_is_accepted_and_its_neighbours_refused(days):
    assert problems({"llmops:network.flowLogs.retentionDays": days}) == []
    for neighbour in (days - 1, days + 1):
        if neighbour not in CLOUDWATCH_RETENTION:
            assert refused({"llmops:network.flowLogs.retentionDays": neighbour}).startswith(
                f"llmops:network.flowLogs.retentionDays: {neighbour} is not a CloudWatch retention "
                "period; allowed: 1, 3, 5,")


# -- cluster -----------------------------------------------------------------------------------

@pytest.mark.parametrize("cidrs", [["203.0.113.0/24"], ["11.0.0.0/8"], ["11.0.0.0/9", "11.128.0.0/9"]])
def test_public_access_cidrs_up_to_a_slash_8_pass(cidrs):
    assert problems({"llmops:cluster.publicAccessCidrs": cidrs}) == []


def test_a_public_access_cidr_wider_than_slash_8_is_refused():
    assert refused({"llmops:cluster.publicAccessCidrs": ["203.0.113.0/24", "10.0.0.0/7"]}) == (
        "llmops:cluster.publicAccessCidrs: [1] 10.0.0.0/7 opens the API endpoint to (nearly) the "
        "whole internet; list your office/VPN CIDRs instead")


def test_the_world_split_in_halves_is_refused_half_by_half():
    assert problems({"llmops:cluster.publicAccessCidrs": ["0.0.0.0/1", "128.0.0.0/1"]}) == [
        f"llmops:cluster.publicAccessCidrs: [{i}] {cidr} opens the API endpoint to (nearly) the whole "
        "internet; list your office/VPN CIDRs instead" for i, cidr in enumerate(["0.0.0.0/1", "128.0.0.0/1"])]


@pytest.mark.parametrize(("cidrs", "addresses"), [([f"{i}.0.0.0/8" for i in range(256)], "4,294,967,296"),
                                                  (["11.0.0.0/8", "12.0.0.0/32"], "16,777,217")])
def test_the_world_split_into_slash_8s_is_refused_as_a_whole(cidrs, addresses):
    assert refused({"llmops:cluster.publicAccessCidrs": cidrs}) == (
        f"llmops:cluster.publicAccessCidrs: together they open the API endpoint to {addresses} "
        "addresses, more than a /8; list your office/VPN CIDRs instead")


def test_a_public_endpoint_needs_cidrs_and_cidrs_need_a_public_endpoint():
    assert refused({"llmops:cluster.publicAccessCidrs": []}) == (
        "llmops:cluster: endpointPublicAccess is true but publicAccessCidrs is empty (EKS would open "
        "the endpoint to 0.0.0.0/0); list allowed CIDRs")
    assert refused({"llmops:cluster.endpointPublicAccess": False}) == (
        "llmops:cluster: publicAccessCidrs is set but endpointPublicAccess is false")
    assert problems({"llmops:cluster.endpointPublicAccess": False,
                     "llmops:cluster.publicAccessCidrs": []}) == []
    assert problems({"llmops:cluster.endpointPublicAccess": False,
                     "llmops:cluster.publicAccessCidrs": DELETE}) == []


def test_public_access_cidrs_are_ipv4_cidrs():
    assert refused({"llmops:cluster.publicAccessCidrs": ["::/0"]}).startswith(
        "llmops:cluster.publicAccessCidrs: [0] '::/0' is not an IPv4 CIDR")


@pytest.mark.parametrize("version", ["1.31", "1.35", "1.33.0", "v1.33"])
def test_unsupported_eks_versions_are_refused(version):
    assert problems({"llmops:cluster.version": version})[0] == (
        f"llmops:cluster.version: {version!r} is not a supported EKS version; allowed: 1.32, 1.33, 1.34")


def test_pinned_images_must_match_the_kubernetes_minor():
    found = problems({"llmops:cluster.version": "1.34"})
    assert found == [
        "llmops:cluster: addons.kubeProxy v1.33.5-eksbuild.2 does not match Kubernetes 1.34; use a "
        "v1.34.x release"]
    assert problems({"llmops:cluster.version": "1.34",
                     "llmops:cluster.addons.kubeProxy": "v1.34.1-eksbuild.1"}) == []


@pytest.mark.parametrize(("key", "value", "message"), [
    ("chartVersion", "1.14", "String should match pattern"),
    ("amiVersion", "latest", "String should match pattern")])
def test_karpenter_and_the_gpu_ami_are_pinned_releases(key, value, message):
    assert message in refused({f"llmops:cluster.karpenter.{key}": value})


@pytest.mark.parametrize(("value", "ok"), [("v1.20.4-eksbuild.1", True), ("v1.20.4", False),
                                           ("1.20.4-eksbuild.1", False), ("v1.20.4-eksbuild.x", False)])
def test_addon_versions_are_pinned_builds(value, ok):
    found = problems({"llmops:cluster.addons.vpcCni": value})
    assert found == ([] if ok else [f"llmops:cluster.addons.vpcCni: {value!r} is not a pinned add-on "
                                    "version such as v1.33.5-eksbuild.2"])


@pytest.mark.parametrize(("arn", "ok"), [
    ("arn:aws:iam::123456789012:role/platform-admin", True),
    ("arn:aws:iam::123456789012:role/path/admin+x=y,z.@-", True),
    ("arn:aws:iam::12345678901:role/admin", False),
    ("arn:aws:iam::123456789012:user/admin", False),
    ("arn:aws:iam::123456789012:role/", False),
])
def test_admin_roles_are_iam_role_arns(arn, ok):
    found = problems({"llmops:cluster.adminRoleArns": [arn]})
    assert found == ([] if ok else [f"llmops:cluster.adminRoleArns: not IAM role ARNs "
                                    f"(arn:aws:iam::<12 digits>:role/<name>): [{arn!r}]"])


def test_at_least_one_admin_role():
    assert refused({"llmops:cluster.adminRoleArns": []}).startswith(
        "llmops:cluster.adminRoleArns: List should have at least 1 item")


def test_control_plane_logs_keep_api_audit_authenticator():
    assert problems({"llmops:cluster.logTypes": ["api", "audit", "authenticator"]}) == []
    assert refused({"llmops:cluster.logTypes": ["api", "authenticator", "scheduler"]}) == (
        "llmops:cluster.logTypes: audit logging cannot be turned off")
    assert refused({"llmops:cluster.logTypes": ["api", "audit", "authenticator", "kubelet"]}) == (
        "llmops:cluster.logTypes: unknown log types ['kubelet']; allowed: api, audit, authenticator, "
        "controllerManager, scheduler")


@pytest.mark.parametrize(("sizes", "ok"), [
    ((1, 1, 1), True), ((1, 2, 3), True), ((2, 1, 3), False), ((1, 4, 3), False)])
def test_system_node_sizes_are_ordered(sizes, ok):
    low, desired, high = sizes
    sizes = {"minSize": low, "desiredSize": desired, "maxSize": high}
    found = problems({"llmops:cluster.systemNodes": sizes})
    assert found == ([] if ok else [
        f"llmops:cluster.systemNodes: sizes must satisfy minSize <= desiredSize <= maxSize; got "
        f"{low} <= {desired} <= {high}"])


@pytest.mark.parametrize(("key", "value", "message"), [
    ("minSize", 0, "Input should be greater than or equal to 1"),
    ("rootVolumeGib", 19, "Input should be greater than or equal to 20"),
    ("rootVolumeGib", 1001, "Input should be less than or equal to 1000"),
])
def test_system_node_bounds(key, value, message):
    assert message in refused({f"llmops:cluster.systemNodes.{key}": value})
    edge = 20 if value == 19 else 1000 if value == 1001 else None
    if edge:
        assert problems({f"llmops:cluster.systemNodes.{key}": edge}) == []


@pytest.mark.parametrize(("key", "value", "ok"), [
    ("chartVersion", "9.47.0", True), ("chartVersion", "9.47", False), ("chartVersion", "v9.47.0", False),
    ("imageTag", "v1.33.0", True), ("imageTag", "1.33.0", True), ("imageTag", "v1.33", False),
])
def test_helm_pins_are_exact(key, value, ok):
    found = problems({f"llmops:cluster.nvidiaDevicePlugin.{key}": value})
    assert (found == []) == ok, found


# -- GPU pools ---------------------------------------------------------------------------------

POOL = "llmops:gpuPools.0"


@pytest.mark.parametrize(("name", "ok"), [("ab", True), ("a" * 31, True), ("l4-spot-2", True),
                                          ("a", False), ("a" * 32, False), ("4l-spot", False),
                                          ("L4-spot", False), ("l4_spot", False)])
def test_pool_names_are_dns_safe(name, ok):
    found = problems({f"{POOL}.name": name})
    assert found == ([] if ok else [f"llmops:gpuPools[0].name: {name!r} must be 2-31 lowercase letters, "
                                    "digits or dashes, starting with a letter"])


def test_pool_limits_are_bounded():
    assert problems({f"{POOL}.maxNodes": 1, "llmops:models.0.replicas.max": 1}) == []
    assert problems({f"{POOL}.maxNodes": 100}) == []
    assert "greater than or equal to 1" in refused({f"{POOL}.maxNodes": 0})
    assert "less than or equal to 100" in refused({f"{POOL}.maxNodes": 101})
    assert "greater than or equal to 1" in refused({f"{POOL}.onDemandFloor": {"maxNodes": 0},
                                                    f"{POOL}.capacityTypes": ["spot", "on-demand"]})


@pytest.mark.parametrize(("key", "low", "high"), [("rootVolumeGib", 30, 2000)])
def test_pool_volume_bounds(key, low, high):
    assert problems({f"{POOL}.{key}": low}) == [] and problems({f"{POOL}.{key}": high}) == []
    assert f"greater than or equal to {low}" in refused({f"{POOL}.{key}": low - 1})
    assert f"less than or equal to {high}" in refused({f"{POOL}.{key}": high + 1})


@pytest.mark.parametrize(("key", "value", "message"), [
    ("consolidateAfter", "soon", "'soon' is not a duration such as 10m, 720h or 1h30m"),
    ("expireAfter", "", "'' is not a duration"),
    ("expireAfter", "never", "'never' is not a duration such as 720h or 1h30m, nor Never"),
    ("disruptionBudget", "150%", "String should match pattern"),
    ("capacityTypes", ["spot", "spot"], "capacity types are listed more than once"),
    ("capacityTypes", [], "List should have at least 1 item")])
def test_pool_disruption_and_capacity_settings_are_checked(key, value, message):
    assert message in refused({f"{POOL}.{key}": value})


def test_every_pool_lists_at_least_two_types_so_karpenter_has_a_choice():
    assert refused({f"{POOL}.instanceTypes": ["g6.xlarge"]}).startswith(
        "llmops:gpuPools[0].instanceTypes: List should have at least 2 items")
    assert problems({f"{POOL}.instanceTypes": ["g6.xlarge", "g5.xlarge"]}) == []


def test_pool_types_are_known_unique_and_of_one_gpu_shape():
    assert refused({f"{POOL}.instanceTypes": ["g6.xlarge", "g9.xlarge"]}).startswith(
        "llmops:gpuPools[0].instanceTypes: unknown GPU instance types ['g9.xlarge']; known: g4dn.12xlarge,")
    assert refused({f"{POOL}.instanceTypes": ["g6.xlarge", "g6.xlarge"]}) == (
        "llmops:gpuPools[0].instanceTypes: instance types are listed more than once")
    assert refused({f"{POOL}.instanceTypes": ["g6.xlarge", "g6.12xlarge"]}) == (
        "llmops:gpuPools[0]: pool 'gpu24-x1' mixes GPU shapes (g6.xlarge=1x24GiB, g6.12xlarge=4x24GiB); "
        "models select one shape, so list types with the same GPU count and GPU memory")
    # same GPU count and memory, different GPU model or host size: one shape, pods sized to the
    # smallest host (components/allocatable.py)
    assert problems({f"{POOL}.instanceTypes": ["g6.xlarge", "g5.xlarge", "g6.2xlarge"]}) == []


def test_a_pool_has_one_shape_and_is_sized_by_its_smallest_type():
    pool = validate({f"{POOL}.instanceTypes": ["g5.xlarge", "g6.xlarge"]}).gpu_pools[0]
    assert pool.smallest.name == "g5.xlarge" and pool.gpus_per_node == 1 and pool.has_local_nvme
    assert pool.shape == "24gib-x1" and pool.root_volume == 50


# -- models ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("params", "fits"), [(10.3, True), (10.31, False), (8, True), (12, False)])
def test_bf16_weights_may_fill_80_percent_of_one_24_gib_gpu(params, fits):
    # 10.3e9 x 2 bytes = 19.19 GiB <= 0.8 x 24 GiB = 19.2 GiB; 10.31e9 x 2 bytes = 19.20 GiB > 19.2
    found = problems({f"{MODEL}.paramsBillion": params})
    if fits:
        assert found == []
    else:
        need = params * 2e9 / 2**30
        assert found == [
            f"llmops:models[0] (llama-3-8b): {params:g}B parameters at bfloat16 need {need:.1f} GiB of "
            "weights but 1 x L4 (24 GiB, g6.xlarge) leave 19.2 GiB after KV cache headroom; quantize, "
            "add shards or use a larger GPU class"]


#: Bytes per parameter by precision: 16-bit floats 2, 8-bit formats 1, 4-bit formats 0.5.
BYTES = {"float16": 2, "bfloat16": 2, "fp8": 1, "eetq": 1, "bitsandbytes": 1, "compressed-tensors": 1,
         "awq": 0.5, "gptq": 0.5, "marlin": 0.5, "exl2": 0.5, "bitsandbytes-nf4": 0.5,
         "bitsandbytes-fp4": 0.5}


@pytest.mark.parametrize("precision", sorted(BYTES))
def test_each_precision_fits_exactly_its_bytes_per_parameter(precision):
    key = "dtype" if precision in ("float16", "bfloat16") else "quantize"
    largest = 19.2 * 2**30 / (BYTES[precision] * 1e9)   # billions of parameters that just fit
    base = {f"{MODEL}.dtype": DELETE, f"{MODEL}.{key}": precision}
    assert problems({**base, f"{MODEL}.paramsBillion": round(largest * 0.995, 2)}) == []
    assert "after KV cache headroom" in refused({**base, f"{MODEL}.paramsBillion": round(largest * 1.005, 2)})


def test_a_model_without_dtype_or_quantize_is_sized_as_bfloat16():
    config = validate({f"{MODEL}.dtype": DELETE})
    assert config.models[0].precision == "bfloat16"


@pytest.mark.parametrize(("shards", "ok"), [(1, True), (2, True), (4, True), (3, False), (8, False)])
def test_shards_divide_the_gpus_of_the_node(shards, ok):
    # prod's first model moved to a 24gib-x1 pool; put it back on the 4-GPU shape
    found = problems({"llmops:models.0.gpuShape": "24gib-x4", "llmops:models.0.replicas.max": 4,
                      "llmops:models.0.shards": shards}, stack="prod")
    assert found == ([] if ok else [
        f"llmops:models[0] (llama-3-8b).shards: {shards} must divide the 4 GPU(s) per node of shape "
        "'24gib-x4'"])


def test_shards_are_bounded_and_add_gpu_memory():
    assert "less than or equal to 8" in refused({f"{MODEL}.shards": 9})
    assert "greater than or equal to 1" in refused({f"{MODEL}.shards": 0})
    # 4 A10G x 24 GiB x 0.8 = 76.8 GiB: a 41B bf16 model (76.4 GiB) fits sharded 4 ways
    on_x4 = {"llmops:models.0.gpuShape": "24gib-x4", "llmops:models.0.shards": 4,
             "llmops:models.0.replicas.max": 4}
    assert problems({**on_x4, "llmops:models.0.paramsBillion": 41}, stack="prod") == []
    assert "leave 76.8 GiB" in refused({**on_x4, "llmops:models.0.paramsBillion": 41.3}, stack="prod")


def test_a_model_names_a_gpu_shape_some_pool_has():
    assert refused({f"{MODEL}.gpuShape": "80gib-x8"}) == (
        "llmops:models[0] (llama-3-8b).gpuShape: no GPU pool has shape '80gib-x8'; pool shapes: 24gib-x1")


@pytest.mark.parametrize(("name", "ok"), [("ab", True), ("a" * 40, True), ("a", False), ("a" * 41, False),
                                          ("-ab", False), ("ab-", False), ("Ab", False)])
def test_model_names_are_dns_safe(name, ok):
    found = problems({f"{MODEL}.name": name})
    assert found == ([] if ok else [f"llmops:models[0].name: {name!r} must be 2-40 lowercase letters, "
                                    "digits or dashes"])


def test_token_limits_are_consistent():
    assert problems({f"{MODEL}.maxInputTokens": 8191}) == []
    assert refused({f"{MODEL}.maxInputTokens": 8192, f"{MODEL}.maxBatchPrefillTokens": 8192}) == (
        "llmops:models[0]: maxInputTokens (8192) must be less than maxTotalTokens (8192)")
    assert problems({f"{MODEL}.maxBatchPrefillTokens": 4096}) == []
    assert refused({f"{MODEL}.maxBatchPrefillTokens": 4095}) == (
        "llmops:models[0]: maxBatchPrefillTokens (4095) must be at least maxInputTokens (4096)")


def test_replicas_min_may_equal_max_but_not_exceed_it():
    assert problems({f"{MODEL}.replicas": {"min": 2, "max": 2}}) == []
    assert problems({f"{MODEL}.replicas": {"min": 0, "max": 1}}) == []
    assert refused({f"{MODEL}.replicas": {"min": 3, "max": 2}}) == (
        "llmops:models[0]: replicas.min (3) exceeds replicas.max (2)")
    assert "greater than or equal to 1" in refused({f"{MODEL}.replicas": {"min": 0, "max": 0}})


def test_dtype_and_quantize_are_exclusive():
    assert refused({f"{MODEL}.quantize": "awq"}) == (
        "llmops:models[0]: dtype and quantize are exclusive in TGI; give one")


def test_a_model_has_one_release_strategy():
    colours = {"active": "blue", "blue": {"stage": "production"}, "green": {"stage": "staging"}}
    assert refused({f"{MODEL}.blueGreen": colours}) == (
        "llmops:models[0]: give registry (one version) or blueGreen (two colours), not both")
    assert refused({f"{MODEL}.registry": DELETE}) == (
        "llmops:models[0]: give registry (one version) or blueGreen (two colours), not both")
    assert problems({f"{MODEL}.registry": DELETE, f"{MODEL}.blueGreen": colours}) == []
    canary = {"registry": {"stage": "production"}, "weight": 5}
    both = {f"{MODEL}.registry": DELETE, f"{MODEL}.blueGreen": colours, f"{MODEL}.canary": canary}
    assert refused(both) == (
        "llmops:models[0]: canary and blueGreen are different release strategies; pick one")


def test_canary_weight_is_1_to_50_percent():
    for weight, ok in ((1, True), (50, True), (0, False), (51, False)):
        found = problems({f"{MODEL}.canary": {"registry": {"stage": "production"}, "weight": weight}})
        assert (found == []) == ok, (weight, found)


@pytest.mark.parametrize(("ref", "expected"), [
    ({"stage": "production"}, None),
    ({"version": "2025-10-01", "revision": "8afb486c"}, None),
    ({"version": "a" * 64}, None),
    ({}, "give exactly one of stage (resolved from the registry at deploy time) or version (pinned)"),
    ({"stage": "production", "version": "7"},
     "give exactly one of stage (resolved from the registry at deploy time) or version (pinned)"),
    ({"version": "a" * 65}, f"version {'a' * 65!r} may use letters, digits, '.', '_', '-'"),
    ({"version": "-7"}, "version '-7' may use letters, digits, '.', '_', '-'"),
    ({"stage": "production", "revision": "8afb486c"}, "revision pins a version; it needs version"),
], ids=["stage", "pinned", "longest-version", "neither", "both", "long-version", "leading-dash",
        "revision-alone"])
def test_registry_references(ref, expected):
    found = problems({f"{MODEL}.registry": ref})
    assert found == ([] if expected is None else [f"llmops:models[0].registry: {expected}"])


def test_model_names_are_unique():
    second = dict(read_stack_config("dev").values["llmops:models"][0])
    assert refused({"llmops:models.1": second}) == (
        "llmops:models: model names must be unique; repeated: llama-3-8b")


# -- serving, storage, gateway, tags, region ---------------------------------------------------

@pytest.mark.parametrize(("image", "ok"), [
    ("ghcr.io/huggingface/text-generation-inference:3.3.4", True),
    ("registry.local:5000/tgi:3.3.4-rocm", True),
    ("ghcr.io/huggingface/text-generation-inference:latest", False),
    ("ghcr.io/huggingface/text-generation-inference", False),
    ("ghcr.io/huggingface/text-generation-inference:", False),
])
def test_the_tgi_image_is_pinned_by_tag(image, ok):
    found = problems({"llmops:serving.tgiImage": image})
    assert found == ([] if ok else [f"llmops:serving.tgiImage: {image!r} must be pinned by version tag "
                                    "(not latest, not untagged)"])


@pytest.mark.parametrize(("prefix", "ok"), [("registry/", True), ("a/b/", True), ("registry", False),
                                            ("/registry/", False), ("a//b/", False)])
def test_the_registry_prefix_is_a_relative_key_prefix(prefix, ok):
    found = problems({"llmops:storage.registryPrefix": prefix})
    assert found == ([] if ok else [f"llmops:storage.registryPrefix: {prefix!r} must be a relative key "
                                    "prefix ending in '/', e.g. registry/"])


@pytest.mark.parametrize(("key", "low", "high"), [("noncurrentVersionDays", 1, 3650),
                                                  ("abortMultipartDays", 1, 30), ("accessLogDays", 1, 3650)])
def test_storage_retention_bounds(key, low, high):
    assert problems({f"llmops:storage.{key}": low}) == [] and problems({f"llmops:storage.{key}": high}) == []
    assert "greater than or equal to" in refused({f"llmops:storage.{key}": low - 1})
    assert "less than or equal to" in refused({f"llmops:storage.{key}": high + 1})


def test_gateway_scheme_host_and_certificate():
    assert problems({"llmops:gateway.scheme": "internet-facing"}) == []
    assert refused({"llmops:gateway.scheme": "public"}) == (
        "llmops:gateway.scheme: Input should be 'internet-facing' or 'internal' (got 'public')")
    assert refused({"llmops:gateway.host": "LLM.example.com"}).startswith(
        "llmops:gateway.host: String should match pattern")
    assert refused({"llmops:gateway.certificateArn": "arn:aws:acm:us-west-2:123:certificate/x"}).startswith(
        "llmops:gateway.certificateArn: String should match pattern")


@pytest.mark.parametrize(("value", "ok"), [("a" * 256, True), ("cc 1_.:/=+-@", True), ("a" * 257, False),
                                           ("cc#1", False), ("", False)])
def test_tag_values_are_valid_aws_tag_values(value, ok):
    found = problems({"llmops:tags.owner": value})
    assert (found == []) == ok, found


def test_tags_and_names_derive_from_config():
    config = validate({"llmops:tags.extra": {"Team": "ml"}})
    assert config.resource_tags() == {"Environment": "dev", "Project": "llmops", "Owner": "ml-platform",
                                      "CostCentre": "CC-4410-dev", "ManagedBy": "pulumi", "Team": "ml"}
    assert config.cluster_name == "llmops-dev"


@pytest.mark.parametrize(("region", "ok"), [("us-west-2", True), ("us-gov-west-1", True),
                                            ("us-west", False), ("US-west-2", False)])
def test_regions_look_like_aws_regions(region, ok):
    # (the certificate stays in us-west-2: its own check may speak; this one is the region's)
    found = [p for p in problems({"aws:region": region}) if p.startswith("aws:region")]
    assert (found == []) == ok


# -- the error machinery -----------------------------------------------------------------------

def test_helpers_render_paths_and_repeats_the_way_users_read_them():
    assert key_path(["llmops:network", "subnets", 1, "cidr"]) == "llmops:network.subnets[1].cidr"
    assert key_path([]) == ""
    assert repeated(["a", "b", "a", "c", "b", "a"]) == ["a", "b"]
    assert repeated([]) == []
    assert size_order_problem(1, 1, 1) is None
    assert size_order_problem(0, 2, 1) == (
        "sizes must satisfy minSize <= desiredSize <= maxSize; got 0 <= 2 <= 1")


def test_one_problem_and_several_problems_are_counted_in_the_heading():
    with pytest.raises(ConfigError) as one:
        validate({"llmops:network.azCount": 9})
    assert str(one.value) == ("stacks/Pulumi.dev.yaml has 1 configuration problem:\n"
                              "  - llmops:network.azCount: Input should be less than or equal to 6 (got 9)")
    with pytest.raises(ConfigError) as two:
        validate({"llmops:network.azCount": 9, "llmops:gateway.scheme": "x"})
    assert str(two.value).startswith("stacks/Pulumi.dev.yaml has 2 configuration problems:\n  - ")


def test_long_bad_values_are_shortened_in_messages():
    found = refused({"llmops:network.nat": "x" * 100})
    assert found == f"llmops:network.nat: Input should be 'single' or 'per-az' (got '{'x' * 76}...)"


def test_unknown_keys_list_the_allowed_ones_and_the_closest():
    assert refused({"llmops:storage.registryPrefx": "r/"}) == (
        "llmops:storage.registryPrefx: unknown key; did you mean registryPrefix?; allowed keys: "
        "abortMultipartDays, accessLogDays, noncurrentVersionDays, registryPrefix")
    assert refused({"llmops:models.0.replicas.mn": 1}) == (
        "llmops:models[0].replicas.mn: unknown key; did you mean min?; allowed keys: max, min")
    assert refused({"llmops:tagz": 1}) == (
        "llmops:tagz: unknown key; did you mean llmops:tags?; allowed keys: aws:region, llmops:ci, "
        "llmops:cluster, llmops:gateway, llmops:gatewayApiKeys, llmops:gpuPools, llmops:images, "
        "llmops:models, llmops:monitoring, llmops:network, llmops:platformStack, llmops:release, "
        "llmops:serving, llmops:storage, llmops:tags")


# -- survivors of the first mutation run -----------------------------------------------------

def test_unknown_keys_inside_an_optional_section_list_that_section_s_keys():
    canary = {"registry": {"stage": "production", "stag": "x"}, "weight": 5}
    assert refused({f"{MODEL}.canary": canary}) == (
        "llmops:models[0].canary.registry.stag: unknown key; did you mean stage?; allowed keys: "
        "revision, stage, version")


def test_values_of_80_characters_are_shown_whole_and_longer_ones_shortened():
    exactly = "x" * 78                      # repr adds the quotes: 80 characters
    assert refused({"llmops:network.nat": exactly}).endswith(f"(got '{exactly}')")
    longer = "x" * 79
    assert refused({"llmops:network.nat": longer}).endswith(f"(got '{'x' * 76}...)")


def test_every_model_is_checked_even_after_one_names_a_missing_shape():
    second = {**read_stack_config("dev").values["llmops:models"][0], "name": "big", "paramsBillion": 70}
    assert problems({f"{MODEL}.gpuShape": "80gib-x8", "llmops:models.1": second}) == [
        "llmops:models[0] (llama-3-8b).gpuShape: no GPU pool has shape '80gib-x8'; pool shapes: 24gib-x1",
        "llmops:models[1] (big): 70B parameters at bfloat16 need 130.4 GiB of weights but 1 x L4 "
        "(24 GiB, g6.xlarge) leave 19.2 GiB after KV cache headroom; quantize, add shards or use a "
        "larger GPU class",
        "llmops:models[1] (big): needs 162 GiB in the node's model cache but pool 'gpu24-x1' has "
        "232 GiB of NVMe of which 75 GiB stay free (kubelet's eviction threshold and images); use "
        "types with more instance storage"]


def test_explicit_private_subnets_with_carved_public_ones():
    config = validate({"llmops:network.privateSubnets": ["10.20.0.0/19", "10.20.32.0/19"]})
    carved = validate({}).network.layout()
    pairs = [(p.private, p.public) for p in config.network.layout()]
    assert pairs == [(p.private, p.public) for p in carved]
    assert [p.private for p in carved] == ["10.20.0.0/19", "10.20.32.0/19"]


def test_small_models_and_single_limits_are_allowed():
    assert problems({f"{MODEL}.paramsBillion": 0.5, f"{MODEL}.maxConcurrentRequests": 1,
                     f"{MODEL}.queueTarget": 1}) == []
    assert "greater than 0" in refused({f"{MODEL}.paramsBillion": 0})
    assert "greater than or equal to 1" in refused({f"{MODEL}.maxConcurrentRequests": 0})
    assert "greater than or equal to 1" in refused({f"{MODEL}.queueTarget": 0})
    assert refused({f"{MODEL}.maxBatchPrefillTokens": 0}) == (
        "llmops:models[0].maxBatchPrefillTokens: Input should be greater than or equal to 1 (got 0)")


def test_one_owner_character_and_one_system_instance_type_are_enough():
    assert problems({"llmops:tags.owner": "a", "llmops:tags.costCentre": "b",
                     "llmops:cluster.systemNodes.instanceTypes": ["m6i.large"]}) == []
    assert "at least 1 item" in refused({"llmops:cluster.systemNodes.instanceTypes": []})


def test_left_out_settings_get_the_documented_production_defaults():
    values = read_stack_config("dev").values
    cluster = {k: v for k, v in values["llmops:cluster"].items()
               if k not in ("endpointPublicAccess", "publicAccessCidrs", "systemNodes")}
    model = {k: v for k, v in values["llmops:models"][0].items()
             if k not in ("maxConcurrentRequests", "replicas")} | {"replicas": {"min": 1, "max": 1}}
    config = validate({"llmops:cluster": cluster, "llmops:models": [model], "llmops:storage": DELETE,
                       "llmops:gateway.replicas": DELETE, "llmops:monitoring": DELETE,
                       "llmops:gpuPools.0.capacityTypes": DELETE})
    assert config.cluster.endpoint_public_access is False and config.cluster.public_access_cidrs == []
    nodes = config.cluster.system_nodes
    assert (nodes.min_size, nodes.desired_size, nodes.max_size, nodes.root_volume_gib) == (2, 2, 4, 50)
    assert (config.models[0].max_concurrent_requests, config.models[0].queue_target) == (128, 8)
    assert (config.gateway.replicas.min, config.gateway.replicas.max) == (2, 6)
    pool = config.gpu_pools[0]
    assert (pool.capacity, pool.consolidate_after, pool.expire_after, pool.disruption_budget) == (
        ["spot", "on-demand"], "10m", "Never", "10%")
    storage = config.storage
    retention = (storage.noncurrent_version_days, storage.abort_multipart_days, storage.access_log_days)
    assert retention == (30, 7, 365)
    monitoring = config.monitoring
    assert (monitoring.prometheus.replicas, monitoring.alertmanager.replicas) == (1, 1)


def test_pool_names_and_interface_endpoints_are_unique():
    second = {**read_stack_config("dev").values["llmops:gpuPools"][0]}
    assert refused({"llmops:gpuPools.1": second}).startswith(
        "llmops:gpuPools: pool names must be unique; repeated: gpu24-x1")
    other_name = {**second, "name": "gpu24-x1-more"}
    assert refused({"llmops:gpuPools.1": other_name}) == (
        "llmops:gpuPools: one pool per GPU shape (a NodePool may launch any of its types); shapes "
        "repeated: 24gib-x1; merge their instanceTypes")
    assert refused({"llmops:network.interfaceEndpoints": ["sts", "logs", "sts"]}) == (
        "llmops:network.interfaceEndpoints: listed more than once: sts")
    assert problems({"llmops:network.interfaceEndpoints": ["sts"]}) == []


def test_a_pool_lists_an_instance_type_and_the_gateway_a_key_file():
    assert refused({f"{POOL}.instanceTypes": []}).startswith(
        "llmops:gpuPools[0].instanceTypes: List should have at least 2 items")
    assert refused({"llmops:gatewayApiKeys": ""}).startswith(
        "llmops:gatewayApiKeys: String should have at least 1 character")


def test_log_retention_defaults_to_90_days():
    values = read_stack_config("dev").values
    cluster = {k: v for k, v in values["llmops:cluster"].items() if k != "logRetentionDays"}
    config = validate({"llmops:cluster": cluster, "llmops:network.flowLogs": DELETE})
    assert (config.cluster.log_retention_days, config.network.flow_logs.retention_days) == (90, 90)


def test_counts_that_may_be_zero_may_not_be_negative_and_those_that_may_not_be_zero_say_so():
    assert refused({f"{POOL}.maxNodes": -1}) == (
        "llmops:gpuPools[0].maxNodes: Input should be greater than or equal to 1 (got -1)")
    assert refused({"llmops:cluster.systemNodes.desiredSize": 0}) == (
        "llmops:cluster.systemNodes.desiredSize: Input should be greater than or equal to 1 (got 0)")
    assert refused({f"{MODEL}.replicas": {"min": -1, "max": 2}}) == (
        "llmops:models[0].replicas.min: Input should be greater than or equal to 0 (got -1)")
    assert refused({f"{MODEL}.maxInputTokens": 0}) == (
        "llmops:models[0].maxInputTokens: Input should be greater than or equal to 1 (got 0)")


def test_a_schedule_may_keep_a_single_replica():
    peak = {"start": "0 7 * * 1-5", "end": "0 19 * * 1-5", "replicas": 1}
    assert problems({f"{MODEL}.schedules": [peak]}) == []
    assert "greater than or equal to 1" in refused({f"{MODEL}.schedules": [{**peak, "replicas": 0}]})


def test_every_public_access_cidr_is_judged_after_a_malformed_one():
    assert problems({"llmops:cluster.publicAccessCidrs": ["nope", "10.0.0.0/7"]}) == [
        "llmops:cluster.publicAccessCidrs: [0] 'nope' is not an IPv4 CIDR such as 10.0.0.0/16 "
        "(Expected 4 octets in 'nope')",
        "llmops:cluster.publicAccessCidrs: [1] 10.0.0.0/7 opens the API endpoint to (nearly) the "
        "whole internet; list your office/VPN CIDRs instead"]
