"""`llmops registry ...` end to end through llmops.cli.main, on moto."""

from __future__ import annotations

import io
import json

import pytest

from llmops.cli import main
from serving.registry import TextProgress
from tests.registry.conftest import BUCKET, snapshot


@pytest.fixture
def cli(s3, monkeypatch):
    monkeypatch.setenv("LLMOPS_REGISTRY_BUCKET", BUCKET)
    return main


def test_register_list_promote_show_download_round_trip(cli, capsys, model_dir, tmp_path):
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"license": "apache-2.0", "revision": "from-file"}))

    assert cli(["registry", "register", "tiny-llm", "v1", str(model_dir), "--metadata-file", str(meta),
                "--metadata", "revision=abc123", "--metadata", "note=a=b"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("registered tiny-llm v1: 4 files, ")
    assert "revision abc123, at s3://models-test/registry/models/tiny-llm/v1/files/" in out
    assert "uploading [" in err and "100%" in err, "the progress bar is drawn on stderr"

    assert cli(["registry", "register", "tiny-llm", "v2", str(model_dir), "--no-progress"]) == 0
    assert cli(["registry", "promote", "tiny-llm", "v1", "--stage", "production"]) == 0
    assert cli(["registry", "promote", "tiny-llm", "v2", "--stage", "staging"]) == 0
    out = capsys.readouterr().out
    assert "production of tiny-llm: (none) -> v1 (audit record registry/audit/tiny-llm/" in out
    assert "staging of tiny-llm: (none) -> v2" in out

    assert cli(["registry", "list", "tiny-llm"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["VERSION", "REVISION", "SIZE", "REGISTERED", "BY", "STAGES"]
    assert lines[1].split()[0:2] == ["v1", "abc123"] and lines[1].split()[-1] == "production"
    assert lines[2].split()[0] == "v2" and lines[2].split()[-1] == "staging"

    assert cli(["registry", "show", "tiny-llm"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == "v1"
    assert shown["metadata"] == {"license": "apache-2.0", "revision": "abc123", "note": "a=b"}
    assert cli(["registry", "show", "tiny-llm", "--version", "v2"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == "v2"

    assert cli(["registry", "download", "tiny-llm", str(tmp_path / "out"), "--stage", "staging",
                "--no-progress"]) == 0
    assert "checksums verified" in capsys.readouterr().out
    assert (tmp_path / "out" / "tokenizer" / "special" / "tokens_map.json").read_bytes() == b"{}"


def test_registering_identical_content_again_says_nothing_to_do(cli, capsys, model_dir):
    cli(["registry", "register", "tiny-llm", "v1", str(model_dir), "--no-progress"])
    assert cli(["registry", "register", "tiny-llm", "v1", str(model_dir), "--no-progress"]) == 0
    assert capsys.readouterr().out.endswith(
        "tiny-llm v1 is already registered with identical content; nothing to do\n")


def test_errors_print_cleanly_and_exit_1_leaving_the_registry_alone(cli, capsys, s3, model_dir):
    cli(["registry", "register", "tiny-llm", "v1", str(model_dir), "--no-progress"])
    capsys.readouterr()
    before = snapshot(s3)

    assert cli(["registry", "promote", "tiny-llm", "v1", "--stage", "prod"]) == 1
    assert capsys.readouterr().err == (
        "error: unknown stage 'prod': allowed stages are staging, production\n")
    assert cli(["registry", "show", "nope"]) == 1
    assert capsys.readouterr().err.startswith("error: unknown model 'nope'")
    assert cli(["registry", "register", "tiny-llm", "v2", str(model_dir), "--metadata", "novalue"]) == 1
    assert capsys.readouterr().err == "error: invalid --metadata 'novalue': expected KEY=VALUE\n"
    assert snapshot(s3) == before


def test_bucket_is_required_from_flag_or_environment(s3, capsys, model_dir):
    assert main(["registry", "list", "tiny-llm"]) == 1
    assert capsys.readouterr().err == (
        "error: no registry bucket: pass --bucket or set LLMOPS_REGISTRY_BUCKET\n")
    assert main(["registry", "--bucket", BUCKET, "--prefix", "team-a", "register", "m", "v1",
                 str(model_dir), "--no-progress"]) == 0
    assert "team-a/models/m/v1/manifest.json" in snapshot(s3)


def test_progress_bar_renders_fraction_and_sizes():
    stream = io.StringIO()
    bar = TextProgress(stream, width=10, min_interval=0)
    bar.start("uploading", 4 * 1024 * 1024)
    bar.advance(1024 * 1024)
    assert bar.render() == "uploading [##........]  25% 1.0 MiB/4.0 MiB"
    bar.advance(3 * 1024 * 1024)
    bar.finish()
    assert stream.getvalue().endswith("\ruploading [##########] 100% 4.0 MiB/4.0 MiB\n")


def test_download_into_a_file_prints_one_error_line_and_exits_1(tmp_path):
    """Run as a user would (a subprocess): the check happens before any network call."""
    import os
    import subprocess
    import sys
    taken = tmp_path / "weights"
    taken.write_text("not a directory")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", "llmops.cli", "registry", "--bucket", BUCKET, "download",
                           "tiny-llm", str(taken), "--version", "v1", "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1
    assert done.stderr == f"error: download destination {str(taken)!r} exists and is not a directory\n"
    assert done.stdout == ""


def test_download_reports_what_moved_and_rejects_bad_fetch_settings(cli, capsys, model_dir, tmp_path):
    cli(["registry", "register", "tiny-llm", "v1", str(model_dir), "--no-progress"])
    capsys.readouterr()
    out = tmp_path / "out"
    assert cli(["registry", "download", "tiny-llm", str(out), "--version", "v1", "--no-progress",
                "--concurrency", "3", "--part-size-mib", "1"]) == 0
    assert capsys.readouterr().out == (f"downloaded tiny-llm v1 (4 files, checksums verified) to {out}: "
                                       "16.0 KiB fetched, 0 files already present\n")
    assert cli(["registry", "download", "tiny-llm", str(out), "--version", "v1", "--no-progress"]) == 0
    assert capsys.readouterr().out.endswith(": 0 B fetched, 4 files already present\n")
    assert cli(["registry", "download", "tiny-llm", str(out), "--concurrency", "0"]) == 1
    assert capsys.readouterr().err == "error: fetch concurrency must be 1-512, got 0\n"


def test_fetch_into_the_cache_then_hit_and_clean_errors(cli, capsys, model_dir, tmp_path):
    cli(["registry", "register", "tiny-llm", "v1", str(model_dir), "--metadata", "revision=r1",
         "--no-progress"])
    capsys.readouterr()
    cache, link = tmp_path / "cache", tmp_path / "model"
    args = ["registry", "fetch", "tiny-llm", "--version", "v1", "--cache-dir", str(cache), "--no-progress",
            "--reserve-gib", "0"]

    assert cli([*args, "--link-to", str(link)]) == 0
    assert capsys.readouterr().out.startswith(
        f"fetched tiny-llm v1 (revision r1) into {cache}/entries/tiny-llm/v1/r1/files: 16.0 KiB in ")
    assert (link / "config.json").read_bytes() == b'{"model_type": "llama"}'
    assert cli([*args, "--revision", "r1"]) == 0
    assert capsys.readouterr().out == (f"cache hit: tiny-llm v1 (revision r1) at "
                                       f"{cache}/entries/tiny-llm/v1/r1/files; no bytes moved\n")

    assert cli([*args, "--max-cache-gib", "-1"]) == 1
    assert capsys.readouterr().err == "error: --max-cache-gib must not be negative, got -1\n"
    (tmp_path / "real-dir").mkdir()
    assert cli([*args, "--link-to", str(tmp_path / "real-dir")]) == 1
    assert capsys.readouterr().err == (f"error: --link-to {str(tmp_path / 'real-dir')!r} exists and is not "
                                       "a symlink; not replacing it\n")
    assert cli(["registry", "cache", "list", "--cache-dir", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err == f"error: cache directory {str(tmp_path / 'nowhere')!r} does not exist\n"
