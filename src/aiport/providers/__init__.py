"""Provider adapters: each turns a ChatRequest into a Completion or a stream of Deltas."""
