"""Use cases: ingest, record, retry, sweep, reconcile. They wire adapters to the domain; the Lambda
handlers in functions/ only wire the use cases to events."""
