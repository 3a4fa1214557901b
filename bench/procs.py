"""Server processes: start, wait for ready, account CPU and memory from /proc, stop.

CPU and memory are summed over the server process and its descendants, so a server that
forks workers (uvicorn ``--workers``) is accounted in full.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def code_fingerprint() -> str:
    """A short hash of the service's source: shows whether it changed during a session."""
    digest = hashlib.sha256()
    for package in ("sentiment_core", "service"):
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            name = str(path.relative_to(PROJECT_ROOT))
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def git_commit() -> str | None:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    return done.stdout.strip() or None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def taskset(cpus: str | None) -> list[str]:
    """A ``taskset -c CPUS`` prefix, or nothing when unpinned (or taskset is missing)."""
    if not cpus:
        return []
    if subprocess.run(["which", "taskset"], capture_output=True).returncode != 0:
        return []
    return ["taskset", "-c", cpus]


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo and len(tree) < 256:  # bounded: a server has a handful of processes
        p = todo.pop()
        tree.append(p)
        todo.extend(_children(p))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the given live processes (all their threads)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return total / _TICKS


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mb(pids: list[int]) -> float:
    """Sum of VmHWM (peak resident set) over the processes, in MB (10^6 bytes)."""
    return sum(_status_kb(p, "VmHWM") for p in pids) * 1024 / 1e6


def reset_peak_rss(pids: list[int]) -> bool:
    """Restart VmHWM counting (``clear_refs`` 5), so each workload gets its own peak."""
    ok = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


def busy_cpu_seconds() -> float:
    """Machine-wide busy CPU time (all cores) from /proc/stat, to see what else ran."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / _TICKS


@dataclass
class Server:
    """A benchmark server process on 127.0.0.1."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    ready_path: str = "/health/ready"
    cwd: Path = PROJECT_ROOT
    proc: subprocess.Popen | None = None
    ready_s: float | None = None
    startup_peak_rss_mb: float = 0.0
    _log: object = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120.0) -> None:
        """Start and poll readiness; ``ready_s`` counts from spawning the process."""
        self._log = self.log_path.open("wb")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole, by id
        )
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; {self.tail()}")
            if self._ready():
                self.ready_s = time.monotonic() - started
                self.startup_peak_rss_mb = peak_rss_mb(self.pids())
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f} s; {self.tail()}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + self.ready_path, timeout=1) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "(no log)"
        return "log tail:\n" + "\n".join(text)

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self._log:
            self._log.close()


def python() -> str:
    return sys.executable


def start_service(folder: Path, **settings: str) -> Server:
    """The service on a free port with its default models, no SENTIMENT_* setting from
    this environment, and ``settings`` (e.g. ``SENTIMENT_ADMIN_TOKEN="t"``); started."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMENT_")}
    env.update(PYTHONPATH=str(PROJECT_ROOT), SENTIMENT_LOG_LEVEL="warning", **settings)
    port = free_port()
    command = [python(), "-m", "service.cli", "--host", "127.0.0.1", "--port", str(port)]
    server = Server("service", command, env, port, folder / "server.log")
    server.start()
    return server
