"""What `llmops outputs` shows of the SSM parameters the stacks publish: a value is masked when
the program's data was secret or the stack output it mirrors is, and shown when only the
provider schema marks it sensitive (aws.ssm.Parameter wraps every `value`). Small recorded
parameters, no plan."""

from __future__ import annotations

from llmops.offline.plan import Plan
from llmops.offline.published import published_parameters
from llmops.offline.recorder import SECRET_MARK, RecordedResource

PREFIX = "/llmops/dev/platform"


def parameter(output: str, value: str = "v", *, type_: str = "String", key: str = "insecureValue",
              secret_paths: tuple[str, ...] = (), schema_secrets: tuple[str, ...] = ()) -> RecordedResource:
    return RecordedResource(urn=f"urn:{output}", type="aws:ssm/parameter:Parameter", name=output,
                            parent=None, custom=True, stack="platform",
                            inputs={"name": f"{PREFIX}/{output}", "type": type_, key: value},
                            secret_paths=secret_paths, schema_secrets=schema_secrets)


def shown(*resources: RecordedResource, secret_outputs: tuple[str, ...] = ()) -> dict[str, object]:
    outputs = {"platform": {"vpcId": "vpc-1", "kubeconfig": "{}", "modelBucket": "b"}}
    plan = Plan(stack="dev", config=None, resources=list(resources), outputs={},
                secret_outputs=secret_outputs, stack_outputs=outputs)
    return {p.name.rsplit("/", 1)[-1]: p.shown for p in published_parameters(plan)}


def test_a_plain_output_s_mirror_is_shown_although_the_provider_schema_marks_value_sensitive():
    assert shown(parameter("vpcId", "vpc-1", key="value", secret_paths=("value",),
                           schema_secrets=("value",))) == {"vpcId": "vpc-1"}


def test_a_mirror_of_a_secret_output_or_of_no_output_is_masked():
    assert shown(parameter("kubeconfig", "{}"), secret_outputs=("kubeconfig",)) == {
        "kubeconfig": SECRET_MARK}
    assert shown(parameter("unknownOutput", "x")) == {"unknownOutput": SECRET_MARK}


def test_secret_program_data_and_secure_strings_are_masked_whatever_they_mirror():
    assert shown(parameter("vpcId", "vpc-1", secret_paths=("insecureValue",))) == {"vpcId": SECRET_MARK}
    assert shown(parameter("vpcId", "vpc-1", key="value", secret_paths=("value",))) == {
        "vpcId": SECRET_MARK}
    assert shown(parameter("vpcId", "vpc-1", type_="SecureString")) == {"vpcId": SECRET_MARK}


def test_parameters_are_listed_by_name_with_their_type_and_stack():
    plan = Plan(stack="dev", config=None, resources=[parameter("vpcId"), parameter("modelBucket", "b")],
                outputs={}, stack_outputs={"platform": {"vpcId": "v", "modelBucket": "b"}})
    listed = published_parameters(plan)
    assert [p.name for p in listed] == [f"{PREFIX}/modelBucket", f"{PREFIX}/vpcId"]
    assert listed[0].to_json() == {"name": f"{PREFIX}/modelBucket", "type": "String",
                                   "stack": "platform", "value": "b"}
