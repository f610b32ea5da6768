"""The CodeConnections connection the in-VPC runner registers with must be AVAILABLE: a new
connection stays PENDING until someone completes the GitHub handshake in the console."""

from __future__ import annotations

from llmops.preflight.context import Context
from llmops.preflight.result import Check, failed, passed


def connection(context: Context) -> list[Check]:
    arn = context.config.ci.github_connection_arn
    service = arn.split(":")[2]  # codeconnections, or codestar-connections for older ARNs
    status = context.client(service).get_connection(ConnectionArn=arn)["Connection"]["ConnectionStatus"]
    detail = f"{arn} is {status}"
    if status != "AVAILABLE":
        return [failed("connection", detail,
                       "complete it in the console: Developer Tools > Settings > Connections > "
                       "Update pending connection (a human authorises the GitHub app)")]
    return [passed("connection", detail)]
