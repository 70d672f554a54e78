"""Connection to the entry gateway's admin API and its metrics endpoint, with retries and timeouts.

Connection contract (conn id from the catalog's ``gateway.conn_id``, ``gateway_admin`` by default):

- conn type ``http``;
- ``host``, ``port`` and ``schema`` (``http`` or ``https``) of the admin API;
- ``password``: the admin key, sent as the ``X-API-KEY`` header (never logged);
- extra ``metrics_url``: full URL of the gateway's Prometheus endpoint (needed for answer counts);
- extra ``timeout`` (optional, seconds, default 10): connect and read timeout of each call.

Every call retries on connection errors, on 429 (waiting at least what ``Retry-After`` asks) and
on 5xx answers, with exponential backoff, until ``retries`` extra attempts or the retry budget in
seconds is used up. Failures raise :class:`GatewayError` naming the service, the site and the path.
"""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.hook import BaseHook

from operators.gateway.base import GatewayConfigError, GatewayError

if TYPE_CHECKING:
    import requests

DEFAULT_TIMEOUT_SECONDS = 10.0
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class GatewayConnection:
    """The resolved connection: where the admin API and the metrics answer, and how long to wait."""

    conn_id: str
    base_url: str
    admin_key: str | None
    metrics_url: str | None
    timeout_seconds: float

    def __repr__(self) -> str:
        key = "***" if self.admin_key else None
        return (
            f"GatewayConnection(conn_id={self.conn_id!r}, base_url={self.base_url!r}, admin_key={key!r}, "
            f"metrics_url={self.metrics_url!r}, timeout_seconds={self.timeout_seconds!r})"
        )


@dataclass(frozen=True)
class GatewayAnswer:
    """One answer of the admin API: HTTP status and decoded JSON body (``None`` when empty)."""

    status: int
    body: Any


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def _describe(service: str | None, site: str | None) -> str:
    parts = [f"service={service}" if service else "", f"site={site}" if site else ""]
    joined = " ".join(p for p in parts if p)
    return f" ({joined})" if joined else ""


class GatewayHook(BaseHook):
    """Talk to the gateway's admin API and read its metrics.

    :param gateway_conn_id: Airflow connection id of the gateway admin API (see the module docstring).
    :param retries: extra attempts after the first one for a call that fails in a retryable way.
    :param backoff_seconds: wait before the first retry; doubled for each further retry.
    :param max_backoff_seconds: upper bound of one wait (a longer ``Retry-After`` is still honoured).
    :param retry_budget_seconds: a call gives up once this much time has passed since its first attempt.
    :param timeout_seconds: connect/read timeout of each attempt; overrides the connection's ``timeout``.
    """

    conn_name_attr = "gateway_conn_id"
    default_conn_name = "gateway_admin"
    conn_type = "http"
    hook_name = "Entry gateway admin API"

    def __init__(
        self,
        gateway_conn_id: str = default_conn_name,
        *,
        retries: int = 5,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
        retry_budget_seconds: float = 30.0,
        timeout_seconds: float | None = None,
    ) -> None:
        super().__init__()
        if retries < 0 or backoff_seconds < 0 or retry_budget_seconds < 0:
            raise ValueError(
                "retries, backoff_seconds and retry_budget_seconds must not be negative"
            )
        self.gateway_conn_id = gateway_conn_id
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.retry_budget_seconds = retry_budget_seconds
        self._timeout_override = timeout_seconds
        self._connection: GatewayConnection | None = None
        self._session: requests.Session | None = None

    @property
    def connection(self) -> GatewayConnection:
        """The connection fields, read once per hook."""
        if self._connection is None:
            self._connection = self._read_connection()
        return self._connection

    def _read_connection(self) -> GatewayConnection:
        from airflow.sdk.exceptions import AirflowNotFoundException

        conn_id = self.gateway_conn_id
        try:
            conn = self.get_connection(conn_id)
        except AirflowNotFoundException:
            raise GatewayConfigError(
                f"Airflow connection {conn_id!r} (gateway admin API) is not defined; create it with conn type http, "
                "host, port, schema, the admin key as password and extra metrics_url"
            ) from None
        extra = conn.extra_dejson or {}
        host = (conn.host or "").strip()
        scheme = (conn.schema or "http").strip().lower()
        if "://" in host:
            scheme, _, host = host.partition("://")
        host = host.rstrip("/")
        if not host:
            raise GatewayConfigError(
                f"Airflow connection {conn_id!r}: host is empty; set the admin API's host"
            )
        if scheme not in ("http", "https"):
            raise GatewayConfigError(
                f"Airflow connection {conn_id!r}: schema {scheme!r} is not http or https"
            )
        base_url = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        timeout = self._timeout_override
        if timeout is None:
            try:
                timeout = float(extra.get("timeout", DEFAULT_TIMEOUT_SECONDS))
            except (TypeError, ValueError):
                raise GatewayConfigError(
                    f"Airflow connection {conn_id!r}: extra timeout {extra.get('timeout')!r} is not a number of seconds"
                ) from None
        if timeout <= 0:
            raise GatewayConfigError(f"Airflow connection {conn_id!r}: timeout must be positive")
        metrics_url = extra.get("metrics_url") or None
        return GatewayConnection(
            conn_id=conn_id,
            base_url=base_url,
            admin_key=conn.password or None,
            metrics_url=str(metrics_url) if metrics_url else None,
            timeout_seconds=timeout,
        )

    def get_conn(self) -> requests.Session:
        """A session that sends the admin key with every admin call."""
        if self._session is None:
            import requests

            session = requests.Session()
            session.headers["Accept"] = "application/json"
            key = self.connection.admin_key
            if key:
                session.headers["X-API-KEY"] = key
            self._session = session
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def admin(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        service: str | None = None,
        site: str | None = None,
        accept_statuses: tuple[int, ...] = (),
    ) -> GatewayAnswer:
        """Call the admin API; 2xx and ``accept_statuses`` answers are returned, anything else raises.

        :param method: HTTP method.
        :param path: URL path below the admin API's base URL, e.g. ``/apisix/admin/upstreams/web``.
        :param body: JSON body to send, if any.
        :param service: the service the call is about (for messages and logs).
        :param site: the site the call is about (for messages and logs).
        :param accept_statuses: non-2xx statuses the caller handles itself (e.g. 404).
        """
        url = self.connection.base_url + path
        response = self._send(method, url, path, body, service=service, site=site)
        status = response.status_code
        try:
            decoded = response.json() if response.content else None
        except ValueError:
            decoded = None
            if 200 <= status < 300:
                raise GatewayError(
                    f"gateway admin {method} {path}{_describe(service, site)}: HTTP {status} with a body that is not JSON: "
                    f"{response.text[:200]!r}",
                    service=service,
                    site=site,
                    path=path,
                    status=status,
                ) from None
        if 200 <= status < 300 or status in accept_statuses:
            return GatewayAnswer(status=status, body=decoded)
        if status in (401, 403):
            raise GatewayError(
                f"gateway admin {method} {path}{_describe(service, site)}: the admin key was refused (HTTP {status}); "
                f"check the password of Airflow connection {self.gateway_conn_id!r}",
                service=service,
                site=site,
                path=path,
                status=status,
            )
        raise GatewayError(
            f"gateway admin {method} {path}{_describe(service, site)}: HTTP {status}: {_error_detail(decoded, response.text)}",
            service=service,
            site=site,
            path=path,
            status=status,
        )

    def metrics_text(self, *, service: str | None = None) -> str:
        """The Prometheus exposition text of the gateway (extra ``metrics_url``)."""
        url = self.connection.metrics_url
        if not url:
            raise GatewayConfigError(
                f"Airflow connection {self.gateway_conn_id!r} has no extra metrics_url; set it to the gateway's "
                "Prometheus endpoint (e.g. http://gateway:9091/apisix/prometheus/metrics)",
                service=service,
            )
        from urllib.parse import urlsplit

        path = urlsplit(url).path or "/"
        response = self._send("GET", url, path, None, service=service, site=None, admin=False)
        if response.status_code != 200:
            raise GatewayError(
                f"gateway metrics GET {path}{_describe(service, None)}: HTTP {response.status_code}: {response.text[:200]!r}",
                service=service,
                path=path,
                status=response.status_code,
            )
        return response.text

    def _send(
        self,
        method: str,
        url: str,
        path: str,
        body: Any,
        *,
        service: str | None,
        site: str | None,
        admin: bool = True,
    ) -> requests.Response:
        import requests

        session = self.get_conn()
        timeout = self.connection.timeout_seconds
        headers = None if admin else {"X-API-KEY": None, "Accept": "text/plain"}
        data = json.dumps(body) if body is not None else None
        if data is not None:
            headers = {**(headers or {}), "Content-Type": "application/json"}
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                response = session.request(
                    method, url, data=data, headers=headers, timeout=(timeout, timeout)
                )
            except requests.RequestException as err:
                reason = f"{type(err).__name__}: {_short(err)}"
                last_status: int | None = None
            else:
                if response.status_code not in _RETRY_STATUSES:
                    return response
                last_status = response.status_code
                reason = f"HTTP {response.status_code}"
                if response.status_code == 429 or response.status_code == 503:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
            elapsed = time.monotonic() - started
            delay = min(self.backoff_seconds * (2 ** (attempt - 1)), self.max_backoff_seconds)
            if retry_after is not None:
                delay = max(delay, retry_after)
            remaining = self.retry_budget_seconds - elapsed
            if attempt > self.retries or delay > remaining:
                why = (
                    f"the gateway asked to retry after {retry_after:.1f} s, beyond the retry budget"
                    if retry_after is not None and retry_after > remaining
                    else "retries used up"
                )
                raise GatewayError(
                    f"gateway {'admin ' if admin else ''}{method} {path}{_describe(service, site)} failed after "
                    f"{attempt} attempt(s) in {elapsed:.1f} s ({why}): last error {reason}; "
                    f"is the gateway at {self.connection.base_url if admin else url} up?",
                    service=service,
                    site=site,
                    path=path,
                    status=last_status,
                )
            self.log.warning(
                "gateway call retrying method=%s path=%s service=%s site=%s attempt=%s delay_s=%.2f reason=%s",
                method,
                path,
                service,
                site,
                attempt,
                delay,
                reason,
            )
            time.sleep(delay)


def _short(err: BaseException) -> str:
    text = str(err)
    return text if len(text) <= 200 else text[:197] + "..."


def _error_detail(decoded: Any, text: str) -> str:
    if isinstance(decoded, dict):
        for key in ("error_msg", "message"):
            if key in decoded:
                return str(decoded[key])
    return repr(text[:200])
