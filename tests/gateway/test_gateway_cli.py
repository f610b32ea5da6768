"""`llmops gateway` as an operator runs it: clean one-line errors and exit 1 (never a
traceback), every config problem at once, a useful --help, and logs that never carry keys."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from serving.gateway.auth import hash_key
from serving.gateway.config import load_config
from tests.cli.conftest import Run, llmops

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-operator-secret-0123456789"


def _cli(*args: str, process: bool = False) -> Run:
    """`llmops gateway ARGS`: in this process (config errors, --help), or as a real process
    where the server starts (tests/cli/conftest.py)."""
    return llmops("gateway", *args, process=process)


def _config(tmp_path: Path, config: dict, keys: dict | None = None) -> Path:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    if keys is not None:
        (tmp_path / "keys.yaml").write_text(yaml.safe_dump(keys))
    return tmp_path / "config.yaml"


GOOD = {"models": {"m": {"backends": {"stable": {"url": "http://127.0.0.1:9"}}}},
        "keys": [{"id": "op", "sha256": hash_key(SECRET), "models": ["*"]}]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_port_in_use_is_one_error_line_and_exit_1(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _cli("--config", str(_config(tmp_path, GOOD)), "--port", str(port), process=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[0] == (
        f"error: cannot listen on 127.0.0.1:{port}: address already in use")


def test_a_missing_keys_file_is_reported_with_every_other_problem(tmp_path):
    bad = {"models": {"m": {"backends": {"stable": {"url": "ftp://x"}}}}, "keysFile": "keys.yaml"}
    result = _cli("--config", str(_config(tmp_path, bad)))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {tmp_path / 'config.yaml'} has 2 problem(s):")
    assert f"  - keysFile: {tmp_path / 'keys.yaml'}: no such file" in result.stderr
    assert "  - models.m.backends.stable.url: String should match pattern" in result.stderr


def test_problems_in_the_keys_file_name_the_keys_file(tmp_path):
    config = {**GOOD, "keysFile": "keys.yaml"}
    del config["keys"]
    keys = {"keys": [{"id": "app", "sha256": "plaintext", "models": ["m"], "requestsPerMinut": 5}]}
    result = _cli("--config", str(_config(tmp_path, config, keys)))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    keys_path = tmp_path / "keys.yaml"
    assert f"  - {keys_path}: keys[0].sha256: must be the lowercase hex SHA-256" in result.stderr
    assert (f"  - {keys_path}: keys[0].requestsPerMinut: unknown key; did you mean "
            "requestsPerMinute?") in result.stderr


def test_a_keys_file_that_is_not_yaml_is_named(tmp_path):
    config = {**GOOD, "keysFile": "keys.yaml"}
    del config["keys"]
    path = _config(tmp_path, config)
    (tmp_path / "keys.yaml").write_text("keys: [unclosed\n")
    result = _cli("--config", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"  - keysFile: {tmp_path / 'keys.yaml'} is not valid YAML" in result.stderr


def test_help_describes_the_command_and_its_defaults():
    result = _cli("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "TGI-compatible" in text
    assert "(default: 127.0.0.1)" in text and "(default: 8000)" in text
    assert "(default: None)" not in text
    assert "docs/gateway.md" in text


def test_the_example_config_in_the_docs_loads(tmp_path):
    doc = (ROOT / "docs" / "gateway.md").read_text()
    example = re.search(r"## Configuration.*?```yaml\n(.*?)```", doc, re.S).group(1)
    (tmp_path / "config.yaml").write_text(example)
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump(
        {"keys": [{"id": "app", "sha256": hash_key("sk-app"), "models": ["*"]}]}))
    config = load_config(tmp_path / "config.yaml")
    assert config.keys[0].id == "app"
    for route in config.models.values():
        assert route.fallback is None or route.fallback in config.models


def test_logs_never_carry_an_api_key_even_from_malformed_requests(tmp_path):
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "llmops.cli", "gateway", "--config",
                                str(_config(tmp_path, GOOD)), "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        for raw in (f"POST /generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n {SECRET}\r\n"
                    "Content-Length: 2\r\n\r\n{}",
                    f"POST /generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\x01\r\n"
                    "Content-Length: 2\r\n\r\n{}",
                    f"GET /health {SECRET}\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(raw.encode("latin-1"))
                sock.recv(4096)
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    assert SECRET not in out + err
    assert "sk-operator" not in out + err
    assert "bad HTTP request from 127.0.0.1 (BadHttpMessage); request line and headers not logged" in err


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])  # production's, and Python's own
def test_sigterm_drains_readiness_first_then_503_while_streams_finish_then_exit_0(tmp_path, loop,
                                                                                  event_loop):
    import json
    import signal
    import threading

    import requests

    from tests.gateway.fake_tgi import FakeBehaviour, create_fake_tgi

    upstream = FakeBehaviour(reply="one two three four five six", token_delay_s=0.3)
    runner, upstream_url = loop.run(loop.serve(create_fake_tgi(upstream)))
    port = _free_port()
    config = {**GOOD, "models": {"m": {"backends": {"stable": {"url": upstream_url}}}}}
    process = subprocess.Popen([sys.executable, "-m", "llmops.cli", "gateway", "--config",
                                str(_config(tmp_path, config)), "--port", str(port),
                                "--drain-seconds", "20", "--loop", event_loop], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {SECRET}"}
    events: list[bytes] = []
    try:
        for _ in range(100):
            try:
                if requests.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)

        def stream() -> None:
            with requests.post(f"{url}/generate_stream", json={"inputs": "q"}, headers=headers,
                               stream=True, timeout=20) as response:
                events.extend(line for line in response.iter_lines() if line)
        streaming = threading.Thread(target=stream)
        streaming.start()
        while not upstream.requests:
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        for _ in range(50):
            if requests.get(f"{url}/ready", timeout=1).status_code == 503:
                break
            time.sleep(0.05)
        assert requests.get(f"{url}/ready", timeout=1).status_code == 503
        refused = requests.post(f"{url}/generate", json={"inputs": "q"}, headers=headers, timeout=5)
        assert (refused.status_code, refused.headers["Retry-After"]) == (503, "1")
        streaming.join(20)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
        loop.run(runner.cleanup())
    assert json.loads(events[-1][5:])["generated_text"] == "one two three four five six"
    assert process.returncode == 0 and "Traceback" not in err, err
    assert "draining: readiness fails, new requests get 503" in err
    assert f"connections; {event_loop} event loop)" in out  # it ran on the loop asked for
