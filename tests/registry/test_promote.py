"""promote() and get(): stage pointers, the audit log, and compare-and-swap under races."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from serving.registry import ModelRegistry, PromotionConflict, RegistryError
from serving.registry.store import JsonStore
from tests.registry.conftest import BUCKET, snapshot, write_model

POINTER = "registry/models/tiny-llm/stages/production.json"


@pytest.fixture
def three_versions(registry, tmp_path: Path) -> ModelRegistry:
    for n in (1, 2, 3):
        registry.register("tiny-llm", f"v{n}", write_model(tmp_path / f"v{n}", {"w.bin": bytes([n]) * 10}))
    return registry


def audit_records(s3) -> list[dict]:
    keys = sorted(k for k in snapshot(s3) if k.startswith("registry/audit/tiny-llm/"))
    return [json.loads(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()) | {"_key": k} for k in keys]


def test_promote_writes_the_stage_pointer_and_get_resolves_it(three_versions, s3):
    result = three_versions.promote("tiny-llm", "v2", "production")

    obj = s3.get_object(Bucket=BUCKET, Key=POINTER)
    assert obj["ContentType"] == "application/json"
    pointer = json.loads(obj["Body"].read())
    v2 = three_versions.get("tiny-llm", version="v2")
    assert pointer == result.pointer
    assert {k: pointer[k] for k in ("name", "stage", "version", "revision", "uri", "previousVersion")} == {
        "name": "tiny-llm", "stage": "production", "version": "v2", "revision": v2["revision"],
        "uri": v2["uri"], "previousVersion": None}
    assert pointer["promotedBy"] == "arn:aws:sts::123456789012:user/moto"
    assert three_versions.get("tiny-llm") == v2
    assert three_versions.get("tiny-llm", stage="production") == v2


def test_stages_are_independent(three_versions):
    three_versions.promote("tiny-llm", "v1", "production")
    three_versions.promote("tiny-llm", "v3", "staging")
    assert three_versions.get("tiny-llm", stage="staging")["version"] == "v3"
    assert three_versions.get("tiny-llm", stage="production")["version"] == "v1"
    assert {s: p["version"] for s, p in three_versions.stages("tiny-llm").items()} == {
        "production": "v1", "staging": "v3"}


def test_every_promotion_leaves_one_immutable_audit_record(three_versions, s3):
    three_versions.promote("tiny-llm", "v1", "production")
    second = three_versions.promote("tiny-llm", "v2", "production")

    records = audit_records(s3)
    assert [(r["version"], r["previousVersion"], r["stage"]) for r in records] == [
        ("v1", None, "production"), ("v2", "v1", "production")]
    assert records[1]["_key"] == second.audit_key
    assert second.audit_key.startswith("registry/audit/tiny-llm/")
    assert second.audit_key.endswith("Z-production-v2.json")
    assert records[1]["promotedAt"] == second.pointer["promotedAt"]


def test_promoting_the_version_a_stage_already_has_changes_nothing(three_versions, s3):
    three_versions.promote("tiny-llm", "v1", "production")
    before = snapshot(s3)

    again = three_versions.promote("tiny-llm", "v1", "production")

    assert not again.changed and again.audit_key is None
    assert snapshot(s3) == before


class InterleavingStore(JsonStore):
    """Runs `interloper` right after this registry reads the stage pointer: a deterministic race."""

    def __init__(self, s3, bucket, interloper):
        super().__init__(s3, bucket)
        self.interloper = interloper

    def read(self, key):
        found = super().read(key)
        if key.endswith("/stages/production.json") and self.interloper:
            interloper, self.interloper = self.interloper, None
            interloper()
        return found


def racing_pair(s3, interloper_version: str) -> tuple[ModelRegistry, ModelRegistry]:
    loser = ModelRegistry(BUCKET, s3_client=s3, identity="alice")
    winner = ModelRegistry(BUCKET, s3_client=s3, identity="bob")
    loser.store = InterleavingStore(s3, BUCKET, lambda: winner.promote("tiny-llm", interloper_version,
                                                                       "production"))
    return loser, winner


@pytest.mark.parametrize("existing", [None, "v1"], ids=["first-pointer-IfNoneMatch", "replace-IfMatch"])
def test_the_loser_of_a_promotion_race_gets_a_conflict_and_nothing_is_lost(three_versions, s3, existing):
    if existing:
        three_versions.promote("tiny-llm", existing, "production")
    loser, _ = racing_pair(s3, "v3")

    with pytest.raises(PromotionConflict) as err:
        loser.promote("tiny-llm", "v2", "production")

    assert str(err.value).startswith(
        f"production of tiny-llm changed while promoting v2 (expected {existing or 'no version'}): "
        "it now points at v3 (promoted by bob at ")
    assert "Nothing was written" in str(err.value)
    pointer = json.loads(s3.get_object(Bucket=BUCKET, Key=POINTER)["Body"].read())
    assert (pointer["version"], pointer["promotedBy"], pointer["previousVersion"]) == ("v3", "bob", existing)
    assert [r["version"] for r in audit_records(s3)] == [*([existing] if existing else []), "v3"]


def test_a_race_that_ends_where_the_caller_wanted_is_not_an_error(three_versions, s3):
    three_versions.promote("tiny-llm", "v1", "production")
    loser, _ = racing_pair(s3, "v2")

    result = loser.promote("tiny-llm", "v2", "production")

    assert not result.changed
    assert result.pointer["promotedBy"] == "bob"
    assert [r["version"] for r in audit_records(s3)] == ["v1", "v2"]


def test_two_threads_promoting_at_once_one_wins_one_gets_the_conflict(three_versions, s3):
    three_versions.promote("tiny-llm", "v1", "production")
    both_read = threading.Barrier(2, timeout=10)

    class BarrierStore(JsonStore):
        waited = False

        def read(self, key):
            found = super().read(key)
            if key == POINTER and not self.waited:
                self.waited = True
                both_read.wait()  # both hold the same ETag before either writes
            return found

    outcomes: dict[str, object] = {}

    def promote(who: str, version: str) -> None:
        registry = ModelRegistry(BUCKET, s3_client=s3, identity=who)
        registry.store = BarrierStore(s3, BUCKET)
        try:
            outcomes[who] = registry.promote("tiny-llm", version, "production").pointer["version"]
        except PromotionConflict as exc:
            outcomes[who] = exc

    threads = [threading.Thread(target=promote, args=a) for a in (("alice", "v2"), ("bob", "v3"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    winners = {who: v for who, v in outcomes.items() if isinstance(v, str)}
    losers = {who: e for who, e in outcomes.items() if isinstance(e, PromotionConflict)}
    assert len(winners) == 1 and len(losers) == 1, outcomes
    (winner, version), conflict = next(iter(winners.items())), next(iter(losers.values()))
    assert f"it now points at {version} (promoted by {winner}" in str(conflict)
    assert three_versions.get("tiny-llm")["version"] == version
    assert [r["version"] for r in audit_records(s3)] == ["v1", version]


def test_a_failed_audit_write_says_the_pointer_moved(three_versions, s3, monkeypatch):
    real_put = s3.put_object

    def deny_audit(**kwargs):
        if kwargs["Key"].startswith("registry/audit/"):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject")
        return real_put(**kwargs)

    monkeypatch.setattr(s3, "put_object", deny_audit)
    with pytest.raises(RegistryError) as err:
        three_versions.promote("tiny-llm", "v1", "production")

    message = str(err.value)
    assert message.startswith("production of tiny-llm now points at v1, but its audit record "
                              "registry/audit/tiny-llm/")
    assert "could not be written: writing s3://models-test/registry/audit/tiny-llm/" in message
    assert message.endswith("failed: AccessDenied: Access Denied")
    assert three_versions.get("tiny-llm")["version"] == "v1"


def test_an_audit_record_that_already_exists_is_an_error_not_silence(three_versions, s3):
    from datetime import UTC, datetime
    fixed = datetime(2025, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)
    three_versions._clock = lambda: fixed
    audit_key = "registry/audit/tiny-llm/20250131T120000.123456Z-production-v1.json"
    s3.put_object(Bucket=BUCKET, Key=audit_key, Body=b'{"planted": true}')

    with pytest.raises(RegistryError) as err:
        three_versions.promote("tiny-llm", "v1", "production")

    assert str(err.value) == (f"production of tiny-llm now points at v1, but the audit record {audit_key} "
                              "already existed and was not overwritten")
    assert json.loads(s3.get_object(Bucket=BUCKET, Key=audit_key)["Body"].read()) == {"planted": True}
