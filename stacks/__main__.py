"""Entry point for the platform stack's `pulumi up` (project llmops, Pulumi.yaml at the root)."""

from stacks.platform_stack import main

main()
