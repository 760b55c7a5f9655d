"""``tornrouter replay``: a request log routed again under another config
(offline, ``offline.py``), or sent again to a running router (``send.py``).
``command.py`` is the command; ``reading.py`` reads the logs, ``rebuild.py``
makes each entry a request again, ``report.py`` tells what changed."""
