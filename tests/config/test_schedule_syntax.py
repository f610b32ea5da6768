"""Schedules are checked with the rules of the parser KEDA's cron scaler uses (robfig/cron
v3.0.1, five fields, no descriptors) and time zones against the tz database, at each edge."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vocabulary.config.cron import cron_problem, timezone_problem
from vocabulary.config.serving import Schedule

ACCEPTED = ["0 7 * * 1-5", "59 23 31 12 6", "0 0 1 1 0", "*/15 * * * *", "0 8-18/2 * * *",
            "0 9 * * MON-fri", "0 9 * JAN,jul *", "30 6 ? * SUN", "5/20 * * * *", "0 0 1,15 * *"]
REFUSED = {
    "60 * * * *": "minute field '60': 60 is above 59 (allowed: 0-59)",
    "0 24 * * *": "hour field '24': 24 is above 23 (allowed: 0-23)",
    "0 0 0 * *": "day of month field '0': 0 is below 1 (allowed: 1-31)",
    "0 0 32 * *": "day of month field '32': 32 is above 31 (allowed: 1-31)",
    "0 0 * 13 *": "month field '13': 13 is above 12 (allowed: 1-12 or JAN-DEC)",
    "0 0 * 0 *": "month field '0': 0 is below 1 (allowed: 1-12 or JAN-DEC)",
    "0 0 * * 7": "day of week field '7': 7 is above 6 (allowed: 0-6 or SUN-SAT; Sunday is 0)",
    "0 0 * * 5-1": "day of week field '5-1': the range '5-1' starts after it ends",
    "*/0 * * * *": "minute field '*/0': the step of '*/0' must be a positive number",
    "0 0 * * mon-foo": "day of week field 'mon-foo': 'foo' is not a number or a name",
    "0 0 * * * *": "has 6 field(s); KEDA's cron scaler takes 5 fields",
    "0 0 * *": "has 4 field(s)",
    "@hourly": "descriptors such as @hourly are not accepted by KEDA",
    "CRON_TZ=UTC 0 7 * * *": "give the time zone in `timezone`, not in the cron expression",
    "0 -1 * * *": "hour field '-1': '' is not a number",
    "1-2-3 * * * *": "too many hyphens in '1-2-3'",
}


@pytest.mark.parametrize("spec", ACCEPTED)
def test_what_kedas_cron_parser_accepts_is_accepted(spec: str):
    assert cron_problem(spec) is None


@pytest.mark.parametrize(("spec", "expected"), REFUSED.items(), ids=list(REFUSED))
def test_what_kedas_cron_parser_rejects_is_refused_with_the_field_and_its_range(spec, expected):
    assert expected in (cron_problem(spec) or "")


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata"])
def test_iana_time_zones_are_accepted(zone: str):
    assert timezone_problem(zone) is None


@pytest.mark.parametrize(("zone", "hint"), [("America/NewYork", "did you mean America/New_York"),
                                            ("CET+1", "use a name such as UTC"),
                                            ("Local", "is not an IANA time zone")])
def test_other_time_zone_names_are_refused_with_the_closest_real_ones(zone: str, hint: str):
    assert hint in (timezone_problem(zone) or "")


def test_a_schedule_whose_start_is_its_end_is_refused_as_keda_does():
    with pytest.raises(ValidationError, match="start and end are both '0 7 \\* \\* 1'"):
        Schedule.model_validate({"start": "0 7 * * 1", "end": "0 7 * * 1", "replicas": 2})


def test_a_schedule_may_ask_for_replicas_max_but_not_more():
    """KEDA's maxReplicaCount is replicas.max (components/tgi.py): more is silently capped."""
    from vocabulary.config.serving import ModelConfig

    def model(scheduled: int) -> dict:
        return {"name": "m1", "registry": {"stage": "production"}, "gpuShape": "24gib-x1",
                "paramsBillion": 1, "maxInputTokens": 1, "maxTotalTokens": 2,
                "maxBatchPrefillTokens": 1, "replicas": {"min": 1, "max": 4},
                "schedules": [{"start": "0 7 * * *", "end": "0 19 * * *", "replicas": scheduled}]}

    assert ModelConfig.model_validate(model(4)).schedules[0].replicas == 4
    with pytest.raises(ValidationError, match=r"schedules\[0\]\.replicas \(5\) exceeds replicas.max "
                                              r"\(4\); KEDA never scales past replicas.max"):
        ModelConfig.model_validate(model(5))
