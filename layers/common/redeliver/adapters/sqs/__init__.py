"""SQS: the retry queue, the ingest spill queue, and the partial-batch answer to an SQS event."""
