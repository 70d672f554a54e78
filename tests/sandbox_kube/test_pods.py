"""Pods run for real: logs, exit codes, memory limits, env, volumes, images and deletion."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import tarfile
from pathlib import Path

import kubernetes_asyncio
import pytest
from kubernetes import client

from sandbox.kube.testing import RunningSite
from tests.sandbox_kube.conftest import pod_body, python_command, wait_for, wait_phase

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

LINES = 10_000
# Every 1000th line carries bytes that are not UTF-8; the log must keep them as they are.
LOG_SCRIPT = f"""
import sys, time
out = sys.stdout.buffer
for i in range({LINES}):
    line = b"line %05d" % i
    if i % 1000 == 7:
        line += b" \\xff\\xfe\\x80 raw"
    out.write(line + b"\\n")
    if i % 2500 == 0:
        out.flush()
        time.sleep(0.05)
out.flush()
"""


def expected_log() -> bytes:
    buf = io.BytesIO()
    for i in range(LINES):
        line = b"line %05d" % i
        if i % 1000 == 7:
            line += b" \xff\xfe\x80 raw"
        buf.write(line + b"\n")
    return buf.getvalue()


def test_full_log_of_ten_thousand_lines_keeps_order_and_raw_bytes(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod_body("log-writer", python_command(LOG_SCRIPT)))
    wait_phase(core, "log-writer", ("Running", "Succeeded"))
    follow = core.read_namespaced_pod_log(
        "log-writer", "default", follow=True, _preload_content=False
    )
    streamed = b"".join(follow.stream(amt=None, decode_content=True))
    pod = wait_phase(core, "log-writer", ("Succeeded",))
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    whole = core.read_namespaced_pod_log("log-writer", "default", _preload_content=False).data
    assert whole == expected_log()
    assert streamed == expected_log()
    lines = whole.split(b"\n")[:-1]
    assert len(lines) == LINES and len(set(lines)) == LINES


LONG_LINE_SCRIPT = """
import sys
out = sys.stdout.buffer
# A line far past the kubelet's 16 KiB partial-entry size, written in small pieces.
for _ in range(200):
    out.write(b"x" * 1000)
    out.flush()
out.write(b"\\n" + b"short\\n")
"""


def test_long_line_comes_back_whole_with_one_timestamp(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod_body("long-line", python_command(LONG_LINE_SCRIPT)))
    wait_phase(core, "long-line", ("Succeeded",))
    stamped = core.read_namespaced_pod_log(
        "long-line", "default", timestamps=True, _preload_content=False
    ).data
    lines = stamped.split(b"\n")[:-1]
    assert len(lines) == 2, [line[:60] for line in lines]
    stamp, _, text = lines[0].partition(b" ")
    assert stamp.endswith(b"Z") and text == b"x" * 200_000
    assert lines[1].partition(b" ")[2] == b"short"


def test_log_options_timestamps_tail_and_since(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(
        "default", pod_body("log-options", python_command("print('a'); print('b'); print('c')"))
    )
    wait_phase(core, "log-options", ("Succeeded",))
    stamped = core.read_namespaced_pod_log(
        "log-options", "default", timestamps=True, _preload_content=False
    ).data
    first = stamped.split(b"\n")[0]
    stamp, _, text = first.partition(b" ")
    assert text == b"a" and stamp.endswith(b"Z") and b"T" in stamp
    tail = core.read_namespaced_pod_log(
        "log-options", "default", tail_lines=2, _preload_content=False
    ).data
    assert tail == b"b\nc\n"
    assert (
        core.read_namespaced_pod_log(
            "log-options", "default", since_seconds=60, _preload_content=False
        ).data
        == b"a\nb\nc\n"
    )
    future = "2999-01-01T00:00:00Z"
    raw = core.api_client.call_api(
        "/api/v1/namespaces/default/pods/log-options/log",
        "GET",
        query_params=[("sinceTime", future)],
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    assert raw.data == b""


def test_asyncio_client_reads_raw_log_and_watches_pod(site: RunningSite) -> None:
    async def scenario() -> tuple[bytes, list[str]]:
        configuration = kubernetes_asyncio.client.Configuration()
        await kubernetes_asyncio.config.load_kube_config(
            config_file=str(site.kubeconfig_path), client_configuration=configuration
        )
        async with kubernetes_asyncio.client.ApiClient(configuration) as api:
            v1 = kubernetes_asyncio.client.CoreV1Api(api)
            listed = await v1.list_namespaced_pod("default")
            code = "import sys; sys.stdout.buffer.write(b'ok \\xff\\n')"
            await v1.create_namespaced_pod("default", pod_body("async-pod", python_command(code)))
            phases: list[str] = []
            watcher = kubernetes_asyncio.watch.Watch()
            stream = watcher.stream(
                v1.list_namespaced_pod,
                "default",
                field_selector="metadata.name=async-pod",
                resource_version=listed.metadata.resource_version,
                timeout_seconds=20,
            )
            async for event in stream:
                phases.append(event["object"].status.phase)
                if event["object"].status.phase == "Succeeded":
                    watcher.stop()
            response = await v1.read_namespaced_pod_log(
                "async-pod", "default", _preload_content=False
            )
            return await response.read(), phases

    data, phases = asyncio.run(scenario())
    assert data == b"ok \xff\n"
    assert phases[0] == "Pending" and phases[-1] == "Succeeded" and "Running" in phases


def test_exit_code_and_reason_reach_container_status(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(
        "default", pod_body("fails", python_command("import sys; print('bye'); sys.exit(3)"))
    )
    pod = wait_phase(core, "fails", ("Failed",))
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert ready.status == "False" and ready.reason == "PodCompleted"


def test_memory_limit_kills_with_oomkilled_137(core: client.CoreV1Api) -> None:
    hog = "import time\nblocks = []\nwhile True:\n    blocks.append(bytearray(20 * 1024 * 1024))\n    time.sleep(0.02)\n"
    body = pod_body(
        "memory-hog", python_command(hog), container={"resources": {"limits": {"memory": "100Mi"}}}
    )
    core.create_namespaced_pod("default", body)
    pod = wait_phase(core, "memory-hog", ("Failed",), timeout=30)
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137)
    assert pod.status.qos_class == "Burstable"


def test_init_containers_env_sources_and_empty_dir(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "settings"}, "data": {"greeting": "hello"}}
    )
    core.create_namespaced_secret(
        "default", {"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}
    )
    init = {
        "name": "prepare",
        "image": "busybox",
        "command": ["sh", "-c", "echo prepared > /work/marker"],
        "volumeMounts": [{"name": "work", "mountPath": "/work"}],
    }
    main_code = (
        "import os; print(open('/work/marker').read().strip(), os.environ['GREETING'], os.environ['PASSWORD'],"
        " os.environ['POD_NAME'], os.environ['POD_NAMESPACE'], os.environ['SAID'], os.getcwd().endswith('/src'))"
    )
    container = {
        "workingDir": "/src",
        "volumeMounts": [{"name": "work", "mountPath": "/work"}],
        "env": [
            {
                "name": "GREETING",
                "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}},
            },
            {
                "name": "PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}},
            },
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
            {"name": "SAID", "value": "$(GREETING)-again"},
        ],
    }
    body = pod_body(
        "with-init",
        python_command(main_code),
        container=container,
        initContainers=[init],
        volumes=[{"name": "work", "emptyDir": {}}],
    )
    core.create_namespaced_pod("default", body)
    pod = wait_phase(core, "with-init", ("Succeeded", "Failed"))
    log = core.read_namespaced_pod_log("with-init", "default", _preload_content=False).data.decode()
    assert pod.status.phase == "Succeeded", log
    assert log.strip() == "prepared hello s3cret with-init default hello-again True"
    assert pod.status.init_container_statuses[0].state.terminated.exit_code == 0
    assert (
        core.read_namespaced_pod_log(
            "with-init", "default", container="prepare", _preload_content=False
        ).data
        == b""
    )


def test_missing_config_map_waits_with_create_container_config_error(
    core: client.CoreV1Api,
) -> None:
    container = {
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]
    }
    core.create_namespaced_pod(
        "default", pod_body("needs-config", python_command("print(1)"), container=container)
    )

    def waiting() -> object:
        statuses = (
            core.read_namespaced_pod("needs-config", "default").status.container_statuses or []
        )
        return (
            statuses
            and statuses[0].state.waiting
            and statuses[0].state.waiting.reason == "CreateContainerConfigError"
        )

    wait_for(waiting)
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "absent"}, "data": {"k": "v"}}
    )
    assert wait_phase(core, "needs-config", ("Succeeded",), timeout=20)


def test_delete_kills_the_process_group(core: client.CoreV1Api, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = f"import os, time, subprocess; child = subprocess.Popen(['sleep', '300']); open({str(pid_file)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}'); time.sleep(300)"
    core.create_namespaced_pod("default", pod_body("sleeper", python_command(code)))
    wait_for(lambda: pid_file.exists() and pid_file.read_text())
    pids = [int(p) for p in pid_file.read_text().split()]
    deleted = core.delete_namespaced_pod("sleeper", "default", grace_period_seconds=1)
    assert deleted.metadata.deletion_timestamp is not None

    def gone() -> bool:
        try:
            core.read_namespaced_pod("sleeper", "default")
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=10)
    for pid in pids:
        wait_for(lambda pid=pid: not _alive(pid), timeout=5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(") ")[1][0] != "Z"


def test_crash_looping_container_restarts_with_back_off(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(
        "default",
        pod_body(
            "crasher", python_command("print('boom'); raise SystemExit(2)"), restart_policy="Always"
        ),
    )

    def restarted() -> object:
        status = core.read_namespaced_pod("crasher", "default").status
        statuses = status.container_statuses or []
        return (
            statuses
            and statuses[0].restart_count >= 1
            and statuses[0].last_state.terminated
            and status
        )

    status = wait_for(restarted, timeout=20)
    container = status.container_statuses[0]
    assert container.last_state.terminated.exit_code == 2
    assert status.phase == "Running"
    wait_for(
        lambda: (
            core.read_namespaced_pod("crasher", "default")
            .status.container_statuses[0]
            .state.waiting
            or client.V1ContainerStateWaiting()
        ).reason
        == "CrashLoopBackOff",
        timeout=20,
    )
    assert (
        core.read_namespaced_pod_log(
            "crasher", "default", previous=True, _preload_content=False
        ).data
        == b"boom\n"
    )
    core.delete_namespaced_pod("crasher", "default", grace_period_seconds=0)


def _write_image(images_dir: Path) -> str:
    digest = "ab" * 32
    with tarfile.open(images_dir / f"sha256-{digest}.tar.gz", "w:gz") as tar:
        payload = b"print('from the image')\n"
        info = tarfile.TarInfo("app/main.py")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return digest


def test_digest_image_is_unpacked_and_missing_one_fails_to_pull(
    core: client.CoreV1Api, images_dir: Path
) -> None:
    digest = _write_image(images_dir)
    image = f"registry.local:5000/hello@sha256:{digest}"
    core.create_namespaced_pod(
        "default",
        pod_body("from-image", python_command("exec(open('app/main.py').read())"), image=image),
    )
    pod = wait_phase(core, "from-image", ("Succeeded", "Failed"))
    assert pod.status.phase == "Succeeded"
    assert (
        core.read_namespaced_pod_log("from-image", "default", _preload_content=False).data
        == b"from the image\n"
    )
    assert pod.status.container_statuses[0].image_id.endswith(digest)

    missing = "registry.local:5000/hello@sha256:" + "cd" * 32
    core.create_namespaced_pod(
        "default", pod_body("no-image", python_command("print(1)"), image=missing)
    )

    def pull_failed() -> object:
        statuses = core.read_namespaced_pod("no-image", "default").status.container_statuses or []
        waiting = statuses and statuses[0].state.waiting
        return waiting and waiting.reason in ("ErrImagePull", "ImagePullBackOff") and waiting

    waiting = wait_for(pull_failed)
    assert "not found" in waiting.message
    events = core.list_namespaced_event(
        "default", field_selector="involvedObject.name=no-image,reason=Failed"
    ).items
    assert any(e.message.startswith(f'Failed to pull image "{missing}"') for e in events)
    assert core.read_namespaced_pod("no-image", "default").status.phase == "Pending"


def test_unschedulable_fault_keeps_pod_pending_with_event(core: client.CoreV1Api) -> None:
    body = pod_body(
        "nowhere", python_command("print(1)"), annotations={"sandbox.sre.io/fault": "unschedulable"}
    )
    core.create_namespaced_pod("default", body)

    def scheduled_condition() -> object:
        conditions = core.read_namespaced_pod("nowhere", "default").status.conditions or []
        return next((c for c in conditions if c.type == "PodScheduled"), None)

    condition = wait_for(scheduled_condition)
    assert (condition.status, condition.reason) == ("False", "Unschedulable")
    events = wait_for(
        lambda: core.list_namespaced_event(
            "default", field_selector="involvedObject.name=nowhere"
        ).items
    )
    assert events[0].reason == "FailedScheduling" and events[0].type == "Warning"


def test_crashloop_fault_kills_right_after_start(core: client.CoreV1Api) -> None:
    body = pod_body(
        "doomed",
        python_command("import time; time.sleep(30)"),
        annotations={"sandbox.sre.io/fault": "crashloop"},
    )
    core.create_namespaced_pod("default", body)
    pod = wait_phase(core, "doomed", ("Failed",))
    assert pod.status.container_statuses[0].state.terminated.exit_code == 1


def test_pod_processes_are_killed_when_the_site_stops(images_dir: Path, tmp_path: Path) -> None:
    from kubernetes import config

    from sandbox.kube.testing import run_site

    pid_file = tmp_path / "pid"
    with run_site("site-b", images_dir=images_dir) as other:
        api = config.new_client_from_config(config_file=str(other.kubeconfig_path))
        code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
        client.CoreV1Api(api).create_namespaced_pod(
            "default", pod_body("lingering", python_command(code))
        )
        wait_for(lambda: pid_file.exists() and pid_file.read_text())
        api.close()
    pid = int(pid_file.read_text())
    wait_for(lambda: not _alive(pid), timeout=5)
    assert signal.SIGKILL


def test_startup_gates_liveness_which_restarts_the_container(core: client.CoreV1Api) -> None:
    code = (
        "import os, time\n"
        "time.sleep(0.3)\n"
        "open('started', 'w').close()\n"
        "time.sleep(0.7)\n"
        "open('dead', 'w').close()\n"
        "time.sleep(30)\n"
    )
    container = {
        "startupProbe": {
            "exec": {"command": ["sh", "-c", "test -f started"]},
            "periodSeconds": 1,
            "failureThreshold": 50,
        },
        "livenessProbe": {
            "exec": {"command": ["sh", "-c", "test ! -f dead"]},
            "periodSeconds": 1,
            "failureThreshold": 2,
        },
    }
    container["env"] = [
        {"name": "CODE", "value": code},
        {"name": "PYTHON", "value": python_command("")[0]},
    ]
    command = ["sh", "-c", 'rm -f started dead; exec "$PYTHON" -c "$CODE"']
    body = pod_body("probed", command, restart_policy="Always", container=container)
    core.create_namespaced_pod("default", body)

    def started() -> object:
        statuses = core.read_namespaced_pod("probed", "default").status.container_statuses or []
        return statuses and statuses[0].started and statuses[0].ready

    wait_for(started, timeout=15)

    def restarted() -> object:
        statuses = core.read_namespaced_pod("probed", "default").status.container_statuses or []
        return statuses and statuses[0].restart_count >= 1

    wait_for(restarted, timeout=20)
    reasons = {
        (e.reason, e.message.split(":")[0])
        for e in core.list_namespaced_event(
            "default", field_selector="involvedObject.name=probed"
        ).items
    }
    assert ("Unhealthy", "Liveness probe failed") in reasons
    assert ("Killing", "Container base failed liveness probe, will be restarted") in reasons
    core.delete_namespaced_pod("probed", "default", grace_period_seconds=0)


def test_active_deadline_fails_the_pod(core: client.CoreV1Api) -> None:
    body = pod_body(
        "overdue", python_command("import time; time.sleep(60)"), activeDeadlineSeconds=1
    )
    core.create_namespaced_pod("default", body)
    pod = wait_phase(core, "overdue", ("Failed",), timeout=15)
    assert (pod.status.reason, pod.status.message) == (
        "DeadlineExceeded",
        "Pod was active on the node longer than the specified deadline",
    )
    assert pod.status.container_statuses[0].state.terminated is not None
