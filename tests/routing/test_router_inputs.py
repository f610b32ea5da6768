"""What the pinned router (vllm-router 0.1.17, the cluster's flags) keys its prefix tree on: the
token ids each replica's render API returns (vLLM's /v1/chat/completions/render), asked per
replica for every request (src/backend/preprocess.rs `prepare_http_token_inputs`). Replicas
without that API (TGI 3.3.7 serves none; vLLM 0.34.0 refuses it without --enable-scale-out)
give it no token ids, and it places every request by load alone: no prefix affinity."""

from __future__ import annotations

from tests.routing.conftest import Cluster, chat, system_prompt

DECISIONS = "vllm_router_prefix_routing_decisions_total"


def test_the_router_places_prompts_on_the_token_ids_every_replica_renders(cluster: Cluster):
    replicas = [cluster.sim(), cluster.sim()]
    router = cluster.start_router(replicas)
    for turn in range(3):
        for group in range(2):
            assert chat(router, system_prompt(group), user=f"turn {turn}")[0] == 200
    assert cluster.router_counter("vllm_router_kv_routing_inputs_total", result="render") == 6 * len(replicas)
    assert cluster.router_counter(DECISIONS, outcome="prefix_hit") >= 4  # every later turn
    assert cluster.router_counter(DECISIONS, outcome="missing_tokens") == 0
    assert sum(r.prefix_hits() for r in replicas) > 0


def test_without_a_render_api_the_router_has_no_token_ids_and_places_by_load_alone(cluster: Cluster):
    replicas = [cluster.sim(render=False), cluster.sim(render=False)]
    router = cluster.start_router(replicas)
    for turn in range(3):
        for group in range(2):
            assert chat(router, system_prompt(group), user=f"turn {turn}")[0] == 200  # still served
    assert cluster.router_counter(DECISIONS, outcome="missing_tokens") == 6
    assert cluster.router_counter(DECISIONS, outcome="prefix_hit") == 0
