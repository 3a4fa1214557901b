"""The Makefile: `make` alone lists every target with one line each; Ctrl-C ends `make serve`
quietly; the package metadata installs without setuptools' license banner."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import tomllib
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_make_alone_lists_every_target():
    done = subprocess.run(["make", "-s"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = re.findall(r"^  make (\S+) +\S", done.stdout, re.M)
    phony = (ROOT / "Makefile").read_text().split(".PHONY:")[1].split("\n")[0].split()
    assert sorted(listed) == sorted(phony)
    assert listed[:3] == ["help", "serve", "test"]  # the two set-up commands come first


def test_ctrl_c_stops_make_serve_quietly():
    """Ctrl-C (SIGINT to the terminal's process group) ends `make serve` without make's
    `make: *** [serve] ...` line, after the server's own shutdown lines."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def as_a_terminal_would() -> None:  # own process group; SIGINT not ignored
        os.setpgrp()
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen(
        ["make", "-s", "serve", f"SERVE_ARGS=--port {port}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=as_a_terminal_would,
    )
    try:
        deadline = time.monotonic() + 90
        while not _ready(port):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "make serve did not get ready"
            time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "make: ***" not in out, out
    assert "Finished server process" in out, out
    assert proc.returncode in (0, -signal.SIGINT), (proc.returncode, out)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_license_is_an_spdx_string():
    """The SPDX form: no setuptools deprecation banner for `project.license` on install."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert isinstance(project["license"], str)
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]
