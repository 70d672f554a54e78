"""Record writes on a background thread, for callers that must never wait on the records DB.

The audit listener runs inside task processes, the scheduler and the api-server; a slow or
down records database must not slow or fail any of them. :class:`BackgroundRecorder` queues
each write and runs it on one daemon thread with a few tries; a write that still fails is
dropped with one ERROR line that names it.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from operators.records.models import RecordsConfigError, RecordsUnavailableError
from operators.records.store import RecordsStore

log = logging.getLogger(__name__)

Write = Callable[[RecordsStore], None]

_INHERITED: list[RecordsStore] = []
_RECORDERS: weakref.WeakSet[BackgroundRecorder] = weakref.WeakSet()


def flush_all(timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the queued writes of every recorder in the process."""
    deadline = time.monotonic() + timeout
    done = True
    for recorder in list(_RECORDERS):
        done = recorder.flush(max(deadline - time.monotonic(), 0.0)) and done
    return done


@dataclass(frozen=True)
class _Job:
    what: str
    write: Write


@atexit.register
def _flush_at_exit() -> None:
    flush_all(2.0)


class BackgroundRecorder:
    """Runs record writes on one daemon thread, in order, with bounded tries.

    A write gets ``attempts`` tries, ``first_delay`` seconds apart and doubling. While the
    database is known to be down (a write failed for good less than ``cooldown`` seconds ago)
    writes get a single try, so an outage costs one connection attempt per event, not a pile
    of retries. A records connection that is not defined turns recording off for the process
    with one WARNING. The queue holds at most ``max_pending`` writes; more are dropped, with
    one ERROR line per overflow.

    :param open_store: opens the store on the worker thread (called again after a fork).
    :param attempts: tries per write while the database is believed up.
    :param first_delay: seconds before the second try.
    :param cooldown: seconds after a failed write during which writes get one try.
    :param max_pending: queued writes beyond which new ones are dropped.
    """

    def __init__(
        self,
        open_store: Callable[[], RecordsStore],
        *,
        attempts: int = 3,
        first_delay: float = 0.2,
        cooldown: float = 30.0,
        max_pending: int = 1000,
    ) -> None:
        self._open_store = open_store
        self.attempts = max(attempts, 1)
        self.first_delay = first_delay
        self.cooldown = cooldown
        self.max_pending = max_pending
        self._reset()
        os.register_at_fork(after_in_child=self._after_fork)
        _RECORDERS.add(self)

    def _after_fork(self) -> None:
        # The child must not use the parent's connections, nor close them: finalising a
        # MySQL connection sends QUIT on the socket it shares with the parent. Keep them
        # referenced and start over.
        if self._store is not None:
            _INHERITED.append(self._store)
        self._reset()

    def _reset(self) -> None:
        self._queue: queue.Queue[_Job] = queue.Queue(self.max_pending)
        self._idle = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._store: RecordsStore | None = None
        self._disabled = False
        self._down_until = 0.0
        self._overflowing = False
        self.lost = 0

    @property
    def disabled(self) -> bool:
        """True once the records connection turned out not to be defined."""
        return self._disabled

    def submit(self, what: str, write: Write) -> None:
        """Queue ``write``; return at once. ``what`` names the write in log lines."""
        if self._disabled:
            return
        with self._idle:
            try:
                self._queue.put_nowait(_Job(what, write))
            except queue.Full:
                self.lost += 1
                if not self._overflowing:
                    log.error(
                        "records write queue is full, dropping writes what=%s pending=%s",
                        what,
                        self._pending,
                    )
                self._overflowing = True
                return
            self._overflowing = False
            self._pending += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="records-recorder", daemon=True
                )
                self._thread.start()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for queued writes; False if some are still pending."""
        with self._idle:
            done = self._idle.wait_for(lambda: self._pending == 0, timeout)
            if not done:
                log.error(
                    "records writes still pending when the process stops pending=%s; "
                    "they are lost if the process exits now",
                    self._pending,
                )
            return done

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                self._run(job)
            finally:
                with self._idle:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.notify_all()

    def _run(self, job: _Job) -> None:
        if self._disabled:
            return
        try:
            if self._store is None:
                self._store = self._open_store()
        except RecordsConfigError as exc:
            self._disabled = True
            log.warning("records are not written by this process: %s", exc)
            return
        except Exception as exc:
            self.lost += 1
            log.error("records write lost what=%s error=%s", job.what, exc)
            return
        tries = 1 if time.monotonic() < self._down_until else self.attempts
        delay = self.first_delay
        for attempt in range(1, tries + 1):
            try:
                job.write(self._store)
                self._down_until = 0.0
                return
            except RecordsUnavailableError as exc:
                if attempt == tries:
                    self.lost += 1
                    self._down_until = time.monotonic() + self.cooldown
                    log.error(
                        "records write lost after %s tries, the records database is "
                        "unreachable what=%s error=%s",
                        tries,
                        job.what,
                        exc,
                    )
                    return
                time.sleep(delay)
                delay *= 2
            except Exception as exc:
                self.lost += 1
                log.error("records write lost what=%s error=%s", job.what, exc)
                return
