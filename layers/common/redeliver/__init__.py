"""Redeliver: retries failed Twilio Conversations messages.

Domain modules (`receipts`, `jobs`, `policy`) import no AWS or Twilio code. Adapters (`store`,
`retry_queue`, `signature`, `credentials`) each wrap one outside system. Use cases (`ingest`,
`sweep`) wire them; the Lambda handlers in functions/ only wire the use cases to events.
"""
