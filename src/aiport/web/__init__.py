"""HTTP entry points: the OpenAI-compatible /v1 API, the admin API, health."""
