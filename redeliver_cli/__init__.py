"""`redeliver`: the operator's command for a deployed Redeliver stack.

The commands are part of the product, installed with it (`make` puts the `redeliver` console
script into .venv): they read and repair what the functions in layers/common/redeliver write,
through the same adapters. They are kept apart from tools/, which runs the stack offline for
development and never ships; nothing here imports tools/.

One module per command; `main` holds the top-level parser and dispatch, `stack` what every
command shares (the stack found by name, a message's partition, the errors said as they are),
`arguments` the argument types and the exit-code rule (usage error 2, failure 1), `endpoint`
where the AWS calls go (a loopback `--endpoint-url`: moto, offline).
"""
