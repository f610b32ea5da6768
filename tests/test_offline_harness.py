"""The recorder behind `llmops plan`: what it captures from any program."""

import pulumi
import pulumi_aws as aws

from llmops.offline.plan import record


def test_record_captures_type_name_parent_inputs_and_secret_outputs():
    class Box(pulumi.ComponentResource):
        def __init__(self, name):
            super().__init__("llmops:test:Box", name)
            self.key = aws.kms.Key(f"{name}-key", enable_key_rotation=True,
                                   opts=pulumi.ResourceOptions(parent=self))
            self.register_outputs({})

    def program():
        box = Box("box")
        pulumi.export("keyArn", box.key.arn)
        pulumi.export("password", pulumi.Output.secret("hunter2"))

    recording = record(program)
    key = recording.of_type("aws:kms/key:Key")[0]
    assert key.name == "box-key"
    assert key.inputs == {"enableKeyRotation": True}
    assert key.parent.endswith("llmops:test:Box::box")
    assert recording.outputs["keyArn"].startswith("arn:aws:kms:us-west-2:123456789012:key/")
    assert recording.secret_outputs == ("password",)


def test_two_plans_of_the_same_stack_are_identical():
    from llmops.offline.plan import run_plan

    first, second = run_plan("staging").to_json(), run_plan("staging").to_json()
    assert first == second
