"""Retry: the worker (worker.py: re-check, decide, claim, send, record), the checks before a send
(checks.py), claim resolution (claims.py), the follow-up of a sent retry (follow_up.py), what a
record comes to (outcomes.py) and the ways of sending (sending/)."""
