"""The stacks' outputs as a versioned contract: one schema per stack, defined once here.

Each output has a type, a secrecy flag, a description and an audience: *application-facing*
outputs are what applications may rely on (the rest are the platform's own wiring, e.g. what
the workloads stack reads); application-facing outputs are mirrored to SSM Parameter Store
unless `ssm` says otherwise. Each stack exports its schema version as `outputsSchemaVersion`.

Versions are `major.minor`: adding an output (or making one application-facing) is a minor
bump; removing one, changing its type, secrecy or audience is a major bump. Every version is
recorded in `outputs_schema.history.json` beside this file, and a test fails when the schema
differs from its last recorded version or a recorded step bumps less than its change needs.
After changing a schema: bump its version, then `python -m vocabulary.outputs_schema --record`.

For tools (`llmops outputs`): `schema_for(label)`, `check_outputs(label, outputs, secrets)`,
`markdown_table(label)` and `schema_document(label)`.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vocabulary.errors import LlmopsError

HISTORY_FILE = Path(__file__).with_name("outputs_schema.history.json")
VERSION_OUTPUT = "outputsSchemaVersion"
#: Type grammar: string | number | boolean | object | list<T> | map<T> (JSON values).
TYPE_PATTERN = re.compile(r"^(string|number|boolean|object|list<.+>|map<.+>)$")
VERSION_PATTERN = re.compile(r"^(\d+)\.(\d+)$")


class SchemaError(LlmopsError):
    """The schema, its history or a stack's outputs break the contract."""


@dataclass(frozen=True)
class OutputSpec:
    """One stack output: what it is, who may rely on it, and whether it is secret."""

    name: str
    type: str
    description: str
    secret: bool = False
    app_facing: bool = False
    #: mirrored to SSM Parameter Store; default: when application-facing
    ssm: bool | None = None

    @property
    def mirrored(self) -> bool:
        return self.app_facing if self.ssm is None else self.ssm

    def contract(self) -> dict[str, Any]:
        """What consumers depend on (the description is documentation, not contract)."""
        return {"type": self.type, "secret": self.secret, "appFacing": self.app_facing,
                "ssm": self.mirrored}


@dataclass(frozen=True)
class StackSchema:
    """Every output one stack exports, and the schema's version."""

    label: str          # "platform" | "workloads"
    version: str        # major.minor
    outputs: tuple[OutputSpec, ...]

    @property
    def major(self) -> int:
        return parse_version(self.version)[0]

    def names(self) -> list[str]:
        return [o.name for o in self.outputs]

    def get(self, name: str) -> OutputSpec:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise SchemaError(f"the {self.label} schema has no output {name!r}; "
                          f"outputs: {', '.join(self.names())}")

    def mirrored(self) -> list[OutputSpec]:
        return [o for o in self.outputs if o.mirrored]

    def contract(self) -> dict[str, Any]:
        return {o.name: o.contract() for o in self.outputs}


def parse_version(version: str) -> tuple[int, int]:
    match = VERSION_PATTERN.match(str(version))
    if not match:
        raise SchemaError(f"output schema version {version!r} is not major.minor (e.g. 1.0)")
    return int(match[1]), int(match[2])


def _version_output(label: str) -> OutputSpec:
    return OutputSpec(VERSION_OUTPUT, "string", f"version of the {label} stack's output schema "
                      "(major.minor); refuse a major you do not know", app_facing=True)


PLATFORM = StackSchema("platform", "1.3", (
    _version_output("platform"),
    OutputSpec("environment", "string", "environment (stack) name", app_facing=True),
    OutputSpec("region", "string", "AWS region of the environment", app_facing=True),
    OutputSpec("vpcId", "string", "VPC the cluster runs in", app_facing=True),
    OutputSpec("privateSubnetIds", "list<string>", "private subnets (nodes, runner)"),
    OutputSpec("publicSubnetIds", "list<string>", "public subnets (internet-facing load balancers)"),
    OutputSpec("clusterName", "string", "EKS cluster name", app_facing=True),
    OutputSpec("clusterEndpoint", "string", "EKS API endpoint (private)", app_facing=True),
    OutputSpec("oidcProviderArn", "string", "the cluster's OIDC provider, for applications' own "
               "IRSA roles", app_facing=True),
    OutputSpec("kubeconfig", "string", "kubeconfig using `aws eks get-token` (no credentials "
               "inside; access needs an EKS access entry)", secret=True, app_facing=True),
    OutputSpec("modelBucket", "string", "model registry bucket", app_facing=True),
    OutputSpec("registryPrefix", "string", "key prefix of the registry in the bucket",
               app_facing=True),
    OutputSpec("modelKeyArn", "string", "KMS key of the bucket, images and SecureString "
               "parameters"),
    OutputSpec("registryPublisherPolicyArn", "string", "IAM policy to register and promote models"),
    OutputSpec("platformRepositoryUrl", "string", "ECR repository of the platform image"),
    OutputSpec("karpenter", "object", "what Karpenter's controller and EC2NodeClasses name: "
               "interruptionQueue (SQS queue name) and nodeRoleName (GPU nodes' IAM role)"),
    OutputSpec("workloadRoleArns", "object", "IRSA roles of the workloads (karpenter, load "
               "balancer controller, log shipper, external-dns, models.<name>)"),
    OutputSpec("applicationLogGroup", "string", "CloudWatch log group of container stdout (the "
               "gateway's audit lines), KMS-encrypted, retained llmops:cluster.logRetentionDays; "
               "the log shipper writes it"),
    OutputSpec("imageMirrors", "map<string>", "upstream registry -> its regional pull-through "
               "cache prefix (empty without llmops:images.ghcrCredentialArn)"),
    OutputSpec("ciRunnerRoleArn", "string", "service role of the in-VPC CI runner"),
    OutputSpec("ciRunsOn", "string", "`runs-on:` label of the in-VPC runner"),
    OutputSpec("configDigest", "string", "hash of the configuration the platform was deployed "
               "from (the workloads stack checks it)"),
    OutputSpec("appReadPolicyArn", "string", "IAM policy an application attaches to read the "
               "SSM mirror of both stacks", app_facing=True, ssm=False),
))

WORKLOADS = StackSchema("workloads", "1.0", (
    _version_output("workloads"),
    OutputSpec("environment", "string", "environment (stack) name", app_facing=True),
    OutputSpec("platformStack", "string", "the platform stack this one reads (org/project/stack)"),
    OutputSpec("gatewayUrl", "string", "HTTPS base URL of the gateway (TGI API; OpenAI-style "
               "under /v1)", app_facing=True),
    OutputSpec("models", "list<string>", "models the gateway serves (send one as `X-Model`)",
               app_facing=True),
    OutputSpec("modelVersions", "map<map<object>>", "model -> track -> registry version, "
               "revision and source", app_facing=True),
    OutputSpec("modelRoutes", "map<object>", "model -> track -> in-cluster TGI URL, and the "
               "canary weight (the gateway's backends; applications go through the gateway)"),
    OutputSpec("grafanaUrl", "string", "in-cluster Grafana URL"),
    OutputSpec("prometheusUrl", "string", "in-cluster Prometheus URL"),
    OutputSpec("kubeconfig", "string", "the platform's kubeconfig, so an application stack "
               "reads one stack (SSM: the platform's parameter)", secret=True, app_facing=True,
               ssm=False),
    OutputSpec("appReadPolicyArn", "string", "the platform's IAM policy to read the SSM mirror",
               app_facing=True, ssm=False),
))

SCHEMAS: dict[str, StackSchema] = {s.label: s for s in (PLATFORM, WORKLOADS)}


def schema_for(label: str) -> StackSchema:
    try:
        return SCHEMAS[label]
    except KeyError:
        raise SchemaError(f"no output schema for stack {label!r}; "
                          f"stacks: {', '.join(SCHEMAS)}") from None


def parameter_name(project: str, environment: str, label: str, output: str) -> str:
    """Where an output is mirrored: /<project>/<env>/<stack>/<output>."""
    return f"/{project}/{environment}/{label}/{output}"


# -- checking values ---------------------------------------------------------------------


def type_problem(type_: str, value: Any, path: str) -> str | None:
    """Why `value` is not of schema type `type_`, or None."""
    if type_ == "string":
        ok = isinstance(value, str)
    elif type_ == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif type_ == "boolean":
        ok = isinstance(value, bool)
    elif type_ == "object":
        ok = isinstance(value, dict)
    elif type_.startswith("list<"):
        if not isinstance(value, list):
            return f"{path}: expected {type_}, got {type(value).__name__}"
        return next((p for i, v in enumerate(value)
                     if (p := type_problem(type_[5:-1], v, f"{path}[{i}]"))), None)
    elif type_.startswith("map<"):
        if not isinstance(value, dict):
            return f"{path}: expected {type_}, got {type(value).__name__}"
        return next((p for k, v in value.items()
                     if (p := type_problem(type_[4:-1], v, f"{path}.{k}"))), None)
    else:
        raise SchemaError(f"{path}: unknown schema type {type_!r} (string, number, boolean, "
                          "object, list<T>, map<T>)")
    return None if ok else f"{path}: expected {type_}, got {type(value).__name__}"


def check_outputs(label: str, outputs: Mapping[str, Any], secret_names: Iterable[str]) -> list[str]:
    """Every way a stack's exported outputs differ from its schema (empty: they match)."""
    schema = schema_for(label)
    secrets = {name.split(".")[0].split("[")[0] for name in secret_names}
    problems = [f"{name}: exported but not in the {label} schema" for name in outputs
                if name not in schema.names()]
    for spec in schema.outputs:
        if spec.name not in outputs:
            problems.append(f"{spec.name}: in the {label} schema but not exported")
            continue
        if problem := type_problem(spec.type, outputs[spec.name], spec.name):
            problems.append(problem)
        if spec.secret and spec.name not in secrets:
            problems.append(f"{spec.name}: the schema says secret but it is exported in plain text")
        if not spec.secret and spec.name in secrets:
            problems.append(f"{spec.name}: exported as a secret but the schema says plain")
    if outputs.get(VERSION_OUTPUT, schema.version) != schema.version:
        problems.append(f"{VERSION_OUTPUT}: exported {outputs[VERSION_OUTPUT]!r}, "
                        f"the schema is {schema.version}")
    return problems


# -- evolution -----------------------------------------------------------------------------

def required_bump(old: Mapping[str, Mapping], new: Mapping[str, Mapping]) -> tuple[str, list[str]]:
    """("major" | "minor" | "none", why) for going from one contract to the next."""
    breaking, additive = [], []
    for name, before in old.items():
        after = new.get(name)
        if after is None:
            breaking.append(f"{name} removed")
            continue
        for field in ("type", "secret"):
            if before[field] != after[field]:
                breaking.append(f"{name}.{field} {before[field]!r} -> {after[field]!r}")
        for field in ("appFacing", "ssm"):
            if before[field] and not after[field]:
                breaking.append(f"{name}.{field} withdrawn")
            elif after[field] and not before[field]:
                additive.append(f"{name}.{field} added")
    additive += [f"{name} added" for name in new if name not in old]
    if breaking:
        return "major", breaking + additive
    return ("minor", additive) if additive else ("none", [])


def bump_problem(old_version: str, new_version: str, bump: str, why: list[str]) -> str | None:
    """Why `new_version` is not a valid successor of `old_version` for this change, or None."""
    (o_major, o_minor), (n_major, n_minor) = parse_version(old_version), parse_version(new_version)
    if bump == "none":
        return None if new_version == old_version else (
            f"{old_version} -> {new_version} without a contract change")
    if (n_major, n_minor) == (o_major + 1, 0):
        return None
    if bump == "minor" and (n_major, n_minor) == (o_major, o_minor + 1):
        return None
    expected = f"{o_major + 1}.0" if bump == "major" else f"{o_major}.{o_minor + 1}"
    return (f"{old_version} -> {new_version} but the change is {bump} ({'; '.join(why)}): "
            f"the next version is {expected}")


def read_history(path: Path = HISTORY_FILE) -> dict[str, list[dict[str, Any]]]:
    return json.loads(path.read_text()) if path.is_file() else {}


def history_problems(history: Mapping[str, list[Mapping[str, Any]]],
                     schemas: Iterable[StackSchema]) -> list[str]:
    """Recorded steps that bump too little, and schemas that differ from their last record."""
    problems = []
    for schema in schemas:
        entries = history.get(schema.label, [])
        for before, after in itertools.pairwise(entries):
            bump, why = required_bump(before["outputs"], after["outputs"])
            if problem := bump_problem(before["version"], after["version"], bump, why):
                problems.append(f"{schema.label} history: {problem}")
        last = entries[-1] if entries else None
        if last is None or last["version"] != schema.version or last["outputs"] != schema.contract():
            bump, why = required_bump(last["outputs"], schema.contract()) if last else ("new", [])
            recorded = last["version"] if last else "nothing"
            problems.append(
                f"the {schema.label} output schema ({schema.version}) differs from its last "
                f"recorded version ({recorded}; change: {bump}{': ' if why else ''}"
                f"{'; '.join(why)}): bump the version in vocabulary/outputs_schema.py if needed, "
                "then run `python -m vocabulary.outputs_schema --record`")
    return problems


def record(schemas: Iterable[StackSchema], path: Path = HISTORY_FILE) -> list[str]:
    """Append each schema's current version to the history; refuse a wrong bump or a
    rewrite of an already recorded version. Returns what was recorded."""
    history, recorded = read_history(path), []
    for schema in schemas:
        entries = history.setdefault(schema.label, [])
        same = [e for e in entries if e["version"] == schema.version]
        if same:
            if same[0]["outputs"] != schema.contract():
                raise SchemaError(f"{schema.label} {schema.version} is already recorded with a "
                                  "different contract: bump the version instead of rewriting it")
            continue
        if entries:
            bump, why = required_bump(entries[-1]["outputs"], schema.contract())
            if problem := bump_problem(entries[-1]["version"], schema.version, bump, why):
                raise SchemaError(f"{schema.label}: {problem}")
        entries.append({"version": schema.version, "outputs": schema.contract()})
        recorded.append(f"{schema.label} {schema.version}")
    path.write_text(json.dumps(history, indent=2, sort_keys=True) + "\n")
    return recorded


# -- documents -------------------------------------------------------------------------------

def schema_document(label: str) -> dict[str, Any]:
    """The schema as JSON (for tools and other languages)."""
    schema = schema_for(label)
    return {"stack": label, "version": schema.version,
            "outputs": [{"name": o.name, **o.contract(), "description": o.description}
                        for o in schema.outputs]}


def markdown_table(label: str, project: str = "llmops") -> str:
    """docs/outputs.md's table of one stack's outputs."""
    schema = schema_for(label)
    rows = [f"**{label}** outputs, schema {schema.version}:", "",
            "| output | type | secret | for applications | SSM parameter | description |",
            "| --- | --- | --- | --- | --- | --- |"]
    for o in schema.outputs:
        where = f"`{parameter_name(project, '<env>', label, o.name)}`" if o.mirrored else ""
        kind = " (SecureString)" if o.mirrored and o.secret else ""
        rows.append(f"| `{o.name}` | `{o.type}` | {'yes' if o.secret else ''} | "
                    f"{'yes' if o.app_facing else ''} | {where}{kind} | {o.description} |")
    return "\n".join(rows)


README_BEGIN = "<!-- outputs-schema:begin (generated: python -m vocabulary.outputs_schema --readme) -->"
README_END = "<!-- outputs-schema:end -->"


def readme_section() -> str:
    return "\n\n".join([README_BEGIN, *(markdown_table(label) for label in SCHEMAS), README_END])


def update_readme(path: Path) -> None:
    text = path.read_text()
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < 0:
        raise SchemaError(f"{path} has no outputs-schema markers ({README_BEGIN} ... {README_END})")
    path.write_text(text[:start] + readme_section() + text[end + len(README_END):])


def _validate_definitions() -> None:
    for schema in SCHEMAS.values():
        parse_version(schema.version)
        for spec in schema.outputs:
            if not TYPE_PATTERN.match(spec.type):
                raise SchemaError(f"{schema.label}.{spec.name}: unknown type {spec.type!r}")


_validate_definitions()


def main(argv: list[str]) -> int:
    """`--record`: append the current versions to the history; `--readme`: regenerate the table."""
    try:
        if "--record" in argv:
            print("\n".join(record(SCHEMAS.values())) or "nothing new to record")
        if "--readme" in argv:
            update_readme(Path(__file__).parents[1] / "docs" / "outputs.md")
    except SchemaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
