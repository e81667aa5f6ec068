"""The domain: receipts and their state machine, the retry policy, chains of attempts, quiet hours,
jobs. Pure: no AWS or Twilio code (the `forbidden` contract in pyproject.toml holds it)."""
