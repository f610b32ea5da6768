"""Karpenter's interruption queue: EventBridge forwards what tells of a node's coming end (a
spot interruption warning, a rebalance recommendation, a state change, an AWS Health event,
a capacity-reservation interruption) to an SQS queue the controller reads, so it cordons and
drains the node and starts its replacement before the instance goes: a GPU node needs
minutes to serve, the spot notice gives two.

As upstream: aws/karpenter-provider-aws v1.14.1, website/content/en/v1.14/getting-started/
getting-started-with-karpenter/cloudformation.yaml (KarpenterInterruptionQueue, its policy,
ScheduledChangeRule, SpotInterruptionRule, RebalanceRule, InstanceStateChangeRule,
CapacityReservationInterruptionRule). The chart's `settings.interruptionQueue` names it
(components/gpu_nodes.py).
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from components.iam import document

#: rule suffix -> (event source, detail-type), exactly upstream's five patterns
INTERRUPTION_EVENTS = {
    "health": ("aws.health", "AWS Health Event"),
    "spot-interruption": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "rebalance": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "state-change": ("aws.ec2", "EC2 Instance State-change Notification"),
    "reservation-interruption": ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
}
#: upstream's MessageRetentionPeriod: a notice older than 5 minutes is past acting on
RETENTION_S = 300


def queue_name(cluster_name: str) -> str:
    return f"{cluster_name}-karpenter"


def event_pattern(source: str, detail_type: str) -> str:
    return json.dumps({"source": [source], "detail-type": [detail_type]}, sort_keys=True)


def queue_policy(queue_arn: str) -> str:
    """EventBridge (and SQS itself, as upstream) may send; nothing over plain HTTP."""
    return document([
        {"Sid": "EventBridgeSends", "Effect": "Allow",
         "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
         "Action": "sqs:SendMessage", "Resource": queue_arn},
        {"Sid": "DenyHTTP", "Effect": "Deny", "Principal": "*", "Action": "sqs:*",
         "Resource": queue_arn, "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ])


class InterruptionQueue(pulumi.ComponentResource):
    """The queue (SQS-managed encryption), its policy, and one EventBridge rule + target per
    interruption event."""

    arn: pulumi.Output[str]
    name: pulumi.Output[str]

    def __init__(self, name: str, cluster_name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:gpu:InterruptionQueue", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        queue = aws.sqs.Queue(name, name=queue_name(cluster_name),
                              message_retention_seconds=RETENTION_S, sqs_managed_sse_enabled=True,
                              opts=child)
        policy = aws.sqs.QueuePolicy(name, queue_url=queue.url, policy=queue.arn.apply(queue_policy),
                                     opts=child)
        for suffix, (source, detail_type) in INTERRUPTION_EVENTS.items():
            rule = aws.cloudwatch.EventRule(
                f"{name}-{suffix}", name=f"{cluster_name}-karpenter-{suffix}",
                description=f"{detail_type} -> Karpenter's interruption queue",
                event_pattern=event_pattern(source, detail_type), opts=child)
            aws.cloudwatch.EventTarget(
                f"{name}-{suffix}", rule=rule.name, arn=queue.arn,
                target_id="KarpenterInterruptionQueueTarget",
                opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]))
        self.arn = queue.arn
        self.name = queue.name
        self.register_outputs({"arn": self.arn, "name": self.name})
