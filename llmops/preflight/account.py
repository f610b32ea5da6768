"""Who the credentials are, in which account and region, and how many zones it offers."""

from __future__ import annotations

import re

from llmops.preflight.context import Context
from llmops.preflight.result import Check, failed, passed

ACCOUNT_IN_ARN = re.compile(r"^arn:aws:[\w-]+:[\w-]*:(\d{12}):")


def expected_accounts(context: Context) -> dict[str, str]:
    """Account ids the environment file pins resources to: key -> account.

    A `codeconnections` connection may be shared from another account through AWS RAM, so
    only the older `codestar-connections` ARNs, which cannot be shared, pin the account
    (vocabulary/config/arns.py quotes the AWS documentation)."""
    cfg = context.config
    arns = {"llmops:gateway.certificateArn": cfg.gateway.certificate_arn}
    connection = cfg.ci.github_connection_arn
    if connection and connection.startswith("arn:aws:codestar-connections:"):
        arns["llmops:ci.githubConnectionArn"] = connection
    return {key: m[1] for key, arn in arns.items() if arn and (m := ACCOUNT_IN_ARN.match(arn))}


def identity(context: Context) -> list[Check]:
    """The caller's identity, and that it is the account the environment file names."""
    caller = context.client("sts").get_caller_identity()
    account = caller["Account"]
    wrong = {key: want for key, want in expected_accounts(context).items() if want != account}
    where = f"{caller['Arn']} in {context.config.region}"
    if wrong:
        named = ", ".join(f"{key} names {want}" for key, want in wrong.items())
        return [failed("identity", f"{where}: account {account}, but {named}",
                       "use credentials for that account (AWS_PROFILE / aws sso login), or fix the "
                       f"ARNs in stacks/Pulumi.{context.stack}.yaml")]
    return [passed("identity", where)]


def zones(context: Context) -> list[Check]:
    """Enough available zones for llmops:network.azCount."""
    found = context.client("ec2").describe_availability_zones(
        Filters=[{"Name": "state", "Values": ["available"]},
                 {"Name": "zone-type", "Values": ["availability-zone"]}])["AvailabilityZones"]
    names = sorted(z["ZoneName"] for z in found)
    want = context.config.network.az_count
    detail = f"{len(names)} available in {context.config.region} ({', '.join(names)}); azCount {want}"
    if len(names) < want:
        return [failed("zones", detail, f"lower llmops:network.azCount to {len(names)} in "
                       f"stacks/Pulumi.{context.stack}.yaml or choose another region")]
    return [passed("zones", detail)]
