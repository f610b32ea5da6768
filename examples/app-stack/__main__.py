"""An application's Pulumi program that consumes the llmops platform.

It reads one llmops workloads stack through `pulumi.StackReference`, refuses an output schema
whose major version it does not know (a major bump may have moved or retyped what it reads),
checks the model is served, and deploys into the application's namespace:
- ConfigMap `<project>-llm`: LLMOPS_GATEWAY_URL, LLMOPS_MODEL, LLMOPS_OUTPUTS_SCHEMA_VERSION
  and OPENAI_BASE_URL (the gateway's OpenAI-compatible routes), for `envFrom`;
- Secret `<project>-llm-key`: the application's own gateway key as LLMOPS_API_KEY and
  OPENAI_API_KEY (`serving.client.connect(env, source="env")` or any OpenAI SDK reads them).

Self-contained on purpose: it is meant to be copied into the application's repository.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

#: The llmops workloads output schema major this program was written for.
UNDERSTOOD_MAJOR = 1


def check_schema_version(version: object, stack: str) -> str:
    """The workloads stack's schema version, if this program understands its major."""
    if version is None:
        raise pulumi.RunError(f"{stack} exports no outputsSchemaVersion: it predates the output "
                              "contract or is not an llmops workloads stack")
    major = str(version).split(".")[0]
    if not major.isdigit():
        raise pulumi.RunError(f"{stack}: outputsSchemaVersion {version!r} is not major.minor")
    if int(major) > UNDERSTOOD_MAJOR:
        raise pulumi.RunError(
            f"{stack} publishes output schema {version}, but this program understands "
            f"{UNDERSTOOD_MAJOR}.x: read the llmops docs/outputs.md tables for what changed, "
            "update this program, then raise UNDERSTOOD_MAJOR")
    return str(version)


def check_model(model: str, served: list[str], stack: str) -> str:
    if model not in served:
        raise pulumi.RunError(f"model {model!r} is not served by {stack}; models: "
                              f"{', '.join(served) or 'none'} (config key `model`)")
    return model


def main() -> None:
    config = pulumi.Config()
    stack_name = config.require("workloadsStack")
    namespace = config.require("namespace")
    model = config.require("model")
    api_key = config.require_secret("gatewayApiKey")
    app = pulumi.get_project()

    workloads = pulumi.StackReference("llmops-workloads", stack_name=stack_name)
    version = workloads.get_output("outputsSchemaVersion").apply(
        lambda v: check_schema_version(v, stack_name))
    # everything below waits for the version check: nothing is deployed against a contract
    # this program does not understand
    checked = pulumi.Output.all(version, workloads.require_output("models")).apply(
        lambda v: check_model(model, v[1], stack_name))
    gateway_url = pulumi.Output.all(version, workloads.require_output("gatewayUrl")).apply(
        lambda v: str(v[1]).rstrip("/"))
    provider = k8s.Provider("cluster", kubeconfig=pulumi.Output.all(
        version, workloads.require_output("kubeconfig")).apply(lambda v: v[1]))
    in_cluster = pulumi.ResourceOptions(provider=provider)

    labels = {"app.kubernetes.io/part-of": app, "app.kubernetes.io/managed-by": "pulumi"}
    ns = k8s.core.v1.Namespace("namespace", metadata=k8s.meta.v1.ObjectMetaArgs(
        name=namespace, labels={**labels, "pod-security.kubernetes.io/enforce": "restricted"}),
        opts=in_cluster)
    in_ns = pulumi.ResourceOptions(provider=provider, depends_on=[ns])
    settings = k8s.core.v1.ConfigMap(
        "llm-settings", metadata=k8s.meta.v1.ObjectMetaArgs(
            name=f"{app}-llm", namespace=namespace, labels=labels),
        data={"LLMOPS_GATEWAY_URL": gateway_url, "LLMOPS_MODEL": checked,
              "LLMOPS_OUTPUTS_SCHEMA_VERSION": version,
              "OPENAI_BASE_URL": gateway_url.apply(lambda url: f"{url}/v1")},
        opts=in_ns)
    key = k8s.core.v1.Secret(
        "llm-key", metadata=k8s.meta.v1.ObjectMetaArgs(
            name=f"{app}-llm-key", namespace=namespace, labels=labels),
        type="Opaque", string_data={"LLMOPS_API_KEY": api_key, "OPENAI_API_KEY": api_key},
        opts=in_ns)

    pulumi.export("gatewayUrl", gateway_url)
    pulumi.export("outputsSchemaVersion", version)
    pulumi.export("configMap", settings.metadata.name)
    pulumi.export("secret", key.metadata.name)


main()
