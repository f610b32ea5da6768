"""Entry point for `pulumi up`: the program lives in stacks.program so tools can import it."""

from stacks.program import main

main()
