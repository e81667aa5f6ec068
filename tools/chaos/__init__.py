"""`make chaos`: the offline stack under faults (tools.chaos.cli; python -m tools.chaos --help)."""
