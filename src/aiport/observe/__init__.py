"""Observability: the audit writer, log queries, usage."""
