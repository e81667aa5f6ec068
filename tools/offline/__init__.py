"""The whole of Redeliver on one machine: `make offline` (python -m tools.offline --help)."""
