"""Find task log lines across runs by service, release, run, site and text.

How a service, a release or a site gets into a log line: our operators log the identifiers a
person searches for as ``key=value`` pairs (``rollout done service=hello-api site=site-a
release=1.4.2``). Each line is one document whose ``event`` field is analysed text, so those
pairs are searched as phrases: ``service=hello-api`` matches the words ``service hello api`` in
a row (punctuation is not part of the match, so it also matches ``service: hello-api``).

A search runs in two steps:

1. **Scope.** A task try (one log_id) is in scope when its log has, somewhere, a line with each
   given pair (``service=S``, ``release=R``, ``site=S``; they need not be on the same line) and,
   with ``run_id``, belongs to that DAG run (the task runner tags its lines with ``run_id``).
   Only the most recent :data:`MAX_TRIES` tries are kept.
2. **Lines.** Within those tries, the lines containing ``text`` as a phrase (in the message, or
   in the message of the exception a failed task logged); without ``text``, the lines that name
   one of the given pairs. Newest first, at most ``limit``.

With only ``text``, every task log is searched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    from operators.logsearch.settings import LogSettings

log = logging.getLogger(__name__)

MAX_TRIES = 1000
PAGE_SIZE = 1000


class LogSearchError(RuntimeError):
    """The search could not run: bad query, or Elasticsearch refused or could not be reached."""


@dataclass(frozen=True)
class LogQuery:
    """What to look for. At least one field besides ``limit`` must be given.

    :param service: service name as logged (``service=<name>``)
    :param release: release as logged (``release=<version>``)
    :param run_id: Airflow DAG run id
    :param site: site name as logged (``site=<name>``)
    :param text: phrase the line must contain
    :param limit: most lines returned
    """

    service: str | None = None
    release: str | None = None
    run_id: str | None = None
    site: str | None = None
    text: str | None = None
    limit: int = 50

    def pairs(self) -> list[str]:
        """The ``key=value`` phrases this query scopes by."""
        given = (("service", self.service), ("release", self.release), ("site", self.site))
        return [f"{key}={value}" for key, value in given if value]

    def validate(self) -> None:
        if not (self.pairs() or self.run_id or self.text):
            raise LogSearchError("give at least one of service, release, run id, site or text")
        if self.limit < 1:
            raise LogSearchError(f"limit must be at least 1, got {self.limit}")


@dataclass(frozen=True)
class LogHit:
    """One log line found."""

    log_id: str
    offset: int
    timestamp: str | None
    level: str | None
    event: str
    index: str
    url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "log_id": self.log_id,
            "offset": self.offset,
            "timestamp": self.timestamp,
            "level": self.level,
            "event": self.event,
            "index": self.index,
            "url": self.url,
        }


class LogSearch:
    """Runs :class:`LogQuery` searches against the task-log indices.

    :param client: an ``elasticsearch.Elasticsearch`` client (see
        :func:`operators.logsearch.settings.make_client`)
    :param settings: where the logs are and how links are made
    """

    def __init__(self, client: Elasticsearch, settings: LogSettings) -> None:
        self.client = client
        self.settings = settings

    def search(self, query: LogQuery) -> list[LogHit]:
        """Lines matching ``query``, newest first."""
        query.validate()
        scope: list[str] | None = None
        if query.pairs() or query.run_id:
            scope = self._tries_in_scope(query)
            if not scope:
                return []
        filters: list[dict[str, Any]] = []
        if scope is not None:
            filters.append({"terms": {"log_id": scope}})
        musts: list[dict[str, Any]] = []
        if query.text:
            musts.append(
                {
                    "bool": {
                        "should": [
                            {"match_phrase": {"event": query.text}},
                            {"match_phrase": {"error_detail.exc_value": query.text}},
                        ],
                        "minimum_should_match": 1,
                    }
                }
            )
        elif query.pairs():
            musts.append(
                {
                    "bool": {
                        "should": [{"match_phrase": {"event": pair}} for pair in query.pairs()],
                        "minimum_should_match": 1,
                    }
                }
            )
        body_query = {"bool": {"filter": filters, "must": musts}}
        return self._collect(body_query, query.limit)

    def _tries_in_scope(self, query: LogQuery) -> list[str]:
        chosen: list[str] | None = None
        within: list[dict[str, Any]] = []
        if query.run_id:
            chosen = self._distinct_log_ids(
                {"bool": {"filter": [{"term": {"run_id": query.run_id}}]}}
            )
            if not chosen:
                return []
            within = [{"terms": {"log_id": chosen}}]
        for pair in query.pairs():
            found = self._distinct_log_ids(
                {"bool": {"filter": within, "must": [{"match_phrase": {"event": pair}}]}}
            )
            if chosen is None:
                chosen = found
            else:
                named = set(found)
                chosen = [log_id for log_id in chosen if log_id in named]
            if not chosen:
                return []
            within = [{"terms": {"log_id": chosen}}]
        return chosen or []

    def _distinct_log_ids(self, body_query: dict[str, Any]) -> list[str]:
        """log_ids of the matching lines, most recent try first (one hit per log_id)."""
        response = self._call(
            query=body_query,
            collapse={"field": "log_id"},
            sort=[{"timestamp": {"order": "desc", "unmapped_type": "date"}}, {"log_id": "asc"}],
            size=MAX_TRIES,
            source_includes=["log_id"],
        )
        log_ids: list[str] = []
        for hit in response["hits"]["hits"]:
            value = hit.get("_source", {}).get("log_id")
            if isinstance(value, str) and value not in log_ids:
                log_ids.append(value)
        if len(log_ids) >= MAX_TRIES:
            log.warning(
                "scope truncated to the %d most recent task tries; narrow the search", MAX_TRIES
            )
        return log_ids

    def _collect(self, body_query: dict[str, Any], limit: int) -> list[LogHit]:
        offset_field = self.settings.offset_field
        sort = [
            {"timestamp": {"order": "desc", "unmapped_type": "date"}},
            {"log_id": "asc"},
            {offset_field: {"order": "desc", "unmapped_type": "long"}},
        ]
        hits: list[LogHit] = []
        cursor: list[Any] | None = None
        while len(hits) < limit:
            size = min(PAGE_SIZE, limit - len(hits))
            extra = {"search_after": cursor} if cursor is not None else {}
            response = self._call(
                query=body_query,
                sort=sort,
                size=size,
                source_includes=["log_id", offset_field, "timestamp", "level", "event", "message"],
                **extra,
            )
            page = response["hits"]["hits"]
            hits.extend(self._to_hit(raw) for raw in page)
            if len(page) < size:
                break
            cursor = page[-1]["sort"]
        return hits

    def _call(self, **kwargs: Any) -> Any:
        from elasticsearch import ApiError, TransportError

        try:
            return self.client.search(index=self.settings.index_patterns, **kwargs)
        except ApiError as err:
            raise LogSearchError(
                f"Elasticsearch refused the search of {self.settings.index_patterns}: {err}"
            ) from err
        except TransportError as err:
            raise LogSearchError(f"cannot reach Elasticsearch: {err}") from err

    def _to_hit(self, raw: dict[str, Any]) -> LogHit:
        source = raw.get("_source", {})
        log_id = str(source.get("log_id", ""))
        event = source.get("event", source.get("message", ""))
        return LogHit(
            log_id=log_id,
            offset=int(source.get(self.settings.offset_field, 0) or 0),
            timestamp=source.get("timestamp"),
            level=source.get("level"),
            event=event if isinstance(event, str) else str(event),
            index=str(raw.get("_index", "")),
            url=self.settings.frontend_url(log_id) if log_id else None,
        )
