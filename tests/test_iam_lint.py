"""Every IAM policy document the platform creates passes an IAM linter (parliament):
known actions, resources of the right type for each action, no needless Resource '*'."""

from __future__ import annotations

import pytest
from parliament import analyze_policy_string

from tests.conftest import STACKS

POLICY_INPUTS = {"aws:iam/rolePolicy:RolePolicy": "policy", "aws:iam/policy:Policy": "policy"}
#: Real condition keys newer than parliament's database (the AWS Service Authorization
#: Reference lists elasticloadbalancing:CreateAction; the controller's upstream policy uses it).
NEWER_THAN_LINTER = {("UNKNOWN_CONDITION_FOR_ACTION",
                      "Unknown condition elasticloadbalancing:CreateAction for action "
                      "elasticloadbalancing:AddTags")}


@pytest.mark.parametrize("stack", STACKS)
def test_every_permission_policy_passes_parliament(plans, stack):
    documents = [(r.name, r.inputs[POLICY_INPUTS[r.type]]) for r in plans[stack].resources
                 if r.type in POLICY_INPUTS]
    assert len(documents) >= 5
    findings = {name: [(f.issue, f.detail) for f in analyze_policy_string(doc).findings
                       if (f.issue, f.detail) not in NEWER_THAN_LINTER]
                for name, doc in documents}
    assert {name: found for name, found in findings.items() if found} == {}


def test_the_linter_catches_a_needless_wildcard():
    sloppy = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
              '"Action": "s3:GetObject", "Resource": "*"}]}')
    assert [f.issue for f in analyze_policy_string(sloppy).findings] == ["RESOURCE_STAR"]
