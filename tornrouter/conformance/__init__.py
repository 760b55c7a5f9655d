"""The conformance kit: ``tornrouter conformance --conf FILE --provider NAME``.

Before a provider takes production traffic, an operator wants to know that it
speaks its API the way the router reads it: that its stop reasons, tool calls,
usage, streams and errors come back as the router's codecs expect.  The kit
sends a fixed battery of canonical requests through the router's own provider
and codec machinery (so it sees what the router would see, translation
included), checks each answer, and prints a pass/fail table and a JSON report.

    arguments.py  the command's options (imported by ``cli`` at parse time: keep it light)
    command.py    config -> provider -> battery -> table, report, exit status
    probe.py      one request whole or streamed, the stream checked by the validators
    battery.py    the rows: what each sends and what it checks
    report.py     the outcome of a row, the table and the JSON report
    image.py      the small PNG the image row sends
"""
