"""Run the checks in order, each on its own: one failing (or raising) never hides another."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from llmops.preflight.account import identity, zones
from llmops.preflight.connection import connection
from llmops.preflight.context import Context
from llmops.preflight.image import platform_image
from llmops.preflight.quotas import gpu_quotas
from llmops.preflight.registry import registry_versions
from llmops.preflight.result import Check, failed
from llmops.preflight.secrets import workloads_secrets
from llmops.preflight.spot_role import spot_service_linked_role

CheckFn = Callable[[Context], list[Check]]
#: before the platform `up`: what the account must offer
ACCOUNT_CHECKS: tuple[tuple[str, CheckFn], ...] = (
    ("identity", identity), ("zones", zones), ("quotas", gpu_quotas), ("spot-role", spot_service_linked_role),
    ("connection", connection))
#: before the workloads `up`: also what the platform and publish steps must have produced
WORKLOADS_CHECKS: tuple[tuple[str, CheckFn], ...] = (
    *ACCOUNT_CHECKS, ("image", platform_image), ("registry", registry_versions),
    ("secrets", workloads_secrets))


def run_checks(context: Context, checks: Sequence[tuple[str, CheckFn]] = WORKLOADS_CHECKS) -> list[Check]:
    results: list[Check] = []
    for name, check in checks:
        try:
            results.extend(check(context))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            results.append(failed(name, f"AWS refused {exc.operation_name}: {error.get('Code')}: "
                                  f"{error.get('Message')}", "check the credentials' permissions "
                                  "and region"))
        except BotoCoreError as exc:
            results.append(failed(name, f"could not reach AWS: {exc}",
                                  "configure credentials (AWS_PROFILE, aws sso login) and retry"))
    return results
