"""Retry: the worker (claim, decide, send, record) and the ways of sending (sending/)."""
