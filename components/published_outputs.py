"""The application-facing stack outputs mirrored to SSM Parameter Store, for consumers that
don't speak Pulumi (applications, CI jobs, Lambda functions, other teams' Terraform), and the
managed IAM policy an application attaches to read exactly those parameters.

Parameters live at /<project>/<env>/<stack>/<output> (vocabulary/outputs_schema.py says which
outputs): String for plain values (JSON for lists and maps), SecureString encrypted with the
platform's KMS key for secrets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from vocabulary.outputs_schema import SchemaError, StackSchema, parameter_name


def parameter_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:ssm:{region}:{account_id}:parameter{name}"


def _as_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def mirrored_names(project: str, environment: str, schemas: Iterable[StackSchema],
                   secret: bool | None = None) -> list[str]:
    """Parameter names of the mirrored outputs of `schemas` (only secret/plain ones if asked)."""
    return [parameter_name(project, environment, s.label, o.name) for s in schemas
            for o in s.mirrored() if secret is None or o.secret == secret]


def read_policy(*, region: str, account_id: str, parameter_names: list[str],
                secret_names: list[str], key_arn: str) -> str:
    """ssm:GetParameter(s) on exactly these parameters, and kms:Decrypt of the key only through
    SSM and only for the SecureString ones (SSM encrypts with the parameter's ARN as the
    encryption context), so the policy cannot decrypt model weights."""
    statements = [{"Sid": "ReadPublishedOutputs", "Effect": "Allow",
                   "Action": ["ssm:GetParameter", "ssm:GetParameters"],
                   "Resource": [parameter_arn(region, account_id, n) for n in parameter_names]}]
    if secret_names:
        statements.append({
            "Sid": "DecryptPublishedSecrets", "Effect": "Allow", "Action": "kms:Decrypt",
            "Resource": key_arn, "Condition": {"StringEquals": {
                "kms:ViaService": f"ssm.{region}.amazonaws.com",
                "kms:EncryptionContext:PARAMETER_ARN":
                    [parameter_arn(region, account_id, n) for n in secret_names]}}})
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


@dataclass(frozen=True)
class PublishedOutputsArgs:
    schema: StackSchema                       # which outputs, which are secret
    project: str
    environment: str
    values: Mapping[str, pulumi.Input]        # the stack's exported outputs
    key_arn: pulumi.Input[str] | None = None  # encrypts SecureStrings; required if any


class PublishedOutputs(pulumi.ComponentResource):
    """One parameter per mirrored output of a stack."""

    parameter_names: list[str]

    def __init__(self, name: str, args: PublishedOutputsArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:outputs:PublishedOutputs", name, None, opts)
        schema, child = args.schema, pulumi.ResourceOptions(parent=self)
        missing = [o.name for o in schema.mirrored() if o.name not in args.values]
        if missing:
            raise SchemaError(f"the {schema.label} stack mirrors {', '.join(missing)} to SSM "
                              "but does not export it")
        secrets = [o.name for o in schema.mirrored() if o.secret]
        if secrets and args.key_arn is None:
            raise SchemaError(f"the {schema.label} stack mirrors secret outputs "
                              f"({', '.join(secrets)}) but was given no KMS key to encrypt them")
        self.parameter_names = []
        for spec in schema.mirrored():
            path = parameter_name(args.project, args.environment, schema.label, spec.name)
            value = pulumi.Output.from_input(args.values[spec.name]).apply(_as_text)
            aws.ssm.Parameter(
                f"{name}-{spec.name}", name=path,
                type="SecureString" if spec.secret else "String",
                # plain values stay readable in state and diffs; secrets are encrypted
                value=pulumi.Output.secret(value) if spec.secret else None,
                insecure_value=None if spec.secret else value,
                key_id=args.key_arn if spec.secret else None,
                # the standard tier (4 KB values; a kubeconfig is ~2.5 KB): pulumi-aws pins
                # Intelligent-Tiering to Standard anyway (pulumi/pulumi-aws#5595)
                description=f"{args.project} {schema.label} output {spec.name} "
                            f"({args.environment}, schema {schema.version})",
                opts=child)
            self.parameter_names.append(path)
        self.register_outputs({"parameterNames": self.parameter_names})


@dataclass(frozen=True)
class OutputsReadPolicyArgs:
    schemas: tuple[StackSchema, ...]          # every stack whose mirror applications read
    project: str
    environment: str
    region: str
    account_id: str
    key_arn: pulumi.Input[str]                # decrypts the SecureStrings
    policy_name: str


class OutputsReadPolicy(pulumi.ComponentResource):
    """The managed policy an application attaches to read the mirror of every stack. The
    parameter names follow from the schemas, so one stack can own it for all of them."""

    arn: pulumi.Output[str]

    def __init__(self, name: str, args: OutputsReadPolicyArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:outputs:OutputsReadPolicy", name, None, opts)
        names = mirrored_names(args.project, args.environment, args.schemas)
        secrets = mirrored_names(args.project, args.environment, args.schemas, secret=True)
        policy = aws.iam.Policy(
            name, name=args.policy_name,
            description=f"Read the {args.environment} stack outputs published to SSM",
            policy=pulumi.Output.from_input(args.key_arn).apply(lambda key: read_policy(
                region=args.region, account_id=args.account_id, parameter_names=names,
                secret_names=secrets, key_arn=key)),
            opts=pulumi.ResourceOptions(parent=self))
        self.arn = policy.arn
        self.register_outputs({"arn": self.arn})
