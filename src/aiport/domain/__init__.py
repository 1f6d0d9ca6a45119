"""Plain typed objects shared by every layer; imports nothing of ours."""
