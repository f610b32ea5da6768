"""Release decisions: canary analysis from Prometheus, and the stack-file changes that promote
or roll back a canary."""
