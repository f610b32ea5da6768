"""`llmops canary promote` and `rollback`: the registry write (moto S3) and the stack-file edit,
on copies of the shipped stacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws

from llmops.cli import main
from serving.registry import ModelRegistry
from serving.release import stackedit
from serving.release.errors import ReleaseError

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "models-release-test"
PROD_CANARY = ("2025-11-12", "5f0b02c75b57c5855da9ae460ce51323ea669d8a")


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ModelRegistry]:
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "LLMOPS_REGISTRY_BUCKET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield ModelRegistry(BUCKET)


def register(registry: ModelRegistry, tmp_path: Path, version: str, revision: str | None = None) -> None:
    source = tmp_path / f"weights-{version}"
    source.mkdir()
    (source / "config.json").write_text(f'{{"version": "{version}"}}')
    registry.register("llama-3-8b", version, source, {"revision": revision} if revision else {})


def models(path: Path) -> dict:
    return {m["name"]: m for m in yaml.safe_load(path.read_text())["config"]["llmops:models"]}


def audit_keys() -> list[str]:
    listing = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="registry/audit/")
    return [o["Key"] for o in listing.get("Contents", [])]


# -- rollback ------------------------------------------------------------------------------------
def test_rollback_prints_the_change_and_leaves_the_file_alone_without_write(stacks, capsys):
    before = (stacks / "Pulumi.prod.yaml").read_text()
    assert main(["canary", "rollback", "--model", "llama-3-8b", "--stack", "prod",
                 "--stacks-dir", str(stacks)]) == 0
    out = capsys.readouterr().out
    assert "autoscaling.keda.sh/paused-replicas=0" in out and "tgi-llama-3-8b-canary" in out
    assert "-      canary:                      # next release, pinned, on 5% of traffic" in out
    assert "pulumi up --stack prod" in out
    assert (stacks / "Pulumi.prod.yaml").read_text() == before


def test_rollback_with_write_removes_only_the_canary_and_keeps_comments(stacks):
    path = stacks / "Pulumi.prod.yaml"
    before_text, before = path.read_text(), models(path)
    assert main(["canary", "rollback", "--model", "llama-3-8b", "--stack", "prod",
                 "--stacks-dir", str(stacks), "--write"]) == 0
    after = models(path)
    assert "canary" not in after["llama-3-8b"]
    before["llama-3-8b"].pop("canary")
    assert after == before
    removed = set(before_text.splitlines()) - set(path.read_text().splitlines())
    assert len(removed) == 3  # the canary key, its registry and its weight
    assert path.read_text().count("#") == before_text.count("#") - 1


def test_rollback_of_a_model_without_canary_is_a_clear_error(stacks, capsys):
    assert main(["canary", "rollback", "--model", "qwen-2-5-32b", "--stack", "prod",
                 "--stacks-dir", str(stacks)]) == 1
    assert capsys.readouterr().err == ("error: stacks/Pulumi.prod.yaml: model 'qwen-2-5-32b' has "
                                       "no canary block; nothing to remove\n")


def test_rollback_of_an_unknown_model_lists_the_models(stacks, capsys):
    assert main(["canary", "rollback", "--model", "llama", "--stack", "prod",
                 "--stacks-dir", str(stacks)]) == 1
    assert "no model 'llama' in llmops:models; models: llama-3-8b, qwen-2-5-32b" in capsys.readouterr().err


def test_the_editor_handles_block_style_registry_and_models_in_any_key_order():
    text = ("config:\n  llmops:models:\n    - pool: p  # the pool\n      name: m\n"
            "      registry:\n        stage: production\n      canary:\n        registry:\n"
            "          stage: staging\n        weight: 5\n\n    - name: other\n      pool: p\n")
    out = stackedit.pin_registry(stackedit.remove_canary(text, "s", "m"), "s", "m", "v2", "abc")
    assert out == ("config:\n  llmops:models:\n    - pool: p  # the pool\n      name: m\n"
                   '      registry: {version: "v2", revision: "abc"}\n\n'
                   "    - name: other\n      pool: p\n")


def test_the_editor_refuses_what_it_cannot_edit_safely():
    flow = "config:\n  llmops:models: [{name: m, canary: {weight: 5}}]\n"
    with pytest.raises(ReleaseError, match="flow style"):
        stackedit.remove_canary(flow, "s", "m")
    on_dash = "config:\n  llmops:models:\n    - canary: {weight: 5}\n      name: m\n"
    with pytest.raises(ReleaseError, match="on the list item's `- ` line"):
        stackedit.remove_canary(on_dash, "s", "m")


# -- promote ---------------------------------------------------------------------------------------
def test_promote_of_a_stage_canary_moves_production_and_drops_the_canary(registry, stacks, tmp_path,
                                                                           capsys):
    register(registry, tmp_path, "v1")
    register(registry, tmp_path, "v2")
    registry.promote("llama-3-8b", "v1", "production")
    registry.promote("llama-3-8b", "v2", "staging")  # staging's canary follows stage staging
    path = stacks / "Pulumi.staging.yaml"
    before = models(path)
    assert main(["canary", "promote", "--model", "llama-3-8b", "--stack", "staging",
                 "--stacks-dir", str(stacks), "--bucket", BUCKET, "--write"]) == 0
    out = capsys.readouterr().out
    assert "production of llama-3-8b: v1 -> v2" in out
    assert "the stable track follows stage production" in out
    assert registry.get("llama-3-8b", stage="production")["version"] == "v2"
    assert len(audit_keys()) == 3  # v1 production, v2 staging, v2 production
    before["llama-3-8b"].pop("canary")
    assert models(path) == before  # stable still follows production: only the canary goes


def test_promote_of_a_pinned_canary_repins_the_stable_track(registry, stacks, tmp_path, capsys):
    register(registry, tmp_path, "2025-10-01", "8afb486c1db24fe5011ec46dfbe5b5dccdb575c2")
    register(registry, tmp_path, PROD_CANARY[0], PROD_CANARY[1])
    registry.promote("llama-3-8b", "2025-10-01", "production")
    path = stacks / "Pulumi.prod.yaml"
    assert main(["canary", "promote", "--model", "llama-3-8b", "--stack", "prod",
                 "--stacks-dir", str(stacks), "--bucket", BUCKET]) == 0
    out = capsys.readouterr().out
    assert f'+      registry: {{version: "{PROD_CANARY[0]}", revision: "{PROD_CANARY[1]}"}}' in out
    assert "(not written" in out
    assert registry.get("llama-3-8b", stage="production")["version"] == PROD_CANARY[0]
    assert "canary" in models(path)["llama-3-8b"]  # without --write the file is untouched


def test_promote_refuses_a_canary_whose_revision_differs_and_writes_nothing(registry, stacks,
                                                                           tmp_path, capsys):
    register(registry, tmp_path, PROD_CANARY[0], "0" * 40)
    assert main(["canary", "promote", "--model", "llama-3-8b", "--stack", "prod",
                 "--stacks-dir", str(stacks), "--bucket", BUCKET]) == 1
    assert f"pins the canary of 'llama-3-8b' to revision {PROD_CANARY[1]}" in capsys.readouterr().err
    assert registry.stages("llama-3-8b") == {}
    assert audit_keys() == []


def test_promote_of_an_unregistered_canary_is_the_registry_error(registry, stacks, capsys):
    assert main(["canary", "promote", "--model", "llama-3-8b", "--stack", "prod",
                 "--stacks-dir", str(stacks), "--bucket", BUCKET]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "llama-3-8b" in err
    assert audit_keys() == []


def test_promote_needs_a_bucket(stacks, capsys, monkeypatch):
    monkeypatch.delenv("LLMOPS_REGISTRY_BUCKET", raising=False)
    assert main(["canary", "promote", "--model", "llama-3-8b", "--stack", "prod",
                 "--stacks-dir", str(stacks)]) == 1
    assert "no registry bucket: pass --bucket or set LLMOPS_REGISTRY_BUCKET" in capsys.readouterr().err


def test_a_file_that_cannot_be_written_is_a_clear_error(tmp_path):
    from llmops.commands.canary import _write

    (tmp_path / "file").write_text("")
    with pytest.raises(ReleaseError, match=r"^cannot write --json .*/file/out.json: File exists$"):
        _write(tmp_path / "file" / "out.json", "{}", "--json")


def test_rollback_pauses_the_canary_scaler_of_the_model_s_engine(stacks, capsys):
    path = stacks / "Pulumi.prod.yaml"
    text = path.read_text()
    assert "      engine: vllm " in text  # qwen-2-5-32b
    path.write_text(text.replace("      replicas: {min: 2, max: 4}\n", "      replicas: {min: 2, max: 4}\n"
                                 "      canary:\n        registry: {stage: staging}\n        weight: 5\n"))
    assert main(["canary", "rollback", "--model", "qwen-2-5-32b", "--stack", "prod",
                 "--stacks-dir", str(stacks)]) == 0
    out = capsys.readouterr().out
    assert "annotate scaledobject vllm-qwen-2-5-32b-canary autoscaling.keda.sh/paused-replicas=0" in out
