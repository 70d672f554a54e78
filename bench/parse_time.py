"""How long the DAG files take to parse, against trivial one-task DAG files.

    .venv/bin/python bench/parse_time.py [--repeat 3]

Each set is parsed in its own fresh interpreter the way Airflow's DAG processor parses files: the
airflow modules a file imports are loaded first (``[dag_processor] parsing_pre_import_modules``)
and the file is then parsed in a forked child of its own, timed with ``DagBag.process_file``; so
each file pays for the project modules it imports, as it does in production. Prints per-file and total times and the ratio ours/baseline, the
median of ``--repeat`` runs. Target: ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"

TRIVIAL_DAG = """
from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG(dag_id="baseline_{n}", schedule=None, start_date=pendulum.datetime(2026, 1, 1), tags=["bench"]):
    EmptyOperator(task_id="only_task")
"""

CHILD = r"""
import json, os, sys, time
from airflow.dag_processing.dagbag import DagBag
from airflow.utils.file import iter_airflow_imports
import importlib

# As Airflow's DAG processor does: the manager pre-imports the airflow modules a file names,
# then each file is parsed in a forked child of its own.
timings, errors = {}, {}
for path in sys.argv[2:]:
    for module in iter_airflow_imports(path):
        try:
            importlib.import_module(module)
        except Exception:
            pass
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        bag = DagBag(dag_folder=sys.argv[1], collect_dags=False)
        start = time.perf_counter()
        found = bag.process_file(path, only_if_updated=False)
        elapsed = time.perf_counter() - start
        error = str(bag.import_errors.get(path, ""))[-500:] if not found else ""
        os.write(write, json.dumps({"t": elapsed, "e": error}).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    result = json.loads(b"".join(chunks))
    timings[path] = result["t"]
    if result["e"]:
        errors[path] = result["e"]
print(json.dumps({"timings": timings, "errors": errors}))
"""


def dag_files(folder: Path) -> list[Path]:
    ignored = set()
    ignore_file = folder / ".airflowignore"
    if ignore_file.exists():
        for line in ignore_file.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                ignored.add(line.rstrip("/"))
    files = []
    for path in sorted(folder.rglob("*.py")):
        relative = path.relative_to(folder)
        if relative.parts[0] in ignored or path.name.startswith("_"):
            continue
        files.append(path)
    return files


def parse_in_fresh_process(folder: Path, files: list[Path]) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per set; the median is reported"
    )
    args = parser.parse_args()

    ours = dag_files(DAGS)
    if not ours:
        print("no DAG files in dags/")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        base_dir = Path(tmp)
        baseline = []
        for n in range(len(ours)):
            path = base_dir / f"baseline_{n}.py"
            path.write_text(TRIVIAL_DAG.format(n=n))
            baseline.append(path)

        ours_runs, base_runs = [], []
        for _ in range(args.repeat):
            ours_runs.append(parse_in_fresh_process(DAGS, ours))
            base_runs.append(parse_in_fresh_process(base_dir, baseline))

    errors = ours_runs[-1]["errors"]
    if errors:
        print("import errors:", json.dumps(errors, indent=2))
        return 1
    print(f"{'file':<40} {'median ms':>10}")
    ours_total = []
    for run in ours_runs:
        ours_total.append(sum(run["timings"].values()))
    for path in ours:
        samples = [run["timings"][str(path)] * 1000 for run in ours_runs]
        print(f"{path.relative_to(ROOT).as_posix():<40} {statistics.median(samples):>10.1f}")
    base_total = [sum(run["timings"].values()) for run in base_runs]
    ours_ms = statistics.median(ours_total) * 1000
    base_ms = statistics.median(base_total) * 1000
    print(f"{'total (ours, ' + str(len(ours)) + ' files)':<40} {ours_ms:>10.1f}")
    print(f"{'total (baseline, ' + str(len(baseline)) + ' trivial files)':<40} {base_ms:>10.1f}")
    ratio = ours_ms / base_ms if base_ms else float("inf")
    print(f"ratio ours/baseline: {ratio:.2f} (target <= 1.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
