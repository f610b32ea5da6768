"""Who is acting: the AWS caller ARN when STS answers, else the local user name."""

from __future__ import annotations

import getpass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError


def caller_identity(sts: Any) -> str:
    try:
        return str(sts.get_caller_identity()["Arn"])
    except (BotoCoreError, ClientError, KeyError):
        try:
            return f"local:{getpass.getuser()}"
        except (OSError, KeyError):
            return "local:unknown"
