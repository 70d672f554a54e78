"""Parse every DAG file in a fresh interpreter with the network and the databases out of reach.

Run as a script by the integrity tests: ``python parse_probe.py DAGS_FOLDER``. Prints one JSON
object: import errors per file, DAG ids, and which heavy modules the DAG files pulled in.
"""

from __future__ import annotations

import json
import socket
import sys

HEAVY_MODULES = (
    "kubernetes",
    "kubernetes_asyncio",
    "elasticsearch",
    "MySQLdb",
    "pymysql",
    "defusedxml",
    "pandas",
    "numpy",
)


class NetworkBlocked(OSError):
    pass


def _refuse(*args: object, **kwargs: object) -> None:
    raise NetworkBlocked("network access at DAG parse time is not allowed")


def main(dags_folder: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    baseline = {name for name in HEAVY_MODULES if name in sys.modules}
    socket.socket.connect = _refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = _refuse  # type: ignore[method-assign]
    socket.create_connection = _refuse  # type: ignore[assignment]
    socket.getaddrinfo = _refuse  # type: ignore[assignment]
    bag = DagBag(dag_folder=dags_folder, safe_mode=False)
    heavy = sorted(name for name in HEAVY_MODULES if name in sys.modules and name not in baseline)
    print(
        json.dumps(
            {
                "import_errors": {k: str(v)[-2000:] for k, v in bag.import_errors.items()},
                "dag_ids": sorted(bag.dag_ids),
                "heavy_modules": heavy,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
