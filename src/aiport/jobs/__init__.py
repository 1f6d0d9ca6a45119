"""Background jobs and outbound webhooks.

One job model in the database, two backends behind one interface (in-process asyncio
workers by default, Celery on RabbitMQ or Redis at scale), the same task code in both.
Every model call a job makes goes through the one pipeline with entry point "job".
"""
