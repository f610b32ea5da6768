"""Tags on every taggable AWS resource, visible both to `pulumi up` and to the offline plan.

Provider `default_tags` and new-style transforms are applied engine-side and are invisible
under mocks, so the tags are merged into each resource's own `tags` input by a (legacy,
client-side) stack transformation, which runs in both worlds.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi


def _merge(defaults: Mapping[str, str], own: object) -> object:
    if own is None:
        return dict(defaults)
    if isinstance(own, Mapping):
        return {**defaults, **own}
    return pulumi.Output.from_input(own).apply(lambda t: {**defaults, **(t or {})})


def tag_transformation(defaults: Mapping[str, str]):
    """A stack transformation adding `defaults` to AWS resources that take a `tags` map.

    A resource's own tags win over the defaults (e.g. a subnet's `Name`).
    """

    def transform(args: pulumi.ResourceTransformationArgs):
        if not args.type_.startswith("aws:") or "tags" not in args.props:
            return None
        if isinstance(args.props["tags"], list | tuple):  # e.g. autoscaling groups: no map
            return None
        props = {**args.props, "tags": _merge(defaults, args.props["tags"])}
        return pulumi.ResourceTransformationResult(props=props, opts=args.opts)

    return transform


def register_default_tags(defaults: Mapping[str, str]) -> None:
    """Install the tag transformation for the whole stack; call before any resource."""
    pulumi.runtime.register_stack_transformation(tag_transformation(dict(defaults)))
