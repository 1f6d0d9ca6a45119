"""Apps: definitions with typed form variables, sandboxed prompt templates, versions,
conversations, and the no-code and natural-language builders."""
