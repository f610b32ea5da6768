"""Entry point for the bootstrap stack's `pulumi up` (project llmops-bootstrap, this directory)."""

from stacks.bootstrap.program import main

main()
