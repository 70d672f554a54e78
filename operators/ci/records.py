"""What the CI operators write to the platform records, as a small interface.

:class:`~operators.records.protocol.CiResultsWriter` is the part of
:class:`operators.records.RecordsStore` (connection ``sre_records``) that builds, test runs and
quality scans use; a unit test passes a fake through
the operators' ``recorder_factory`` argument. Records are keyed by the task try, so a retried
task updates its own record instead of adding one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # The CI stages' part of the records store's interface (kept out of DAG-parse imports).
    from operators.records.protocol import CiResultsWriter as CiRecorder


RecorderFactory = Callable[[], AbstractContextManager["CiRecorder"]]


@contextmanager
def platform_records() -> Any:
    """The platform records store named by the ``sre_records`` connection."""
    from operators.records import RecordsStore

    with RecordsStore.from_conn_id() as store:
        yield store


def task_ref(context: Mapping[str, Any]) -> Any:
    """The records key of the running task try."""
    from operators.records import TaskRef

    return TaskRef.from_context(context)
