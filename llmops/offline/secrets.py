"""Which secrets an environment needs, where they are set, and the checks that keep their
values out of the YAML: a secret written in plain text is an error naming the command that
encrypts it, and a misspelled `llmops-secrets:` key is caught with "did you mean".

Secrets belong to the workloads stack (it is the one that reads them), so the commands run
in stacks/workloads, where `pulumi config set --secret` encrypts with that stack's key.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from vocabulary.config import (
    ConfigError,
    PlatformConfig,
    misplaced_key_problem,
    misplaced_workloads_keys,
    secret_config_keys,
)
from vocabulary.config.monitoring import GRAFANA_PASSWORD_KEY, SECRETS_NAMESPACE
from vocabulary.stackfile import StackConfig

#: The directory whose Pulumi project (llmops-workloads) owns the secrets.
WORKLOADS_DIR = "stacks/workloads"
GATEWAY_KEYS = "llmops:gatewayApiKeys"


def is_secret_key(key: str) -> bool:
    """A config key whose value is a secret wherever it is written."""
    return key.startswith(f"{SECRETS_NAMESPACE}:") or key in secret_config_keys()


def set_command(key: str, stack: str) -> str:
    """The shell command that sets `key` encrypted in the stack that reads it. Pulumi prompts
    for a value not given on the command line; multi-line values are piped from a file."""
    source = " < gateway-keys.yaml" if key == GATEWAY_KEYS else ""
    return f"(cd {WORKLOADS_DIR} && pulumi config set --secret --stack {stack} {key}{source})"


@dataclass(frozen=True)
class SecretStatus:
    """One secret the stack reads: what it is for, the file it belongs in, whether it is set
    there (as a `secure:` value; the plan never decrypts it)."""

    key: str
    purpose: str
    file: str
    is_set: bool


def needed_secrets(config: PlatformConfig) -> dict[str, str]:
    """Secret key -> what it is for: every key the two programs read as a secret."""
    purposes = {GATEWAY_KEYS: "the gateway's API keys file (hashed keys, per-model access)",
                f"{SECRETS_NAMESPACE}:{GRAFANA_PASSWORD_KEY}": "Grafana's admin password"}
    for receiver in config.monitoring.receivers:
        purposes.setdefault(f"{SECRETS_NAMESPACE}:{receiver.secret_key}",
                            f"alert receiver {receiver.name!r} ({receiver.type})")
    keys = [*secret_config_keys(), *config.monitoring_secret_keys()]
    return {key: purposes.get(key, "read by the stack as a secret") for key in keys}


def secret_statuses(config: PlatformConfig, workloads_file: StackConfig) -> list[SecretStatus]:
    """Each needed secret and whether the workloads stack's file holds it as `secure:`."""
    return [SecretStatus(key, purpose, workloads_file.source, key in workloads_file.secret_keys)
            for key, purpose in needed_secrets(config).items()]


def placeholder_note(statuses: list[SecretStatus], stack: str) -> str:
    """The plan's line about secrets: every one is a placeholder offline; say which are unset."""
    if not statuses:
        return "Secrets: none read by this stack"
    missing = [s.key for s in statuses if not s.is_set]
    file = statuses[0].file
    if not missing:
        return (f"Secrets: all {len(statuses)} set in {file}; planned with placeholders (the "
                "offline plan does not decrypt them)")
    return (f"Secrets: planned with placeholders for {len(missing)} not set in {file} "
            f"({', '.join(missing)}); `llmops secrets --stack {stack}` shows how to set them")


def placement_problems(file: StackConfig, *, is_workloads_file: bool) -> list[str]:
    """Secret keys written where they do not work: as plain YAML values in either file (they
    would be committed), or encrypted in the environment file, whose values are encrypted
    with the platform stack's key, which the workloads stack (the reader) cannot decrypt."""
    problems = []
    for key in sorted(k for k in file.values if is_secret_key(k)):
        if key not in file.secret_keys:
            problems.append(f"{key}: a secret written in plain text in {file.source}; delete it "
                            f"there and run `{set_command(key, file.stack)}`")
        elif not is_workloads_file:
            problems.append(f"{key}: set in {file.source}, the platform stack's config, which "
                            "the workloads stack that reads it cannot decrypt; delete it there "
                            f"and run `{set_command(key, file.stack)}`")
    return problems


def unknown_secret_problems(keys: Iterable[str], config: PlatformConfig) -> list[str]:
    """`llmops-secrets:` keys no part of the stack reads: usually a typo of one it does."""
    needed = [k for k in needed_secrets(config) if k.startswith(f"{SECRETS_NAMESPACE}:")]
    problems = []
    for key in sorted(k for k in keys if k.startswith(f"{SECRETS_NAMESPACE}:")):
        if key in needed:
            continue
        close = difflib.get_close_matches(key, needed, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        problems.append(f"{key}: unknown secret; {hint}this stack reads: {', '.join(needed)} "
                        "(receivers name theirs in llmops:monitoring.receivers[].secretKey)")
    return problems


class SecretProblems:
    """The secret checks of one plan, reported in the same round as the config's problems."""

    def __init__(self, environment_file: StackConfig, workloads_file: StackConfig):
        self.environment_file = environment_file
        self.workloads_file = workloads_file
        self.misplaced = misplaced_workloads_keys(workloads_file.values, environment_file.values)
        misplaced = [misplaced_key_problem(key, workloads_source=workloads_file.source,
                                           environment_source=environment_file.source)
                     for key in self.misplaced]
        self.problems = (misplaced + placement_problems(environment_file, is_workloads_file=False)
                         + placement_problems(workloads_file, is_workloads_file=True))

    @property
    def workloads_values(self) -> dict:
        """The workloads file's keys that may be merged over the environment file: not the
        misplaced settings (refused; merged, their errors would be blamed on the wrong file)."""
        return {k: v for k, v in self.workloads_file.values.items() if k not in self.misplaced}

    @property
    def source(self) -> str:
        files = [self.environment_file.source]
        if any(self.workloads_file.source in p for p in self.problems):
            files.append(self.workloads_file.source)
        return " + ".join(files)

    @contextlib.contextmanager
    def reported_with_config_errors(self) -> Iterator[None]:
        """Add these problems to a `ConfigError` raised inside (one list, one round)."""
        try:
            yield
        except ConfigError as exc:
            if not self.problems:
                raise
            raise ConfigError(self.source, [*exc.problems, *self.problems]) from None

    def check(self, config: PlatformConfig) -> None:
        """Raise `ConfigError` with every secret problem, now that the receivers are known."""
        keys = [*self.environment_file.values, *self.workloads_file.values]
        problems = self.problems + unknown_secret_problems(keys, config)
        if problems:
            self.problems = problems
            raise ConfigError(self.source, problems)
