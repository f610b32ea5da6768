"""The TGI pod's cache containers run as the plan renders them, on one "node" (a directory
standing in for the hostPath) against a moto registry: two pods download once, the version a
pod holds survives another pod's eviction, and TGI's --model-id finds the verified files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.model_cache import HOLD_READY_FILE, WEIGHTS_DIR
from llmops.cli import main
from tests.cli.conftest import ROOT
from tests.registry.conftest import BUCKET


def _pod(plans) -> dict:
    [tgi] = [d for d in plans["dev"].of_type("kubernetes:apps/v1:Deployment")
             if d.inputs["metadata"]["name"] == "tgi-llama-3-8b"]
    return tgi.inputs["spec"]["template"]["spec"]


def _on_this_node(command: list[str], node: Path, ready: Path) -> list[str]:
    """The container's command with the pod's mounts mapped to this machine: the hostPath to
    `node`, the sidecar's state dir to `ready`, the bucket to moto's. The reserve is sized
    for a GPU node's disk (tens of GiB), not this machine's."""
    mapped = [str(node) if c == WEIGHTS_DIR else str(ready) if c == HOLD_READY_FILE else c
              for c in command]
    for flag, value in (("--bucket", BUCKET), ("--reserve-gib", "0")):
        if flag in mapped:
            mapped[mapped.index(flag) + 1] = value
    assert mapped[0] == "llmops"
    return mapped[1:]


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


@pytest.fixture
def pod_containers(plans) -> dict[str, dict]:
    pod = _pod(plans)
    return {c["name"]: c for c in [*pod["initContainers"], *pod["containers"]]}


def test_two_pods_on_a_node_download_once_and_a_held_version_is_never_evicted(
        pod_containers, s3, monkeypatch, model_dir, tmp_path, capsys):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    fetch, hold, tgi = (pod_containers[n] for n in ("fetch-weights", "hold-weights", "tgi"))
    version, revision = _flag(fetch["command"], "--version"), _flag(fetch["command"], "--revision")
    prefix = _flag(fetch["command"], "--prefix")
    register = ["registry", "--bucket", BUCKET, "--prefix", prefix, "register", "llama-3-8b"]
    assert main([*register, version, str(model_dir), "--metadata", f"revision={revision}",
                 "--no-progress"]) == 0
    node, ready = tmp_path / "node-cache", tmp_path / "hold-state" / "holding"
    node.mkdir()
    ready.parent.mkdir()
    capsys.readouterr()

    # the sidecar starts first; the fetch waits for its startupProbe (the ready file)
    sidecar = subprocess.Popen(
        [sys.executable, "-m", "llmops.cli", *_on_this_node(hold["command"], node, ready)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert sidecar.poll() is None, "the hold sidecar exited before holding"
            assert time.monotonic() < deadline, "the hold never became ready"
            time.sleep(0.1)

        assert main(_on_this_node(fetch["command"], node, ready)) == 0
        assert capsys.readouterr().out.startswith(f"fetched llama-3-8b {version} (revision {revision})")
        model_id = _flag(tgi["args"], "--model-id").replace(WEIGHTS_DIR, str(node), 1)
        assert (Path(model_id) / "config.json").read_bytes() == b'{"model_type": "llama"}'

        # a second replica on the node: no bytes move
        assert main(_on_this_node(fetch["command"], node, ready)) == 0
        assert capsys.readouterr().out.endswith("; no bytes moved\n")

        # another model version that needs the room: the held one is not evicted
        assert main([*register, "2099-01-01", str(model_dir), "--metadata", "revision=r2",
                     "--no-progress"]) == 0
        other = _on_this_node(fetch["command"], node, ready)
        other[other.index("--version") + 1], other[other.index("--revision") + 1] = "2099-01-01", "r2"
        capsys.readouterr()
        assert main([*other, "--max-cache-gib", str(20 * 1024 / 1024**3)]) == 1
        err = capsys.readouterr().err
        assert "busy: llama-3-8b " + version in err and err.rstrip().endswith("Nothing was deleted")
        assert (Path(model_id) / "config.json").is_file()
    finally:
        sidecar.send_signal(signal.SIGTERM)
        assert sidecar.wait(30) == 0
    assert not ready.exists(), "a restarted sidecar must not look ready before it holds again"
