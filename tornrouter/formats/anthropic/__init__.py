"""The Anthropic Messages API (``POST /v1/messages``) as a codec.

``schemas`` validates a client's request body; ``codec.AnthropicCodec`` converts
requests, responses and errors between this wire format and the canonical
model, and exposes the stop-reason and usage mappings the stream codec shares.
"""
