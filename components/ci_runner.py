"""The in-VPC GitHub Actions runner that applies the workloads stack.

An AWS CodeBuild project registered as a runner for one repository: GitHub queues a
workflow job labelled `codebuild-<project>-${{ github.run_id }}-${{ github.run_attempt }}`,
CodeBuild's webhook (event WORKFLOW_JOB_QUEUED) starts a build in the VPC's private subnets,
and the job runs there with the project's service role. That role can reach the private
Kubernetes API (cluster security group ingress on 443) and is a cluster admin through an EKS
access entry; it can read the model registry (stage pointers, manifests) and publish the
workloads stack's SSM parameters. Nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.cluster import grant_cluster_admin
from components.iam import document, service_trust_policy
from vocabulary.config.ci import CiConfig

HTTPS = 443


def runner_label(project_name: str) -> str:
    """The `runs-on:` value a workflow job uses to land on this runner."""
    return f"codebuild-{project_name}-${{{{ github.run_id }}}}-${{{{ github.run_attempt }}}}"


def runner_policy(*, region: str, account_id: str, cluster_name: str, subnet_arns: list[str],
                  log_group_arn: str, connection_arn: str, bucket_arn: str, registry_prefix: str,
                  key_arn: str, parameter_prefix: str) -> str:
    """What a workloads job needs: VPC networking for the build, its logs, the GitHub
    connection, the cluster's description, registry reads and the workloads' parameters."""
    return document([
        {"Sid": "DescribeBuildNetwork", "Effect": "Allow", "Resource": "*", "Action": [
            "ec2:DescribeDhcpOptions", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
            "ec2:DescribeSecurityGroups", "ec2:DescribeVpcs"]},
        {"Sid": "BuildNetworkInterfaces", "Effect": "Allow",
         "Action": ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface"],
         "Resource": [f"arn:aws:ec2:{region}:{account_id}:{kind}/*"
                      for kind in ("network-interface", "subnet", "security-group")]},
        {"Sid": "AttachToPrivateSubnets", "Effect": "Allow",
         "Action": "ec2:CreateNetworkInterfacePermission",
         "Resource": f"arn:aws:ec2:{region}:{account_id}:network-interface/*",
         "Condition": {"ArnEquals": {"ec2:Subnet": subnet_arns},
                       "StringEquals": {"ec2:AuthorizedService": "codebuild.amazonaws.com"}}},
        {"Sid": "BuildLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": f"{log_group_arn}:*"},
        {"Sid": "GitHubConnection", "Effect": "Allow", "Resource": connection_arn,
         "Action": ["codeconnections:GetConnection", "codeconnections:GetConnectionToken",
                    "codeconnections:UseConnection"]},
        {"Sid": "DescribeCluster", "Effect": "Allow", "Action": "eks:DescribeCluster",
         "Resource": f"arn:aws:eks:{region}:{account_id}:cluster/{cluster_name}"},
        # what the aws_s3_object data source calls (components/data/provider_reads.yaml):
        # HeadObject, GetObject naming the version HeadObject returned (the bucket is
        # versioned), and the object's tags
        {"Sid": "ReadRegistry", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging"],
         "Resource": f"{bucket_arn}/{registry_prefix}*"},
        {"Sid": "DecryptRegistry", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": key_arn,
         "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}},
        {"Sid": "PublishWorkloadsOutputs", "Effect": "Allow",
         "Resource": f"arn:aws:ssm:{region}:{account_id}:parameter{parameter_prefix}*", "Action": [
             "ssm:PutParameter", "ssm:GetParameter", "ssm:GetParameters", "ssm:DeleteParameter",
             "ssm:AddTagsToResource", "ssm:ListTagsForResource"]},
        {"Sid": "DescribeParameters", "Effect": "Allow", "Action": "ssm:DescribeParameters",
         "Resource": "*"},
        {"Sid": "WhoAmI", "Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"},
    ])


@dataclass(frozen=True)
class CiRunnerArgs:
    config: CiConfig
    project_name: str                  # the CodeBuild project, e.g. llmops-prod-workloads
    cluster_name: str
    cluster: pulumi.Input[str]         # the cluster's name as an output, to order creation
    cluster_security_group_id: pulumi.Input[str]
    region: str
    account_id: str
    vpc_id: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[list[str]]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    registry_prefix: str
    parameter_prefix: str              # /<project>/<env>/workloads/ (vocabulary.outputs_schema)
    log_retention_days: int
    log_key_arn: pulumi.Input[str] | None = None  # KMS key for the build log group


def build_log_group_name(project_name: str) -> str:
    return f"/aws/codebuild/{project_name}"


class CiRunner(pulumi.ComponentResource):
    """`runs_on` is the label workflow jobs use; `role_arn` is who they are in AWS and EKS."""

    def __init__(self, name: str, args: CiRunnerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:ci:CiRunner", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        logs = aws.cloudwatch.LogGroup(
            f"{name}-logs", name=build_log_group_name(args.project_name),
            retention_in_days=args.log_retention_days, kms_key_id=args.log_key_arn, opts=child)
        security_group = aws.ec2.SecurityGroup(
            f"{name}-sg", vpc_id=args.vpc_id,
            description="workloads runner: no ingress; egress to the API, GitHub and Pulumi",
            egress=[aws.ec2.SecurityGroupEgressArgs(
                protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"],
                description="GitHub, Pulumi Cloud and package indexes through NAT")],
            tags={"Name": f"{args.project_name}-runner"}, opts=child)
        # the private endpoint's ENIs carry the cluster security group
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-to-api", security_group_id=args.cluster_security_group_id,
            referenced_security_group_id=security_group.id, ip_protocol="tcp",
            from_port=HTTPS, to_port=HTTPS,
            description="Kubernetes API from the workloads runner", opts=child)

        role = aws.iam.Role(f"{name}-role", assume_role_policy=service_trust_policy(
            "codebuild.amazonaws.com", args.account_id),
            description=f"{args.project_name}: applies the workloads stack", opts=child)
        subnet_arns = pulumi.Output.from_input(args.private_subnet_ids).apply(
            lambda ids: [f"arn:aws:ec2:{args.region}:{args.account_id}:subnet/{i}" for i in ids])
        policy = aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=pulumi.Output.all(
            subnet_arns, logs.arn, args.bucket_arn, args.key_arn).apply(lambda v: runner_policy(
                region=args.region, account_id=args.account_id, cluster_name=args.cluster_name,
                subnet_arns=v[0], log_group_arn=v[1], connection_arn=cfg.github_connection_arn,
                bucket_arn=v[2], registry_prefix=args.registry_prefix, key_arn=v[3],
                parameter_prefix=args.parameter_prefix)), opts=child)
        grant_cluster_admin(f"{name}-admin", args.cluster, role.arn, parent=self)
        for i, principal in enumerate(cfg.deploy_role_arns):
            grant_cluster_admin(f"{name}-deployer-{i}", args.cluster, principal, parent=self)

        project = aws.codebuild.Project(
            f"{name}-project", name=args.project_name,
            description="GitHub Actions runner in the VPC for the workloads stack",
            service_role=role.arn, build_timeout=cfg.runner.build_timeout_minutes,
            source=aws.codebuild.ProjectSourceArgs(
                type="GITHUB", location=f"https://github.com/{cfg.github_repository}.git",
                auth=aws.codebuild.ProjectSourceAuthArgs(type="CODECONNECTIONS",
                                                         resource=cfg.github_connection_arn)),
            artifacts=aws.codebuild.ProjectArtifactsArgs(type="NO_ARTIFACTS"),
            environment=aws.codebuild.ProjectEnvironmentArgs(
                compute_type=cfg.runner.compute_type, image=cfg.runner.image,
                type="LINUX_CONTAINER", image_pull_credentials_type="CODEBUILD"),
            vpc_config=aws.codebuild.ProjectVpcConfigArgs(
                vpc_id=args.vpc_id, subnets=args.private_subnet_ids,
                security_group_ids=[security_group.id]),
            logs_config=aws.codebuild.ProjectLogsConfigArgs(
                cloudwatch_logs=aws.codebuild.ProjectLogsConfigCloudwatchLogsArgs(
                    status="ENABLED", group_name=logs.name)),
            # the role's permissions must exist before CodeBuild validates the VPC config
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]))
        aws.codebuild.Webhook(
            f"{name}-webhook", project_name=project.name, build_type="BUILD",
            filter_groups=[aws.codebuild.WebhookFilterGroupArgs(filters=[
                aws.codebuild.WebhookFilterGroupFilterArgs(type="EVENT",
                                                           pattern="WORKFLOW_JOB_QUEUED")])],
            opts=child)

        self.role_arn = role.arn
        self.runs_on = runner_label(args.project_name)
        self.register_outputs({"roleArn": self.role_arn, "runsOn": self.runs_on})
