"""The VPC: subnets per AZ with EKS discovery tags, NAT, private routing, VPC endpoints and
flow logs. Weight and image pulls go through endpoints instead of paying for NAT."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from vocabulary.config.network import NetworkConfig

ENDPOINT_PORT = 443


@dataclass(frozen=True)
class NetworkArgs:
    """What the network needs: its config, the zones to use and the cluster that will use it."""

    config: NetworkConfig
    availability_zones: list[str]
    cluster_name: str
    region: str
    account_id: str
    log_key_arn: pulumi.Input[str] | None = None  # KMS key for the flow log group


def flow_log_group_name(name: str) -> str:
    return f"/llmops/{name}/vpc-flow-logs"


class Network(pulumi.ComponentResource):
    """A VPC laid out for EKS across availability zones."""

    vpc_id: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list[str]]
    public_subnet_ids: pulumi.Output[list[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:network:Network", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        zones = args.availability_zones[: cfg.az_count]

        vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=cfg.cidr, enable_dns_support=True,
                          enable_dns_hostnames=True, tags={"Name": f"{name}-vpc"}, opts=child)
        # Lock down the default security group: nothing may use it by accident.
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc.id,
                                     tags={"Name": f"{name}-default-locked"}, opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id,
                                      tags={"Name": f"{name}-igw"}, opts=child)

        ownership = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={"Name": f"{name}-public"}, opts=child)

        public_subnets, private_subnets, nat_ids, private_rts = [], [], [], []
        for pair, zone in zip(cfg.layout(), zones, strict=True):
            public = aws.ec2.Subnet(
                f"{name}-public-{zone}", vpc_id=vpc.id, cidr_block=pair.public,
                availability_zone=zone, map_public_ip_on_launch=False,
                tags={"Name": f"{name}-public-{zone}", "kubernetes.io/role/elb": "1", **ownership},
                opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-public-{zone}", subnet_id=public.id,
                                          route_table_id=public_rt.id, opts=child)
            public_subnets.append(public)

            if pair.az_index < cfg.nat_gateway_count:
                eip = aws.ec2.Eip(f"{name}-nat-{zone}", domain="vpc",
                                  tags={"Name": f"{name}-nat-{zone}"}, opts=child)
                nat = aws.ec2.NatGateway(
                    f"{name}-nat-{zone}", allocation_id=eip.id, subnet_id=public.id,
                    tags={"Name": f"{name}-nat-{zone}"},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]))
                nat_ids.append(nat.id)

            private = aws.ec2.Subnet(
                f"{name}-private-{zone}", vpc_id=vpc.id, cidr_block=pair.private,
                availability_zone=zone,
                tags={"Name": f"{name}-private-{zone}", "kubernetes.io/role/internal-elb": "1",
                      # Karpenter's EC2NodeClass selects the subnets for GPU nodes by this tag
                      "karpenter.sh/discovery": args.cluster_name, **ownership},
                opts=child)
            # per-az: each zone egresses through its own NAT; single: everyone uses the first.
            route_nat = nat_ids[pair.az_index if cfg.nat == "per-az" else 0]
            private_rt = aws.ec2.RouteTable(
                f"{name}-private-{zone}", vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0",
                                                    nat_gateway_id=route_nat)],
                tags={"Name": f"{name}-private-{zone}"}, opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{zone}", subnet_id=private.id,
                                          route_table_id=private_rt.id, opts=child)
            private_subnets.append(private)
            private_rts.append(private_rt)

        self._endpoints(name, args, vpc, private_subnets, private_rts, child)
        self._flow_logs(name, args, vpc, child)

        self.vpc_id = vpc.id
        self.vpc_cidr = pulumi.Output.from_input(cfg.cidr)
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets])
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public_subnets])
        self.register_outputs({"vpcId": self.vpc_id, "privateSubnetIds": self.private_subnet_ids,
                               "publicSubnetIds": self.public_subnet_ids})

    def _endpoints(self, name, args: NetworkArgs, vpc, subnets, route_tables, child) -> None:
        """S3 through a gateway endpoint (free), the rest through interface endpoints."""
        aws.ec2.VpcEndpoint(
            f"{name}-s3", vpc_id=vpc.id, service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway", route_table_ids=[rt.id for rt in route_tables],
            tags={"Name": f"{name}-s3"}, opts=child)
        if not args.config.interface_endpoints:
            return
        endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints", vpc_id=vpc.id,
            description="HTTPS from inside the VPC to AWS interface endpoints",
            ingress=[aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp", from_port=ENDPOINT_PORT, to_port=ENDPOINT_PORT,
                cidr_blocks=[args.config.cidr], description="HTTPS from the VPC")],
            tags={"Name": f"{name}-endpoints"}, opts=child)
        for service in args.config.interface_endpoints:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}", vpc_id=vpc.id,
                service_name=f"com.amazonaws.{args.region}.{service}",
                vpc_endpoint_type="Interface", private_dns_enabled=True,
                subnet_ids=[s.id for s in subnets], security_group_ids=[endpoint_sg.id],
                tags={"Name": f"{name}-{service}"}, opts=child)

    def _flow_logs(self, name, args: NetworkArgs, vpc, child) -> None:
        """Flow logs to a CloudWatch log group with a retention period."""
        cfg = args.config
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs", name=flow_log_group_name(name),
            retention_in_days=cfg.flow_logs.retention_days, kms_key_id=args.log_key_arn, opts=child)
        role = aws.iam.Role(
            f"{name}-flow-logs", assume_role_policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                               "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                               # confused-deputy guard: only flow logs of this account
                               "Condition": {"StringEquals": {
                                   "aws:SourceAccount": args.account_id}}}]}),
            opts=child)
        aws.iam.RolePolicy(
            f"{name}-flow-logs", role=role.id,
            policy=log_group.arn.apply(lambda arn: json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow",
                               "Action": ["logs:CreateLogStream", "logs:PutLogEvents",
                                          "logs:DescribeLogStreams"],
                               "Resource": [arn, f"{arn}:*"]}]})),
            opts=child)
        aws.ec2.FlowLog(
            f"{name}-flow-log", vpc_id=vpc.id, traffic_type=cfg.flow_logs.traffic_type,
            log_destination_type="cloud-watch-logs", log_destination=log_group.arn,
            iam_role_arn=role.arn, max_aggregation_interval=60, opts=child)
