"""Tools a model may call (OpenAI tool-calling format), enabled per app."""
