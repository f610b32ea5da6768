"""The cron syntax and time zones KEDA's cron scaler accepts, checked before a ScaledObject
carries a schedule KEDA rejects (the scaler then errors and the peak is never kept).

KEDA v2.17.0 (the chart this stack pins), pkg/scalers/cron_scaler.go, parses `start` and
`end` with robfig/cron v3.0.1's `cron.NewParser(Minute | Hour | Dom | Month | Dow)`: exactly
five fields, no descriptors (@daily), and refuses start == end; it loads `timezone` with Go's
`time.LoadLocation` (IANA names). The field rules below are robfig/cron v3.0.1 parser.go
(`getRange`, `parseIntOrName`) and spec.go (`bounds`).
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from functools import cache

MONTHS = {name: i + 1 for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
DAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
#: (name, lowest, highest, names) of the five fields, in order.
FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
          ("month", 1, 12, MONTHS), ("day of week", 0, 6, DAYS))
SYNTAX = ("5 fields: minute hour day-of-month month day-of-week, each *, a number, a range "
          "a-b, a step */n or a-b/n, or a list of them (a,b)")
NUMBER = re.compile(r"^\d+$")


def cron_problem(spec: str) -> str | None:
    """None when KEDA's cron scaler accepts `spec`, else what is wrong and what is allowed."""
    if spec.startswith(("TZ=", "CRON_TZ=")):
        return "give the time zone in `timezone`, not in the cron expression"
    if spec.startswith("@"):
        return f"descriptors such as {spec.split()[0]} are not accepted by KEDA; use {SYNTAX}"
    fields = spec.split()
    if len(fields) != len(FIELDS):
        return f"has {len(fields)} field(s); KEDA's cron scaler takes {SYNTAX}"
    for value, (name, low, high, names) in zip(fields, FIELDS, strict=True):
        for part in value.split(","):
            problem = _range_problem(part, low, high, names)
            if problem:
                allowed = f"{low}-{high}" + (f" or {names_of(names)}" if names else "")
                sunday = "; Sunday is 0" if name == "day of week" and "7" in part else ""
                return f"{name} field {value!r}: {problem} (allowed: {allowed}{sunday})"
    return None


def _range_problem(expr: str, low: int, high: int, names: dict[str, int]) -> str | None:
    if not expr:
        return "an empty list item"
    range_and_step = expr.split("/")
    if len(range_and_step) > 2:
        return f"too many slashes in {expr!r}"
    bounds = range_and_step[0].split("-")
    if bounds[0] in ("*", "?"):
        start, end = low, high
    else:
        if len(bounds) > 2:
            return f"too many hyphens in {expr!r}"
        values = [_number(b, names) for b in bounds]
        if None in values:
            bad = next(b for b, v in zip(bounds, values, strict=True) if v is None)
            return f"{bad!r} is not a number" + (" or a name" if names else "")
        start, end = values[0], values[-1]
    if len(range_and_step) == 2:
        step = _number(range_and_step[1], {})
        if not step:
            return f"the step of {expr!r} must be a positive number"
        if len(bounds) == 1 and bounds[0] not in ("*", "?"):
            end = high  # robfig: "N/step" means "N-max/step"
    if start < low:
        return f"{start} is below {low}"
    if end > high:
        return f"{end} is above {high}"
    if start > end:
        return f"the range {expr!r} starts after it ends"
    return None


def _number(text: str, names: dict[str, int]) -> int | None:
    if text.lower() in names:
        return names[text.lower()]
    return int(text) if NUMBER.match(text) else None


def names_of(names: dict[str, int]) -> str:
    ordered = list(names)
    return f"{ordered[0].upper()}-{ordered[-1].upper()}"


@cache
def time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def timezone_problem(name: str) -> str | None:
    """None for an IANA time zone name (what Go's time.LoadLocation loads), else the closest."""
    known = time_zones()
    if name in known or (not known and _loads(name)):
        return None
    close = difflib.get_close_matches(name, sorted(known), n=3)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return (f"{name!r} is not an IANA time zone; {hint}use a name such as UTC, Europe/Berlin or "
            "America/New_York (Area/City, as in the tz database)")


def _loads(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return False
    return True
