"""A TGI model's router (vllm-router 0.1.17 `consistent_hash`, components/router.py policy_of) in
front of replicas without the render API: it places each request by the `x-session-id` the
gateway derives from the prompt's leading text (serving/gateway/affinity.py), so one chat's
turns stay on one replica and hit its prefix cache, and a body `session_id` cannot move them."""

from __future__ import annotations

from serving.gateway.affinity import SESSION_HEADER, affinity_key
from tests.routing.conftest import Cluster, chat, system_prompt


def _key(system: str, user: str) -> dict[str, str]:
    body = {"messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}
    return {SESSION_HEADER: affinity_key("/v1/chat/completions", body)}


def _served(replicas) -> list[int]:
    return [r.requests_seen() for r in replicas]


def test_requests_with_one_prompt_key_land_on_one_replica_and_hit_its_cache(cluster: Cluster):
    replicas = [cluster.sim(render=False) for _ in range(3)]
    router = cluster.start_router(replicas, policy="consistent_hash")
    header = _key(system_prompt(1), "the chat's first question")  # every turn repeats it
    for turn in range(4):
        assert chat(router, system_prompt(1), user=f"turn {turn}", headers=header)[0] == 200
    served = _served(replicas)
    assert sorted(served) == [0, 0, 4], served
    assert replicas[served.index(4)].prefix_hits() > 0


def test_a_body_session_id_or_user_does_not_override_the_gateways_header(cluster: Cluster):
    replicas = [cluster.sim(render=False) for _ in range(3)]
    router = cluster.start_router(replicas, policy="consistent_hash")
    header = _key(system_prompt(2), "q")
    for pin in range(6):  # distinct body ids would spread over the ring if the router read them
        assert chat(router, system_prompt(2), headers=header, session_id=f"pin-{pin}",
                    user=f"pin-{pin}")[0] == 200
    assert sorted(_served(replicas)) == [0, 0, 6]


def test_distinct_prompt_keys_spread_over_the_replicas(cluster: Cluster):
    replicas = [cluster.sim(render=False) for _ in range(3)]
    router = cluster.start_router(replicas, policy="consistent_hash")
    for group in range(24):
        assert chat(router, system_prompt(group), headers=_key(system_prompt(group), "q"))[0] == 200
    assert all(_served(replicas)), _served(replicas)  # 24 keys on a ring of 3 x 160 points


def test_a_dead_replicas_chats_move_to_a_survivor(cluster: Cluster):
    replicas = [cluster.sim(render=False) for _ in range(2)]
    router = cluster.start_router(replicas, policy="consistent_hash")
    header = _key(system_prompt(3), "q")
    assert chat(router, system_prompt(3), headers=header)[0] == 200
    owner = next(r for r in replicas if r.requests_seen())
    survivor = next(r for r in replicas if r is not owner)
    owner.kill()
    statuses = [chat(router, system_prompt(3), user=f"after {i}", headers=header)[0] for i in range(3)]
    assert statuses == [200, 200, 200], statuses
    assert survivor.requests_seen() == 3
