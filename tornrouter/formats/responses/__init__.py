"""The OpenAI Responses API wire format (``POST /v1/responses``): ``schemas``
(request validation), ``decode``, ``encode`` and ``output`` (JSON bodies <->
canonical), ``stream`` (SSE events <-> canonical events), ``chat`` (what it
shares with chat completions), ``codec`` (them all behind one ``Codec``)."""
