"""Tools a model may call (OpenAI tool-calling format), enabled per app.

The names live here, apart from the implementations, so an app definition can be
validated without loading the tools (aiport.tools.builtin has one entry per name)."""

TOOL_NAMES: frozenset[str] = frozenset({"knowledge_search", "calculator", "http_get", "current_time"})
