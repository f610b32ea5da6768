"""Every failure of `llmops` ends in an `error:` line and a documented exit code, never a
traceback: mistakes in config, in the registry pins, in output paths, and Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import ROOT, edit_config, llmops


def test_more_zones_than_the_region_offers_is_one_config_error(stacks_dir: Path):
    edit_config(stacks_dir / "Pulumi.dev.yaml",
                lambda c: c["llmops:network"].update(azCount=5))
    # a real process: the program fails mid-run, and the interpreter's teardown stays quiet
    run = llmops("plan", "--stack", "dev", "--stacks-dir", str(stacks_dir), process=True)
    assert run.returncode == 2
    assert run.first_line == ("error: llmops:network.azCount is 5 but us-west-2 offers only 4 "
                              "available zones: us-west-2a, us-west-2b, us-west-2c, us-west-2d")
    assert len(run.stderr.splitlines()) == 1


def test_a_pinned_revision_other_than_the_registrys_is_one_config_error(stacks_dir: Path):
    pinned = "a" * 40
    edit_config(stacks_dir / "Pulumi.dev.yaml", lambda c: c["llmops:models"][0].update(
        registry={"version": "2025-11-12", "revision": pinned}))
    run = llmops("plan", "--stack", "dev", "--stacks-dir", str(stacks_dir))
    assert run.returncode == 2
    assert run.first_line == (
        "error: model llama-3-8b version 2025-11-12 has revision "
        f"5f0b02c75b57c5855da9ae460ce51323ea669d8a in the registry, but config pins {pinned}")
    assert len(run.stderr.splitlines()) == 1


def test_field_errors_and_cross_section_errors_come_in_one_round(stacks_dir: Path):
    """The README's example: a bad azCount no longer hides that the model does not fit."""
    def change(config):
        config["llmops:network"]["azCount"] = 7
        config["llmops:models"][0]["paramsBillion"] = 70
    edit_config(stacks_dir / "Pulumi.dev.yaml", change)
    run = llmops("plan", "--stack", "dev", "--stacks-dir", str(stacks_dir))
    assert run.returncode == 2
    assert run.first_line.endswith("Pulumi.dev.yaml has 3 configuration problems:")
    assert "llmops:network.azCount: Input should be less than or equal to 6 (got 7)" in run.stderr
    assert ("llmops:models[0] (llama-3-8b): 70B parameters at bfloat16 need 130.4 GiB of weights"
            in run.stderr)
    assert "llmops:models[0] (llama-3-8b): needs 162 GiB in the node's model cache" in run.stderr


def test_an_unknown_region_is_refused_with_the_closest_real_ones(stacks_dir: Path):
    edit_config(stacks_dir / "Pulumi.dev.yaml", lambda c: c.update({"aws:region": "us-west-9"}))
    run = llmops("plan", "--stack", "dev", "--stacks-dir", str(stacks_dir))
    assert run.returncode == 2
    assert "aws:region: 'us-west-9' is not an AWS region; did you mean us-west-2" in run.stderr


def test_errors_name_the_file_in_the_given_stacks_dir(stacks_dir: Path):
    edit_config(stacks_dir / "Pulumi.dev.yaml", lambda c: c["llmops:network"].update(azCount=9))
    run = llmops("plan", "--stack", "dev", "--stacks-dir", str(stacks_dir))
    assert run.returncode == 2
    assert run.first_line == f"error: {stacks_dir}/Pulumi.dev.yaml has 1 configuration problem:"


def test_a_missing_offline_registry_is_named_as_such(stacks_dir: Path):
    (stacks_dir / "offline-registry.yaml").unlink()
    run = llmops("plan", "--stack", "dev", "--stacks-dir", str(stacks_dir))
    assert run.returncode == 1
    assert run.first_line.startswith(f"error: {stacks_dir}/offline-registry.yaml does not exist")


def test_manifests_at_a_file_fails_before_anything_is_written(tmp_path: Path):
    not_a_dir, plan_json = tmp_path / "manifests", tmp_path / "plan.json"
    not_a_dir.write_text("")
    run = llmops("plan", "--stack", "dev", "--json", str(plan_json), "--manifests", str(not_a_dir))
    assert run.returncode == 1
    assert run.first_line.startswith(f"error: --manifests {not_a_dir} is a file; give a directory")
    assert not plan_json.exists()


def test_json_into_a_missing_directory_is_an_error_not_a_new_tree(tmp_path: Path):
    target = tmp_path / "typo" / "plan.json"
    run = llmops("plan", "--stack", "dev", "--json", str(target))
    assert run.returncode == 1
    assert run.first_line.startswith(f"error: --json {target}: directory {target.parent} does "
                                     "not exist")
    assert not target.parent.exists()


def test_a_reused_manifests_dir_holds_only_the_last_plan_and_the_users_files(tmp_path: Path):
    out = tmp_path / "manifests"
    assert llmops("plan", "--stack", "prod", "--quiet", "--no-policy",
                  "--manifests", str(out)).returncode == 0
    prod_files = set(out.glob("*.yaml"))
    (out / "notes.yaml").write_text("mine: true\n")
    run = llmops("plan", "--stack", "dev", "--quiet", "--no-policy", "--manifests", str(out))
    assert run.returncode == 0
    dev_files = set(out.glob("*.yaml")) - {out / "notes.yaml"}
    assert f"wrote {len(dev_files)} Kubernetes manifests" in run.stdout
    assert len(prod_files) > len(dev_files)  # prod has more objects: the old ones are gone
    assert (out / "notes.yaml").read_text() == "mine: true\n"


@pytest.mark.parametrize("delay", [0.3, 1.5], ids=["while-importing", "while-planning"])
def test_ctrl_c_prints_one_line_and_exits_130(delay: float):
    """Wherever Ctrl-C lands it ends the plan: not swallowed by a Pulumi task (exit 0 after
    a full plan), not stranding a future the program waits on (a hang)."""
    process = subprocess.Popen([sys.executable, "-m", "llmops.cli", "plan", "--stack", "prod"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    assert process.poll() is None, "the plan finished before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr == "interrupted\n"


def test_help_documents_the_exit_codes_and_version_prints_the_package_version():
    from importlib.metadata import version

    help_text = llmops("--help").stdout
    assert "exit status:" in help_text
    for line in ("0    success", "2    bad stack configuration", "3    a mandatory policy",
                 "130  interrupted"):
        assert line in help_text
    run = llmops("--version", process=True)
    assert run.returncode == 0
    assert run.first_line == f"llmops {version('llmops-platform')}"


def test_version_answers_without_loading_the_subcommands():
    """`llmops --version` must not pay for importing Pulumi and every command (seconds)."""
    probe = ("import sys\nfrom llmops.cli import main\ntry:\n    main(['--version'])\n"
             "except SystemExit:\n    pass\nprint(sorted(m for m in ('pulumi', 'pydantic') "
             "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.stdout.splitlines()[-1] == "[]"
    assert result.stdout.startswith("llmops ")


def test_a_subcommands_own_version_option_is_not_taken_for_llmops_version(capsys):
    from llmops.cli import main

    # `registry show NAME --version V` selects a model version; without a bucket it is an error
    assert main(["registry", "--bucket", "", "show", "tiny", "--version", "v2"]) != 0
    assert not capsys.readouterr().out.startswith("llmops ")
