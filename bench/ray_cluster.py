"""A real Ray cluster on this machine: a head and a worker node, each its own ``ray start``.

Loopback only: the nodes take 127.0.0.2 and 127.0.0.3 (Ray replaces 127.0.0.1 with the
machine's routable address), every port is chosen free, no dashboard, no usage stats.
Each node gets more logical CPUs than the machine has cores (Ray only counts them; with
one CPU per node a Ray Data job waits forever for a read task's whole CPU). Workers run
this checkout's code (PYTHONPATH), checked by ``code_roots``.

Teardown kills exactly the processes of these two nodes, by process id: the ones whose
command line names this cluster's temporary directory and everything they started
(replicas, agents). ``ray stop`` is not used: it kills every Ray process of the machine,
other people's clusters included.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import PROJECT_ROOT, free_port

RAY = Path(sys.executable).with_name("ray")
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"
NODE_CPUS = 4
OBJECT_STORE_BYTES = 200 * 1024 * 1024
START_TIMEOUT_S = 120
WORKER_PORTS = 200  # per node: its worker processes' ports (one each)
WORKER_PORT_SPAN = (10_000, 32_000)  # below Linux's ephemeral ports (32768-60999)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _tree(roots: list[int]) -> list[int]:
    seen, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.append(pid)
            todo.extend(_children(pid))
    return seen


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Node:
    name: str
    ip: str
    temp_dir: Path
    log: Path
    resources: str
    roots: list[int] = field(default_factory=list)  # its daemons (raylet, agents, gcs...)
    # What else names this node's processes: the Ray client server's command line has
    # the GCS address but not the temp dir.
    more_markers: tuple[str, ...] = ()

    def processes(self) -> list[int]:
        """This node's daemons, found by its temp dir on their command line, and all
        their descendants (workers, replicas)."""
        markers = (str(self.temp_dir), *self.more_markers)
        mine = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and any(m in _cmdline(int(p.name)) for m in markers)
        ]
        self.roots = sorted(set(self.roots) | set(mine))
        return _tree(self.roots)

    def kill(self, sig: int = signal.SIGKILL) -> list[int]:
        pids = self.processes()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return pids


class LocalRayCluster:
    def __init__(self, extra_env: dict[str, str] | None = None, cpus: int = NODE_CPUS):
        # Short: Ray's unix socket paths live under it (108 bytes at most).
        self.root = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
        self._ports: set[int] = set()  # every port given to a node so far
        self.port = self._free_port()
        self.address = f"{HEAD_IP}:{self.port}"
        self.cpus = cpus
        self.env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHONPATH": os.pathsep.join(
                [str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            **(extra_env or {}),
        }
        self.head = Node(
            "head",
            HEAD_IP,
            self.root / "h",
            self.root / "head.log",
            '{"head": 1}',
            more_markers=(f"--address={self.address} ",),
        )
        self.worker = Node(
            "worker", WORKER_IP, self.root / "w", self.root / "worker.log", '{"worker": 1}'
        )

    def _start(self, node: Node, head: bool) -> None:
        ports = {
            "--node-manager-port": self._free_port(),
            "--object-manager-port": self._free_port(),
            "--metrics-export-port": self._free_port(),
            "--dashboard-agent-listen-port": self._free_port(),
            "--dashboard-agent-grpc-port": self._free_port(),
            "--runtime-env-agent-port": self._free_port(),
        }
        low = self._worker_ports()
        command = [
            str(RAY),
            "start",
            f"--node-ip-address={node.ip}",
            f"--num-cpus={self.cpus}",
            "--num-gpus=0",
            f"--resources={node.resources}",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            f"--temp-dir={node.temp_dir}",
            "--disable-usage-stats",
            f"--min-worker-port={low}",
            f"--max-worker-port={low + WORKER_PORTS}",
            *(f"{k}={v}" for k, v in ports.items()),
        ]
        if head:
            command += [
                "--head",
                f"--port={self.port}",
                "--include-dashboard=false",
                f"--ray-client-server-port={self._free_port()}",
            ]
        else:
            command.append(f"--address={self.address}")
        with node.log.open("ab") as log:
            done = subprocess.run(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                timeout=START_TIMEOUT_S, check=False,
            )  # fmt: skip
        node.processes()
        if done.returncode != 0:
            raise RuntimeError(f"ray start ({node.name}) failed:\n{self.logs()}")

    def _free_port(self) -> int:
        """A free port (from the kernel's ephemeral range), none given out before."""
        while (port := free_port()) in self._ports:
            pass
        self._ports.add(port)
        return port

    def _worker_ports(self) -> int:
        """The first of WORKER_PORTS free ports in a row, below the ephemeral range, so
        that no other port of the cluster falls inside (Ray refuses to start then) and
        no outgoing connection takes one."""
        rng = random.Random()
        while True:
            low = rng.randrange(*WORKER_PORT_SPAN)
            span = range(low, low + WORKER_PORTS + 1)
            if not self._ports.intersection(span) and all(map(_bindable, span)):
                self._ports.update(span)
                return low

    def start(self) -> LocalRayCluster:
        try:
            self._start(self.head, head=True)
            self._start(self.worker, head=False)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill both nodes' processes (SIGTERM, then SIGKILL for what is left)."""
        nodes = (self.worker, self.head)
        for node in nodes:
            node.kill(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for n in nodes for p in n.processes()):
            time.sleep(0.2)
        for node in nodes:
            node.kill(signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def code_roots(self) -> dict[str, str]:
        """Each node's IP and where its workers import ``service`` from (this checkout's
        copy, not the one the venv's editable install points at). Needs ``ray.init``."""
        import ray

        @ray.remote(num_cpus=0)
        def where() -> tuple[str, str]:
            import service

            return ray.util.get_node_ip_address(), str(Path(service.__file__).parent.parent)

        on = [where.options(resources={n: 0.001}).remote() for n in ("head", "worker")]
        return dict(ray.get(on, timeout=120))

    def leftovers(self) -> list[int]:
        return [p for n in (self.head, self.worker) for p in n.processes() if _alive(p)]

    def logs(self, tail: int = 4000) -> str:
        text = ""
        for node in (self.head, self.worker):
            if node.log.exists():
                text += f"--- {node.name} ---\n{node.log.read_text(errors='replace')[-tail:]}\n"
        return text

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
