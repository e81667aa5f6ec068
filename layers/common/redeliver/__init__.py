"""Redeliver: retries failed Twilio Conversations messages.

The layers are folders, and imports run one way: `usecases` → `adapters` → `domain` (and anything
→ `observability`, `settings`). `domain/` imports no AWS or Twilio code; each module of
`adapters/` wraps one outside system; `usecases/` wire them; the Lambda handlers in functions/
only wire the use cases to events. `lint-imports` (pyproject.toml) holds the rule.
"""
