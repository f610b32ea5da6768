"""The gateway's config file: validated once at start, every problem named, no traceback."""

from __future__ import annotations

import subprocess
import sys

import yaml

from serving.gateway.auth import hash_key
from serving.gateway.config import load_config

GOOD = {"models": {"m": {"backends": {"stable": {"url": "http://tgi-m.llm-serving.svc:8080"}}}},
        "keysFile": "keys.yaml"}


def _write(tmp_path, config, keys=None):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    if keys is not None:
        (tmp_path / "keys.yaml").write_text(yaml.safe_dump(keys))
    return tmp_path / "config.yaml"


def test_config_and_mounted_keys_file_load_together(tmp_path):
    keys = {"keys": [{"id": "app", "sha256": hash_key("sk-app"), "models": ["m"]}]}
    config = load_config(_write(tmp_path, GOOD, keys))
    assert config.keys[0].id == "app"
    assert config.models["m"].backends.stable.url.endswith(":8080")


def test_the_stacks_routing_document_is_a_valid_gateway_config(tmp_path, plans):
    """What the stack renders into the ConfigMap is what the gateway accepts."""
    config_map = plans["prod"].one("kubernetes:core/v1:ConfigMap", "gateway-config")
    (tmp_path / "config.yaml").write_text(config_map.inputs["data"]["config.yaml"])
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump({"keys": []}))
    config = load_config(tmp_path / "config.yaml")
    assert config.models["llama-3-8b"].backends.canary.weight == 5


def test_bad_config_exits_non_zero_with_every_problem_and_no_traceback(tmp_path):
    bad = {"models": {"m": {"backends": {"stable": {"url": "ftp://x"}}, "fallback": "nope",
                            "maxNewTokenz": 5}},
           "keys": [{"id": "k", "sha256": "plaintext-key", "models": ["m"]}],
           "limits": {"denyPatterns": ["(unclosed"]}}
    path = _write(tmp_path, bad)
    result = subprocess.run([sys.executable, "-m", "llmops.cli", "gateway", "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for expected in ("models.m.backends.stable.url: String should match pattern",
                     "models.m.maxNewTokenz: unknown key; did you mean maxNewTokens?",
                     "keys[0].sha256: must be the lowercase hex SHA-256 of the key",
                     "limits.denyPatterns: '(unclosed' is not a regular expression"):
        assert expected in result.stderr, result.stderr


def test_a_missing_keys_file_is_named(tmp_path):
    result = subprocess.run([sys.executable, "-m", "llmops.cli", "gateway", "--config",
                             str(_write(tmp_path, GOOD))], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "keys.yaml: no such file" in result.stderr
