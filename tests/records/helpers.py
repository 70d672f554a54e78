"""Small helpers shared by the records tests."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

from operators.records import RecordsStore, RetryPolicy

FAST_RETRY = RetryPolicy(attempts=3, first_delay=0.05, max_delay=0.2)


def set_conn(conn_id: str, uri: str) -> None:
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = uri


def unset_conn(conn_id: str) -> None:
    os.environ.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)


def sqlite_uri(path: Path) -> str:
    """The connection URI form the SQLite hook accepts: ``sqlite://`` + absolute path."""
    return "sqlite://" + str(path.resolve()).replace(" ", "%20")


def mysql_uri(server: dict[str, Any], database: str) -> str:
    return f"mysql://{server['user']}:{server['password']}@{server['host']}:{server['port']}/{database}"


def mysql_admin(server: dict[str, Any], database: str | None = None) -> Any:
    """A plain client connection (autocommit) for set-up, inspection and KILL."""
    import MySQLdb

    conn = MySQLdb.connect(
        host=str(server["host"]),
        port=int(server["port"]),
        user=str(server["user"]),
        passwd=str(server["password"]),
        db=database or "",
        charset="utf8mb4",
    )
    conn.autocommit(True)
    return conn


def unique(prefix: str) -> str:
    """A name no other test uses (the session databases are shared between tests)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def count(
    store: RecordsStore, table: str, where: str = "1 = 1", params: tuple[Any, ...] = ()
) -> int:
    def work(tx: Any) -> int:
        row = tx.one(f"SELECT COUNT(*) FROM {table} WHERE {where}", params)
        return int(row[0])

    return store.transaction("count", work, write=False)


class TcpProxy:
    """A loopback TCP forwarder to a server that can go down and come back.

    ``stop()`` closes the listening socket and every forwarded connection, which is what
    clients see when the database server restarts; ``start()`` listens again on the same port.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
            listener, self._listener = self._listener, None
        for sock in [s for s in (listener,) if s is not None] + sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
