"""The OpenAI Responses API wire format (``POST /v1/responses``): ``schemas``
(request validation), ``decode`` and ``encode`` (JSON bodies <-> canonical),
``stream`` (SSE events <-> canonical events), ``codec`` (the four behind one
``Codec``)."""
