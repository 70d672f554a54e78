"""One of two processes racing for release locks (run by test_concurrency.py).

Usage: ``python -m tests.records.lock_contender OWNER PREFIX COUNT CONN_ID [CONN_ID...]``.
Prints ``ready`` once the stores are open, then reads the start time (epoch seconds) from
stdin. Phases run in fixed time slots after it, so both processes hit the same lock at the
same moment:

1. at start + i * SLOT: take lock ``PREFIX-i`` with a lease of ``LEASE`` seconds;
2. at start + PHASE2: take the locks lost in phase 1 (their lease has expired by then);
3. at start + PHASE3: take the locks won in phase 1 again (the other process holds them now).

Prints one JSON object: ``{conn_id: {"1": {lock: won}, "2": {...}, "3": {...}}}``.
"""

from __future__ import annotations

import json
import sys
import time

from operators.records import RecordsStore, RetryPolicy

SLOT = 0.03
LEASE = 1.0
PHASE2 = 3.0
PHASE3 = 4.0


def wait_until(moment: float) -> None:
    delay = moment - time.time()
    if delay > 0:
        time.sleep(delay)


def main(argv: list[str]) -> int:
    owner, prefix, count, conn_ids = argv[0], argv[1], int(argv[2]), argv[3:]
    stores = {c: RecordsStore.from_conn_id(c, retry=RetryPolicy(attempts=5)) for c in conn_ids}
    for store in stores.values():
        store.lock_holder("warm-up")
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    names = [f"{prefix}-{i}" for i in range(count)]
    results: dict[str, dict[str, dict[str, bool]]] = {
        c: {"1": {}, "2": {}, "3": {}} for c in stores
    }
    for i, name in enumerate(names):
        wait_until(start + i * SLOT)
        for conn_id, store in stores.items():
            results[conn_id]["1"][name] = store.acquire_lock(name, owner, ttl=LEASE)
    wait_until(start + PHASE2)
    for conn_id, store in stores.items():
        for name, won in results[conn_id]["1"].items():
            if not won:
                results[conn_id]["2"][name] = store.acquire_lock(name, owner, ttl=60)
    wait_until(start + PHASE3)
    for conn_id, store in stores.items():
        for name, won in results[conn_id]["1"].items():
            if won:
                results[conn_id]["3"][name] = store.acquire_lock(name, owner, ttl=60)
        store.close()
    print(json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
