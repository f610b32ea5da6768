"""The AWS regions that exist, from the endpoint data botocore ships (botocore/data/
endpoints.json, `partitions[].regions`): the list the AWS SDKs and CLI resolve against,
updated with every boto3 release, so a typo like `us-west-9` fails before any plan."""

from __future__ import annotations

import difflib
from functools import cache
from typing import Annotated

from pydantic import AfterValidator


@cache
def aws_regions() -> dict[str, str]:
    """Region name -> partition (aws, aws-cn, aws-us-gov, ...)."""
    from botocore.loaders import create_loader

    endpoints = create_loader().load_data("endpoints")
    return {region: partition["partition"]
            for partition in endpoints["partitions"] for region in partition["regions"]}


def region_problem(region: str) -> str | None:
    """None for a known region, else what was wrong and what is allowed."""
    regions = aws_regions()
    if region in regions:
        return None
    close = difflib.get_close_matches(region, sorted(regions), n=3, cutoff=0.75)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    commercial = sorted(r for r, p in regions.items() if p == "aws")
    return (f"{region!r} is not an AWS region; {hint}regions: {', '.join(commercial)} "
            "(and the China, GovCloud and ISO partitions' regions)")


def known_region(region: str) -> str:
    """A field validator: the region itself, or a ValueError naming the closest real ones."""
    problem = region_problem(region)
    if problem:
        raise ValueError(problem)
    return region


#: `aws:region` as every stack's config reads it.
KnownRegion = Annotated[str, AfterValidator(known_region)]
