"""Codes -> examples -> batches -> model: label masking, collation, batch plans, the one loss, the trainer."""
