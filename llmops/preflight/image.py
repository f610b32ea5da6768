"""The platform image's tags the environment names exist in its ECR repository (tags are
immutable there: the gateway and the weights init containers pull exactly these)."""

from __future__ import annotations

from llmops.preflight.context import Context
from llmops.preflight.published import missing_outputs_fix
from llmops.preflight.result import Check, failed, passed
from vocabulary.config import PlatformConfig


def image_tags(config: PlatformConfig) -> list[str]:
    """Every tag of the platform image the workloads use (gateway, weights init containers)."""
    return sorted({config.gateway.image_tag, config.serving.weights_image_tag})


def images(context: Context) -> list[str]:
    """repository URL:tag of each, from the platform's published outputs."""
    url = context.platform_outputs.get("platformRepositoryUrl")
    if url is None:
        raise LookupError(missing_outputs_fix(context))
    return [f"{url}:{tag}" for tag in image_tags(context.config)]


def platform_image(context: Context) -> list[Check]:
    url = context.platform_outputs.get("platformRepositoryUrl")
    if url is None:
        return [failed("image", "the platform published no platformRepositoryUrl",
                       missing_outputs_fix(context))]
    repository = url.split("/", 1)[1]
    ecr = context.client("ecr")
    checks = []
    for tag in image_tags(context.config):
        try:
            ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
            checks.append(passed(f"image {tag}", f"{url}:{tag} exists"))
        except ecr.exceptions.ImageNotFoundException:
            checks.append(failed(f"image {tag}", f"{url}:{tag} is not in ECR",
                                 f"push it (the deploy workflow's publish job does): docker build "
                                 f"-t {url}:{tag} -f serving/Dockerfile . && docker push {url}:{tag}"))
    return checks
