"""The nightly CI DAG: its schedule in the catalog's time zone, and a whole night end to end."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from include.catalog import DEFAULT_CATALOG_PATH, load_catalog
from tests.api.harness import DAGS, sync_dags

CI_STEPS = ("ci_build", "ci_test", "quality_scan")


def parse(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=DAGS / f"{dag_id}.py")
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def fire_times(dag, start: datetime, count: int) -> list[datetime]:
    """The next ``count`` run times of the DAG's timetable from ``start`` on."""
    from airflow.timetables.base import TimeRestriction

    restriction = TimeRestriction(earliest=start, latest=None, catchup=True)
    times, last = [], None
    for _ in range(count):
        info = dag.timetable.next_dagrun_info(
            last_automated_data_interval=last, restriction=restriction
        )
        times.append(info.run_after)
        last = info.data_interval
    return times


def catalog_in(tmp_path: Path, timezone: str) -> Path:
    data = yaml.safe_load(DEFAULT_CATALOG_PATH.read_text())
    data["timezone"] = timezone
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_nightly_runs_at_one_in_the_morning_shanghai_time() -> None:
    dag = parse("nightly_ci")
    assert load_catalog().timezone == "Asia/Shanghai"
    times = fire_times(dag, datetime(2026, 12, 1, tzinfo=UTC), 3)
    assert [t.astimezone(UTC).hour for t in times] == [17, 17, 17]
    local = [t.astimezone(ZoneInfo("Asia/Shanghai")) for t in times]
    assert [(t.day, t.hour, t.minute) for t in local] == [(2, 1, 0), (3, 1, 0), (4, 1, 0)]


@pytest.mark.parametrize(
    ("zone", "first_day"),
    [
        # Europe/Berlin: CET (+1) to CEST (+2) on 29 March 2026 at 02:00, back on 25 October.
        ("Europe/Berlin", datetime(2026, 3, 27)),
        ("Europe/Berlin", datetime(2026, 10, 23)),
        # America/New_York: EST (-5) to EDT (-4) on 8 March 2026, back on 1 November, when
        # 01:00-02:00 happens twice: the nightly run still fires once that day.
        ("America/New_York", datetime(2026, 3, 6)),
        ("America/New_York", datetime(2026, 10, 30)),
    ],
)
@pytest.mark.parametrize(("dag_id", "wall"), [("nightly_ci", (1, 0)), ("cleanup", (4, 30))])
def test_schedules_keep_their_local_time_across_daylight_saving_switches(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dag_id: str,
    wall: tuple[int, int],
    zone: str,
    first_day: datetime,
) -> None:
    monkeypatch.setenv("SRE_CATALOG_PATH", str(catalog_in(tmp_path, zone)))
    dag = parse(dag_id)
    tz = ZoneInfo(zone)
    expected = [
        (first_day + timedelta(days=n)).replace(hour=wall[0], minute=wall[1], tzinfo=tz)
        for n in range(5)
    ]
    times = fire_times(dag, expected[0] - timedelta(minutes=1), 5)
    local = [t.astimezone(tz) for t in times]
    assert [(t.date(), t.hour, t.minute) for t in local] == [
        (t.date(), t.hour, t.minute) for t in expected
    ]
    offsets = [t.utcoffset() for t in expected]
    assert len(set(offsets)) == 2, "the window must contain a daylight saving switch"
    gaps = {
        timedelta(seconds=later.timestamp() - earlier.timestamp())
        for earlier, later in zip(times, times[1:], strict=False)
    }
    assert gaps == {timedelta(hours=24), timedelta(hours=24) - (offsets[-1] - offsets[0])}


class ChildRuns:
    """Plays the CI DAGs: finishes each child run the nightly starts, failing chosen ones."""

    def __init__(self, since: datetime, failing: set[tuple[str, str]]) -> None:
        self.since = since
        self.failing = failing
        self.finished: list[tuple[str, str, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> ChildRuns:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from airflow.utils.state import DagRunState
        from sqlalchemy import select

        while not self._stop.is_set():
            with create_session() as session:
                query = select(DagRun).where(
                    DagRun.run_id.startswith("nightly__"),
                    DagRun.dag_id.in_(CI_STEPS),
                    DagRun.run_after >= self.since,
                )
                for run in session.scalars(query):
                    if run.state not in (DagRunState.SUCCESS, DagRunState.FAILED):
                        service = run.conf["service"]
                        failed = (run.dag_id, service) in self.failing
                        run.state = DagRunState.FAILED if failed else DagRunState.SUCCESS
                        self.finished.append((run.dag_id, run.run_id, dict(run.conf)))
            time.sleep(0.2)


def _delete_runs(keys: set[tuple[str, str]]) -> None:
    """Remove the DAG runs this test started, nothing else."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import and_, delete, or_

    if keys:
        with create_session() as session:
            mine = or_(*(and_(DagRun.dag_id == d, DagRun.run_id == r) for d, r in keys))
            session.execute(delete(DagRun).where(mine))


@pytest.mark.timeout(240)
def test_a_night_builds_tests_and_scans_every_service_and_isolates_a_failure() -> None:
    sync_dags()
    dag = parse("nightly_ci")
    for task in dag.task_group.children["service"].children.values():
        task.poke_interval = 1
        task.retries = 0
    services = {service.name: service for service in load_catalog()}
    broken = ("ci_build", "order-service")
    run = None
    children = ChildRuns(datetime.now(UTC) - timedelta(seconds=1), failing={broken})
    try:
        with children:
            run = dag.test()
        assert run.state == "failed"
        started_runs = {(d, conf["service"]): (r, conf) for d, r, conf in children.finished}
        for name, service in services.items():
            expected = ["ci_build"] if name == "order-service" else list(CI_STEPS)
            got = [d for d, _, conf in children.finished if conf["service"] == name]
            assert got == expected, (name, got)
            for dag_id in expected:
                run_id, conf = started_runs[(dag_id, name)]
                assert conf == {"service": name, "git_ref": service.default_branch}
                assert run_id.startswith("nightly__") and run_id.endswith(f"__{name}")
        states = {
            (ti.task_id, ti.map_index): ti.state
            for ti in run.get_task_instances()
            if ti.task_id.startswith("service.")
        }
        order = sorted(services).index("order-service")
        hello = sorted(services).index("hello-api")
        assert states[("service.ci_build", order)] == "failed"
        assert states[("service.ci_test", order)] == "upstream_failed"
        assert states[("service.quality_scan", hello)] == "success"
    finally:
        mine = {(d, r) for d, r, _ in children.finished}
        _delete_runs(mine | ({("nightly_ci", run.run_id)} if run is not None else set()))
