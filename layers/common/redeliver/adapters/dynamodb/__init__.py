"""DynamoDB: the one receipts table, one module per aggregate over it (table.py lists them)."""
