"""The gateway as deployed: hardened pod, routing from stack config, HTTPS ingress."""

from __future__ import annotations

import json

import yaml


def _inputs(plan, type_token, name):
    return plan.one(type_token, name).inputs


def test_gateway_pod_is_non_root_read_only_and_bounded(plans):
    deployment = _inputs(plans["prod"], "kubernetes:apps/v1:Deployment", "gateway-deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    assert container["image"].endswith("/llmops-prod/llm-gateway:0.1.0")
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"      # fails first on drain
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    args = container["command"]
    assert args[args.index("--max-connections") + 1] == "4096"
    assert args[args.index("--max-inflight") + 1] == "1024"
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > int(args[args.index("--drain-seconds") + 1])            # the drain fits in it


def test_routing_config_carries_the_canary_split_from_stack_config(plans):
    config_map = _inputs(plans["prod"], "kubernetes:core/v1:ConfigMap", "gateway-config")
    routing = yaml.safe_load(config_map["data"]["config.yaml"])
    backends = routing["models"]["llama-3-8b"]["backends"]
    assert backends["stable"]["url"] == "http://tgi-llama-3-8b.llm-serving.svc:8080"
    assert backends["canary"] == {"url": "http://tgi-llama-3-8b-canary.llm-serving.svc:8080", "weight": 5,
                                  "router": "http://router-llama-3-8b-canary.llm-serving.svc:8100",
                                  "routerAffinity": "prompt-prefix"}  # TGI: consistent_hash on it


def test_api_keys_are_a_secret_and_never_in_plain_plan_output(plans):
    secret = plans["prod"].one("kubernetes:core/v1:Secret", "gateway-keys")
    assert secret.to_json()["inputs"]["stringData"] == "[secret]"


def test_gateway_scales_and_keeps_one_replica_through_disruptions(plans):
    plan = plans["prod"]
    hpa = _inputs(plan, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "gateway-hpa")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 12)
    pdb = _inputs(plan, "kubernetes:policy/v1:PodDisruptionBudget", "gateway-pdb")["spec"]
    assert pdb["minAvailable"] == 1


def test_ingress_is_https_only_through_the_alb_with_a_modern_tls_policy(plans):
    ingress = _inputs(plans["prod"], "kubernetes:networking.k8s.io/v1:Ingress", "gateway-ingress")
    annotations = ingress["metadata"]["annotations"]
    assert ingress["spec"]["ingressClassName"] == "alb"
    assert json.loads(annotations["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTPS": 443}]
    assert annotations["alb.ingress.kubernetes.io/certificate-arn"].startswith("arn:aws:acm:us-east-1:")
    assert annotations["alb.ingress.kubernetes.io/ssl-policy"].startswith("ELBSecurityPolicy-TLS13")
    assert ingress["spec"]["rules"][0]["host"] == "llm.example.com"
    assert plans["prod"].outputs["gatewayUrl"] == "https://llm.example.com"


def test_load_balancer_controller_is_pinned_and_can_only_touch_its_clusters_balancers(plans):
    plan = plans["dev"]
    release = _inputs(plan, "kubernetes:helm.sh/v3:Release", "gateway-lbc")
    assert release["version"] == "1.13.0"
    assert release["values"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"] == (
        plan.stack_outputs["platform"]["workloadRoleArns"]["loadBalancerController"])
    policy = json.loads(_inputs(plan, "aws:iam/rolePolicy:RolePolicy", "workload-roles-lbc")["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    owned = {"StringEquals": {"aws:ResourceTag/elbv2.k8s.aws/cluster": "llmops-dev"}}
    assert statements["ManageOwnedBalancers"]["Condition"] == owned
    assert "elasticloadbalancing:DeleteLoadBalancer" in statements["ManageOwnedBalancers"]["Action"]
    assert statements["CreateTaggedBalancers"]["Condition"] == {"StringEquals": {
        "aws:RequestTag/elbv2.k8s.aws/cluster": "llmops-dev"}}
    mutating = [s for s in policy["Statement"] if s["Sid"] not in ("Describe",)]
    assert all(r.startswith(("arn:aws:elasticloadbalancing:us-west-2:123456789012:",
                             "arn:aws:ec2:us-west-2:123456789012:", "arn:aws:iam::123456789012:",
                             "arn:aws:acm:us-west-2:", "arn:aws:cognito-idp:us-west-2:",
                             "arn:aws:waf-regional:us-west-2:", "arn:aws:wafv2:us-west-2:",
                             "arn:aws:shield::123456789012:"))
               for s in mutating for r in ([s["Resource"]] if isinstance(s["Resource"], str)
                                           else s["Resource"]))


def test_load_balancer_controller_can_do_what_upstream_v2_13_needs_without_our_tag(plans):
    """Upstream does not tag-condition listeners, rules, targets or ingress on security groups
    (the controller opens the cluster security group, which it did not create)."""
    plan = plans["dev"]
    policy = json.loads(_inputs(plan, "aws:iam/rolePolicy:RolePolicy", "workload-roles-lbc")["policy"])
    unconditioned = {a for s in policy["Statement"] if "Condition" not in s
                     for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    for action in ("elasticloadbalancing:CreateListener", "elasticloadbalancing:CreateRule",
                   "elasticloadbalancing:ModifyListener", "elasticloadbalancing:RegisterTargets",
                   "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"):
        assert action in unconditioned, action


def test_load_balancer_controller_starts_and_does_not_gate_every_service(plans):
    values = _inputs(plans["prod"], "kubernetes:helm.sh/v3:Release", "gateway-lbc")["values"]
    # v2.13 refuses to start when defaultTags names a key it reserves for itself
    reserved = {"elbv2.k8s.aws/cluster", "elbv2.k8s.aws/resource", "ingress.k8s.aws/stack",
                "ingress.k8s.aws/resource", "service.k8s.aws/stack", "service.k8s.aws/resource"}
    assert not reserved & set(values["defaultTags"])
    assert values["defaultTags"]["CostCentre"] == "CC-4410-prod"
    assert values["enableServiceMutatorWebhook"] is False
    assert values["region"] == "us-east-1" and values["vpcId"].startswith("vpc-")


def test_a_routing_change_rolls_the_gateway_pods(plans):
    """The gateway reads its routing at start: removing a canary must restart it."""
    import hashlib

    def checksum(plan):
        deployment = _inputs(plan, "kubernetes:apps/v1:Deployment", "gateway-deployment")
        return deployment["spec"]["template"]["metadata"]["annotations"]["llmops.io/config-checksum"]

    from llmops.offline.plan import run_plan
    from vocabulary.stackfile import DELETE

    routing = _inputs(plans["prod"], "kubernetes:core/v1:ConfigMap", "gateway-config")["data"]["config.yaml"]
    assert checksum(plans["prod"]) == hashlib.sha256(routing.encode()).hexdigest()
    without_canary = run_plan("prod", overrides={"llmops:models.0.canary": DELETE})
    assert checksum(without_canary) != checksum(plans["prod"])
