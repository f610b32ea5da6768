"""Inputs a new user gets wrong are refused before anything is planned or written: the
message names the file, the key and what is allowed, the exit code is the documented one
(2 for stack configuration, 1 for a file), and the plan's output targets stay untouched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import ROOT, Run, edit_config, llmops


def plan_writing(stacks_dir: Path, tmp_path: Path, *extra: str) -> tuple[Run, list[Path]]:
    """`llmops plan --stack dev` with both output targets; returns the run and the targets."""
    targets = [tmp_path / "plan.json", tmp_path / "manifests"]
    run = llmops("plan", "--stack", "dev", "--stacks-dir", str(stacks_dir),
                 "--json", str(targets[0]), "--manifests", str(targets[1]), *extra)
    return run, targets


def assert_nothing_written(targets: list[Path]) -> None:
    assert [t for t in targets if t.exists()] == []


def replace_line(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


# --- the environment and workloads stack files ------------------------------------------------

def test_a_key_written_twice_is_refused_with_both_lines(stacks_dir: Path, tmp_path: Path):
    env = stacks_dir / "Pulumi.dev.yaml"
    replace_line(env, "    azCount: 2\n", "    azCount: 2\n    nat: single\n    azCount: 3\n")
    lines = env.read_text().splitlines()
    first, second = (i + 1 for i, line in enumerate(lines) if line == "    azCount: 2"
                     or line == "    azCount: 3")
    run, targets = plan_writing(stacks_dir, tmp_path)
    assert run.returncode == 2
    assert run.first_line == f"error: {env} has 2 configuration problems:"
    assert (f"llmops:network.azCount: written twice (lines {first} and {second}); YAML would "
            "silently keep only the last: write it once") in run.stderr
    assert "llmops:network.nat: written twice" in run.stderr
    assert_nothing_written(targets)


def test_a_key_written_twice_inside_a_list_item_names_its_path(stacks_dir: Path):
    replace_line(stacks_dir / "Pulumi.dev.yaml", "      paramsBillion: 8\n",
                 "      paramsBillion: 8\n      paramsBillion: 70\n")
    run = llmops("cost", "--stack", "dev", "--stacks-dir", str(stacks_dir))
    assert run.returncode == 2
    assert "llmops:models[0].paramsBillion: written twice" in run.stderr


@pytest.mark.parametrize(("encoding", "expected"), [
    ("utf-16", "is UTF-16 text (it starts with a UTF-16 byte-order mark); it must be UTF-8"),
    ("utf-16-le", "has NUL bytes (line 1): it looks like UTF-16 or UTF-32 text; it must be UTF-8"),
])
def test_an_environment_file_in_utf16_names_the_encoding_expected(
        stacks_dir: Path, tmp_path: Path, encoding: str, expected: str):
    env = stacks_dir / "Pulumi.dev.yaml"
    env.write_bytes(env.read_text().encode(encoding))
    run, targets = plan_writing(stacks_dir, tmp_path)
    assert run.returncode == 1
    assert run.first_line.startswith(f"error: {env} {expected}: save it as UTF-8")
    assert "a bug in llmops" not in run.stderr
    assert_nothing_written(targets)


def test_latin1_bytes_in_an_environment_file_are_located(stacks_dir: Path, tmp_path: Path):
    env = stacks_dir / "Pulumi.dev.yaml"
    text = env.read_text().replace("owner: ml-platform", "owner: ml-plateforme-\u00e9quipe")
    env.write_bytes(text.encode("latin-1"))
    line = next(i + 1 for i, s in enumerate(text.splitlines()) if "\u00e9" in s)
    run, targets = plan_writing(stacks_dir, tmp_path)
    assert run.returncode == 1
    assert run.first_line == (f"error: {env} is not UTF-8 text: byte 0xe9 on line {line} is not "
                              "UTF-8 (Latin-1 or Windows-1252?); it must be UTF-8: save it as "
                              "UTF-8 (e.g. `iconv -f <its encoding> -t UTF-8`)")
    assert_nothing_written(targets)


def test_a_utf8_byte_order_mark_is_accepted(stacks_dir: Path):
    env = stacks_dir / "Pulumi.dev.yaml"
    env.write_bytes(b"\xef\xbb\xbf" + env.read_bytes())
    assert llmops("cost", "--stack", "dev", "--stacks-dir", str(stacks_dir)).returncode == 0


@pytest.mark.parametrize("which", ["Pulumi.dev.yaml", "workloads/Pulumi.dev.yaml",
                                   "offline-registry.yaml"])
def test_a_stack_file_that_is_a_directory_is_called_one(stacks_dir: Path, tmp_path: Path,
                                                         which: str):
    path = stacks_dir / which
    path.unlink()
    path.mkdir()
    run, targets = plan_writing(stacks_dir, tmp_path)
    assert run.returncode == 1
    assert run.first_line == f"error: {path} is a directory, not a file"
    assert_nothing_written(targets)


def test_a_setting_in_the_workloads_stack_file_is_refused_naming_that_file(
        stacks_dir: Path, tmp_path: Path):
    """It used to replace the environment file's whole section, and the missing keys of the
    replaced section were blamed on the environment file."""
    workloads, env = stacks_dir / "workloads" / "Pulumi.dev.yaml", stacks_dir / "Pulumi.dev.yaml"
    edit_config(workloads, lambda c: c.update({"llmops:network": {"azCount": 3},
                                               "aws:region": "us-east-1",
                                               "kubernetes:enableServerSideApply": True}))
    run, targets = plan_writing(stacks_dir, tmp_path)
    assert run.returncode == 2
    assert run.first_line == f"error: {env} + {workloads} has 2 configuration problems:"
    assert (f"  - llmops:network: not a secret, so it does not belong in {workloads} (that file "
            "holds only the workloads stack's secrets: llmops:gatewayApiKeys, llmops-secrets:*); "
            f"set it in {env}, the environment file both stacks read") in run.stderr
    assert (f"  - aws:region: differs from {env}'s; the workloads stack deploys where the "
            f"environment file says: delete it from {workloads} or make it the same") in run.stderr
    assert "kubernetes:" not in run.stderr  # other namespaces are the providers' business
    assert "required value is missing" not in run.stderr  # no longer blamed on the env file
    assert_nothing_written(targets)


def test_the_workloads_stack_file_may_repeat_the_environments_region(stacks_dir: Path):
    edit_config(stacks_dir / "workloads" / "Pulumi.dev.yaml",
                lambda c: c.update({"aws:region": "us-west-2"}))
    assert llmops("secrets", "--stack", "dev", "--stacks-dir", str(stacks_dir)).returncode == 0


def test_secrets_refuses_a_setting_in_the_workloads_stack_file_too(stacks_dir: Path):
    edit_config(stacks_dir / "workloads" / "Pulumi.dev.yaml",
                lambda c: c.update({"llmops:models": []}))
    run = llmops("secrets", "--stack", "dev", "--stacks-dir", str(stacks_dir))
    assert run.returncode == 2
    assert "llmops:models: not a secret, so it does not belong in" in run.stderr


def test_exit_codes_are_the_same_through_a_pipe(stacks_dir: Path):
    """`llmops plan ... | tee log` in CI: the status the shell sees (pipefail) is llmops's."""
    replace_line(stacks_dir / "Pulumi.dev.yaml", "    azCount: 2\n", "    azCount: 2\n    azCount: 2\n")
    command = (f"set -o pipefail; {sys.executable} -m llmops.cli plan --stack dev "
               f"--stacks-dir {stacks_dir} | cat")
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert "llmops:network.azCount: written twice" in result.stderr


# --- output targets -----------------------------------------------------------------------------
# /proc takes no new files, for root too (os.access says it does): the plan must find out
# before it runs, not after a full plan ("a bug in llmops").

@pytest.mark.parametrize(("option", "target", "expected"), [
    ("--json", "/proc/plan.json", "error: --json /proc/plan.json: cannot write in directory "
     "/proc (its file system takes no new files); write elsewhere"),
    ("--manifests", "/proc/manifests", "error: --manifests /proc/manifests: cannot write in "
     "directory /proc (its file system takes no new files); write elsewhere"),
    ("--json", "/proc/self/status", "error: --json /proc/self/status cannot be written "
     "(invalid argument); write elsewhere"),
])
def test_an_output_target_that_cannot_be_written_fails_before_the_plan(
        tmp_path: Path, option: str, target: str, expected: str):
    other = ["--manifests", str(tmp_path / "manifests")] if option == "--json" else [
        "--json", str(tmp_path / "plan.json")]
    run = llmops("plan", "--stack", "dev", option, target, *other)
    assert run.returncode == 1
    assert run.first_line == expected
    assert run.stdout == ""  # refused before planning: no summary
    assert list(tmp_path.iterdir()) == []


def test_writable_targets_are_checked_without_leaving_a_file(tmp_path: Path):
    from llmops.offline.output_paths import check_targets

    existing = tmp_path / "old.json"
    existing.write_text("keep")
    check_targets(tmp_path / "plan.json", tmp_path / "manifests")
    check_targets(existing, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]
    assert existing.read_text() == "keep"


# --- schedules ----------------------------------------------------------------------------------

def test_schedules_keda_would_reject_are_refused_every_one_at_once(stacks_dir: Path, tmp_path: Path):
    env = stacks_dir / "Pulumi.dev.yaml"
    edit_config(env, lambda c: c["llmops:models"][0].update(schedules=[
        {"start": "0 7 * * 1-5", "end": "0 19 * * 7", "replicas": 2, "timezone": "Europe/Berln"},
        {"start": "0 25 * * *", "end": "@daily", "replicas": 2}]))
    run, targets = plan_writing(stacks_dir, tmp_path)
    assert run.returncode == 2
    assert run.first_line == f"error: {env} has 4 configuration problems:"
    path = "llmops:models[0].schedules"
    assert (f"  - {path}[0].end: '0 19 * * 7': day of week field '7': 7 is above 6 (allowed: 0-6 "
            "or SUN-SAT; Sunday is 0)") in run.stderr
    assert (f"  - {path}[0].timezone: 'Europe/Berln' is not an IANA time zone; did you mean "
            "Europe/Berlin or") in run.stderr
    assert (f"  - {path}[1].start: '0 25 * * *': hour field '25': 25 is above 23 (allowed: 0-23)"
            in run.stderr)
    assert f"  - {path}[1].end: '@daily': descriptors such as @daily are not accepted by KEDA" in run.stderr
    assert_nothing_written(targets)


# --- ARNs that must be where the stack is -----------------------------------------------------

CERTIFICATE = "arn:aws:acm:{region}:123456789012:certificate/0b3a7c9e-5d1f-4e2a-9c8b-7f6e5d4c3b2a"
CREDENTIAL = "arn:aws:secretsmanager:{region}:{account}:secret:ecr-pullthroughcache/ghcr-AbCdEf"


def test_arns_aws_requires_in_the_stacks_region_and_account_are_refused(
        stacks_dir: Path, tmp_path: Path):
    env = stacks_dir / "Pulumi.dev.yaml"

    def change(config):
        config["aws:allowedAccountIds"] = ["123456789012"]
        config["llmops:gateway"]["certificateArn"] = CERTIFICATE.format(region="us-east-1")
        config["llmops:images"] = {"ghcrCredentialArn": CREDENTIAL.format(
            region="us-west-2", account="210987654321")}
    edit_config(env, change)
    run, targets = plan_writing(stacks_dir, tmp_path)
    assert run.returncode == 2
    assert run.first_line == f"error: {env} has 2 configuration problems:"
    assert (f"  - llmops:gateway.certificateArn: '{CERTIFICATE.format(region='us-east-1')}' is in "
            "us-east-1 but the stack deploys to us-west-2 (aws:region); an ALB can only use an ACM "
            "certificate of its own region: request or import one there") in run.stderr
    credential = CREDENTIAL.format(region="us-west-2", account="210987654321")
    assert (f"  - llmops:images.ghcrCredentialArn: '{credential}' is in account 210987654321 "
            "but the stack deploys to "
            "123456789012 (aws:allowedAccountIds); ECR reads a pull-through cache's credential "
            "only from the rule's own account and region") in run.stderr
    assert_nothing_written(targets)


def test_a_connection_from_another_region_is_accepted_connections_are_global(stacks_dir: Path):
    edit_config(stacks_dir / "Pulumi.dev.yaml", lambda c: c["llmops:ci"].update(
        githubConnectionArn="arn:aws:codeconnections:eu-west-1:123456789012:connection/"
                            "7d2c4f1e-9a3b-4c5d-8e6f-1a2b3c4d5e6f"))
    assert llmops("cost", "--stack", "dev", "--stacks-dir", str(stacks_dir)).returncode == 0


# --- the gateway's config and keys ------------------------------------------------------------

HASH = "0" * 64


def test_the_gateway_reports_every_problem_of_its_config_and_keys_at_once(tmp_path: Path):
    """A field error used to hide the cross-references (fallback, defaultModel), and keys
    granting models the gateway does not serve were never checked."""
    config, keys = tmp_path / "gateway.yaml", tmp_path / "keys.yaml"
    config.write_text("models:\n  llama:\n    backends: {stable: {url: 'http://llama:80'}}\n"
                      "    fallback: qwen\n    maxNewTokens: 0\nkeysFile: keys.yaml\n"
                      "defaultModel: mistral\n")
    keys.write_text(f"keys:\n  - {{id: team-a, sha256: abc, models: [llama]}}\n"
                    f"  - {{id: team-b, sha256: '{HASH}', models: [gpt-4, llama, mixtral]}}\n")
    run = llmops("gateway", "--config", str(config), "--port", "0")
    assert run.returncode == 1
    assert run.stdout == ""  # never started
    assert run.stderr.splitlines() == [
        f"error: {config} has 5 problem(s):",
        "  - models.llama.maxNewTokens: Input should be greater than or equal to 1 (got 0)",
        f"  - {keys}: keys[0].sha256: must be the lowercase hex SHA-256 of the key, never the "
        "key itself",
        "  - models.llama.fallback: 'qwen' is not a configured model; models: llama",
        "  - defaultModel: 'mistral' is not a configured model",
        f"  - {keys}: keys[1] (team-b): grants 'gpt-4', 'mixtral', models that are not "
        "configured; configured models: llama (or '*' for all)"]


# --- replicas the pools can never hold ----------------------------------------------------------

def test_cost_refuses_to_price_replicas_the_pools_can_never_hold(stacks_dir: Path, tmp_path: Path):
    """dev's one pool of shape 24gib-x1 holds at most 3 nodes x 1 GPU."""
    env = stacks_dir / "Pulumi.dev.yaml"
    edit_config(env, lambda c: c["llmops:models"][0].update(replicas={"min": 1, "max": 40}))
    expected = (f"error: {env} has 1 configuration problem:\n"
                "  - llmops:models[0] (llama-3-8b).replicas.max: 40 replicas x 1 GPU(s) each need 40 "
                "GPUs but the pools of shape '24gib-x1' (gpu24-x1) hold at most 3; lower "
                "replicas.max to 3 or raise the pools' maxNodes\n")
    cost = llmops("cost", "--stack", "dev", "--stacks-dir", str(stacks_dir))
    assert (cost.returncode, cost.stdout, cost.stderr) == (2, "", expected)
    run, targets = plan_writing(stacks_dir, tmp_path)
    assert (run.returncode, run.stderr) == (2, expected)
    assert_nothing_written(targets)


@pytest.mark.parametrize(("command", "expected"), [
    (["policy", "check", "--resources", "{dir}"], "error: {dir} is a directory, not a file"),
    (["diff", "{dir}", "dev"], "error: {dir} is a directory, not a plan JSON file nor a stack; "
                               "stacks: dev, prod, staging"),
])
def test_a_plan_path_that_is_a_directory_is_called_one(tmp_path: Path, command, expected):
    run = llmops(*[part.format(dir=tmp_path) for part in command])
    assert run.returncode == 1
    assert run.first_line == expected.format(dir=tmp_path)


def test_plan_refuses_keys_granting_unknown_models_with_the_other_secret_problems(
        stacks_dir: Path, tmp_path: Path):
    """Offline the keys are a placeholder unless a user writes them in plain text: then both
    mistakes are named in one round (the grant is checked wherever the keys are readable)."""
    workloads = stacks_dir / "workloads" / "Pulumi.dev.yaml"
    keys = f"keys:\n- {{id: team-a, sha256: '{HASH}', models: [llama-3-70b]}}\n"
    edit_config(workloads, lambda c: c.update({"llmops:gatewayApiKeys": keys}))
    run, targets = plan_writing(stacks_dir, tmp_path)
    assert run.returncode == 2
    assert ("  - llmops:gatewayApiKeys: keys[0] (team-a): grants 'llama-3-70b', a model that is "
            "not configured; configured models: llama-3-8b (or '*' for all)") in run.stderr
    assert f"  - llmops:gatewayApiKeys: a secret written in plain text in {workloads}" in run.stderr
    assert_nothing_written(targets)
