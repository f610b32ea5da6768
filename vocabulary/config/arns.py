"""ARNs that must live where the stack lives. Section validators read the stack's region (and,
when the environment file declares it with the AWS provider's `aws:allowedAccountIds`, its
account) from the validation context `parse_platform_config` passes; a section validated on
its own (no context) is not checked here.

What AWS requires, per ARN (each checked where it is a field):
- ACM certificate of the ALB: "Certificates in ACM are regional resources. To use a
  certificate with Elastic Load Balancing ... in more than one AWS region, you must request or
  import a certificate for each region" (https://docs.aws.amazon.com/acm/latest/userguide/
  acm-regions.html): same region.
- Secrets Manager secret of an ECR pull-through cache rule: "The account and Region that the
  secret is in must match the account and Region that the pull through cache rule is in"
  (https://docs.aws.amazon.com/AmazonECR/latest/userguide/pull-through-cache-creating-rule.html):
  same region and account.
- CodeConnections connection of the CodeBuild runner: NOT region-bound: "Connections are global
  resources ... You only have to create a connection once, and then you can use it in any AWS
  Region" (https://docs.aws.amazon.com/dtconsole/latest/userguide/
  welcome-connections-how-it-works-global.html); shareable with other accounts through AWS RAM,
  except "Connection sharing is not supported for codestar-connections resources"
  (https://docs.aws.amazon.com/dtconsole/latest/userguide/connections-share.html): a
  codestar-connections ARN must be in the stack's account.
- IAM roles given EKS access (llmops:cluster.adminRoleArns, llmops:ci.deployRoleArns): not
  checked. IAM has no region, and for a STANDARD access entry (components/cluster.py creates
  those) "the ARN can be in the same, or different, AWS account than the account that your
  cluster is in" (https://docs.aws.amazon.com/eks/latest/userguide/creating-access-entries.html).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vocabulary.config.regions import region_problem as unknown_region

ACCOUNT_ID = re.compile(r"^\d{12}$")


@dataclass(frozen=True)
class StackPlace:
    """Where the stack deploys: its region, and its accounts when the file declares them."""

    region: str
    accounts: tuple[str, ...] = ()


def stack_place(context: Any) -> StackPlace | None:
    """The place `parse_platform_config` put in the validation context, if any."""
    place = context.get("stack") if isinstance(context, Mapping) else None
    return place if isinstance(place, StackPlace) else None


def place_from_config(values: Mapping[str, Any]) -> StackPlace | None:
    """From a stack's config keys; None without a known `aws:region` (its own check says so)."""
    region = values.get("aws:region")
    if not isinstance(region, str) or unknown_region(region):
        return None
    accounts = values.get("aws:allowedAccountIds")
    if not (isinstance(accounts, list) and all(isinstance(a, str) and ACCOUNT_ID.match(a)
                                               for a in accounts)):
        accounts = []
    return StackPlace(region, tuple(accounts))


def arn_region_and_account(arn: str) -> tuple[str, str]:
    """arn:partition:service:region:account:resource -> (region, account)."""
    parts = arn.split(":", 5)
    return (parts[3], parts[4]) if len(parts) == 6 else ("", "")


def region_problem(arn: str, place: StackPlace | None, why: str) -> str | None:
    region, _ = arn_region_and_account(arn)
    if place is None or region == place.region:
        return None
    return f"{arn!r} is in {region} but the stack deploys to {place.region} (aws:region); {why}"


def account_problem(arn: str, place: StackPlace | None, why: str) -> str | None:
    _, account = arn_region_and_account(arn)
    if place is None or not place.accounts or account in place.accounts:
        return None
    return (f"{arn!r} is in account {account} but the stack deploys to "
            f"{' or '.join(place.accounts)} (aws:allowedAccountIds); {why}")


def check_placed(arn: str | None, place: StackPlace | None, *, region_why: str | None = None,
                 account_why: str | None = None) -> str | None:
    """The ARN itself, or a ValueError listing where it is misplaced."""
    if arn is None:
        return arn
    problems = [p for p in (region_why and region_problem(arn, place, region_why),
                            account_why and account_problem(arn, place, account_why)) if p]
    if problems:
        raise ValueError("\n".join(problems))
    return arn
