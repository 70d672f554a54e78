"""Run one CI step synchronously in this process, as a worker would; killed by tests mid-step.

``python -m tests.ci.step_worker SERVICE STEP TRY_NUMBER`` with the CI world's environment.
"""

from __future__ import annotations

import sys

from tests.ci.fakes import FakeRecorder, FakeTaskInstance, context_for


def main() -> None:
    service, step, try_number = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from operators.ci.step import StepPodOperator

    ti = FakeTaskInstance(f"{step}.worker_restart", try_number=try_number)
    operator = StepPodOperator(
        task_id=ti.task_id,
        service=service,
        step=step,
        git_ref="main",
        deferrable=False,
        recorder_factory=FakeRecorder().factory(),
    )
    operator.run_step(context_for(ti))


if __name__ == "__main__":
    main()
