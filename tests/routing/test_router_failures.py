"""How routing fails, on the real router (vllm-router 0.1.17 with the cluster's flags) in front of
simulated replicas on loopback: a replica that dies mid-stream, a router that restarts and loses
its prefix tree, and discovery that lags a scale-up. No timing thresholds: deadlines only bound
hangs."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
import urllib.request

from tests.routing.conftest import Cluster, chat, system_prompt, wait_until


def _open_stream(url: str, system: str) -> http.client.HTTPResponse:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    connection.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"},
                       body=json.dumps({"model": "sim", "stream": True, "max_tokens": 400, "messages": [
                           {"role": "system", "content": system}, {"role": "user", "content": "go"}]}))
    return connection.getresponse()


def test_a_replica_dying_mid_stream_ends_that_stream_and_later_requests_reach_the_survivor(cluster: Cluster):
    a, b = cluster.sim(decode_ms=20, out_tokens=400), cluster.sim(decode_ms=20, out_tokens=400)
    router = cluster.start_router([a, b])
    system = system_prompt(1)
    response = _open_stream(router, system)
    assert response.status == 200
    first = response.readline()
    assert first.startswith(b"data:")                      # streaming from one replica
    serving = a if a.requests_seen() else b
    survivor = b if serving is a else a
    serving.kill()                                          # its pod is gone mid-answer
    rest = b""
    try:
        rest = response.read()
    except (http.client.IncompleteRead, ConnectionError) as error:
        rest = getattr(error, "partial", b"")
    # the client learns the answer was cut (no [DONE]); it is never passed off as complete
    assert b"[DONE]" not in rest
    # the same prompt again (its prefix is in the dead replica's branch of the tree): the
    # router's retries open the dead replica's breaker and the survivor answers, every time
    # (with the release's default breaker of 10 failures, the first two of these failed)
    before = survivor.requests_seen()
    statuses = [chat(router, system, user=f"again {i}")[0] for i in range(6)]
    assert statuses == [200] * 6, statuses
    assert survivor.requests_seen() > before


def test_a_restarted_router_loses_its_tree_and_relearns_it_without_failing_a_request(cluster: Cluster):
    a, b = cluster.sim(), cluster.sim()
    router = cluster.start_router([a, b])
    for group in range(4):
        assert chat(router, system_prompt(group))[0] == 200
    cluster.stop_router()                                   # the pod restarts: its prefix tree is gone
    router = cluster.start_router([a, b])
    hits_per_turn, statuses = [], []
    for turn in range(3):
        before = a.prefix_hits() + b.prefix_hits()
        statuses += [chat(router, system_prompt(group), user=f"turn {turn}")[0] for group in range(4)]
        hits_per_turn.append(a.prefix_hits() + b.prefix_hits() - before)
    assert set(statuses) == {200}                           # degraded placement, never a failure
    # the new router learns where each prompt went: later turns reuse the cached prefixes
    assert hits_per_turn[2] > 0 and hits_per_turn[2] >= hits_per_turn[0], hits_per_turn


def test_a_replica_discovery_has_not_seen_yet_gets_no_traffic_and_nothing_fails_meanwhile(cluster: Cluster):
    a = cluster.sim()
    router = cluster.start_router([a])
    b = cluster.sim()                                        # scaled up; discovery has not caught up
    statuses = [chat(router, system_prompt(group), user=f"user {group}")[0] for group in range(6)]
    assert set(statuses) == {200}
    assert b.requests_seen() == 0
    # discovery registers a Ready pod through the router's add_worker (src/service_discovery.rs);
    # the router's HTTP API does the same for a static router
    request = urllib.request.Request(f"{router}/add_worker?url={urllib.parse.quote(b.url)}", method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
    # new prompts go to the least-loaded replica (cache_aware below its match threshold), so
    # under concurrent load the new, idle replica takes them; nothing fails meanwhile
    statuses: list[int] = []
    groups = iter(range(6, 10_000))

    def new_prefix_reaches_b() -> bool:
        batch = [next(groups) for _ in range(4)]
        threads = [threading.Thread(target=lambda g=g: statuses.append(
            chat(router, system_prompt(g), user=f"user {g}")[0])) for g in batch]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return b.requests_seen() > 0

    wait_until(new_prefix_reaches_b, "the new replica taking new prefixes")
    assert set(statuses) == {200}


def test_concurrent_streams_through_the_router_all_complete(cluster: Cluster):
    """The bench's shape in miniature: many conversations at once, every stream ends in [DONE]."""
    replicas = [cluster.sim(), cluster.sim()]
    router = cluster.start_router(replicas)
    results: list[tuple[int, str]] = []
    threads = [threading.Thread(target=lambda g=g: results.append(chat(router, system_prompt(g % 3))))
               for g in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 12
    assert all(status == 200 and body.rstrip().endswith("data: [DONE]") for status, body in results)
