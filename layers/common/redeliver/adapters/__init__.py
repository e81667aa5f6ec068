"""Adapters: one outside system each (DynamoDB, SQS, Twilio, the AWS clients). They import the
domain, never the use cases (the `layers` contract in pyproject.toml holds it)."""
