"""DynamoDB: the receipts table (store) and the suppression list over it."""
