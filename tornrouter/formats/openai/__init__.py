"""The OpenAI chat-completions wire format: ``schemas`` (request validation),
``codec`` (JSON bodies <-> canonical) and ``stream`` (SSE chunks <-> canonical events)."""
