"""A small Elasticsearch stand-in: a real HTTP server speaking the subset our clients use.

It answers the requests that the elasticsearch provider's task-log writer and reader and our
log search send through ``elasticsearch-py``: the root info (with the ``X-Elastic-Product``
header the client checks), index create/exists/get/delete, composable index templates,
``_bulk``, ``_search`` (``match_phrase``, ``match``, ``term``, ``terms``, ``range``,
``exists``, ``wildcard``, ``prefix``, ``bool``; ``sort``, ``size``, ``from``, ``search_after``,
``collapse``, ``_source`` filtering), ``_count`` and ``_refresh``. It negotiates the client's
compatibility media types (``application/vnd.elasticsearch+json; compatible-with=9``) the way a
server of the emulated major version does, so a client/server mismatch fails here as it would
against a real cluster.

Faults are injected through ``/_sandbox/faults`` (or :mod:`sandbox.es.testing`): the node can be
down (connections dropped), slow, answer a status such as 429, or refuse bodies above a size
with 413.

Run it with ``python -m sandbox.es --port 0``; tests use ``sandbox.es.testing.run_es()``.
"""
