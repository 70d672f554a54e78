"""The service as a process: it starts from the environment and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

SERVICE_ROOT = Path(__file__).resolve().parent.parent


def test_runs_until_sigterm() -> None:
    env = {**os.environ, "PORT": "0", "SITE_NAME": "site-x", "ENVIRONMENT": "test"}
    process = subprocess.Popen(
        [sys.executable, "-m", "hello_api"],
        cwd=SERVICE_ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(15, process.kill)
    watchdog.start()
    try:
        port = None
        for line in process.stderr:
            found = re.search(r"listening host=\S+ port=(\d+)", line)
            if found:
                port = int(found.group(1))
                break
        assert port, "the service never said where it listens"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.read() == b"ok"
            assert response.headers["X-Served-By"] == "site-x"
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()
        assert process.wait(timeout=10) == 0
        assert "stopping signal=SIGTERM" in rest
        assert "stopped" in rest
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
