"""Organizations, teams, users and their API keys."""
