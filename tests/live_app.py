"""Starting the real app on loopback, for the browser, load and training-wait tests and the benchmarks.

A module of its own (not conftest.py): tests/pages has a conftest too, and ``from conftest import``
would pick whichever was imported last.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(env_extra: dict | None = None, timeout: float = 120, script=None):
    """Start the real app (or another Streamlit ``script``) on a free loopback port.

    Returns (process, url) once /_stcore/health answers ok.
    """
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(script or ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the app exited: " + proc.stderr.read().decode()[-2000:])
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"the app did not become healthy within {timeout:.0f} s")


def stop_app(proc) -> None:
    """Stop an app started by :func:`start_app`: terminate, then kill if it does not exit in 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired or an already-reaped process
        proc.kill()
        proc.wait(timeout=10)
