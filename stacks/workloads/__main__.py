"""Entry point for the workloads stack's `pulumi up` (project llmops-workloads, this directory)."""

from stacks.workloads_stack import main

main()
