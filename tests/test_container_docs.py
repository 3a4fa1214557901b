"""The container recipes in README.md and docker/README.md stay pasteable: each
`docker compose` command has its podman-compose equivalent beside it, and the versions
they promote exist. (docker/smoke-test.sh runs the recipes themselves.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sentiment_core.bundle import bundle_versions

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "docker" / "README.md"]


def shell_blocks(path: Path) -> list[list[str]]:
    return [
        block.splitlines()
        for block in re.findall(r"```bash\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
    ]


def containers_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("\n## Containers\n")[1].split("\n## ")[0]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_docker_compose_command_has_its_podman_compose_equivalent(path):
    missing = []
    for lines in shell_blocks(path):
        for i, line in enumerate(lines):
            command = line.split("#")[0].strip()
            if not command.startswith("docker compose"):
                continue
            podman = "podman-compose" + command.removeprefix("docker compose")
            beside = line + (lines[i + 1] if i + 1 < len(lines) else "")
            if podman not in beside:
                missing.append(command)
    assert not missing, f"{path.name}: no podman-compose equivalent beside {missing}"


def test_the_readme_exports_the_training_user():
    section = containers_section()
    assert "export SENTIMENT_UID=$(id -u) SENTIMENT_GID=$(id -g)" in section
    assert section.index("SENTIMENT_UID") < section.index("run --rm train")
    assert "restart api" in section and "--promote" in section


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_promoted_versions_in_the_docs_exist(path):
    # any version name (a2, n2, 20261122-032328), not only dated ones: "a2" went stale unseen
    named = re.findall(r"sentiment-promote (?:train )?([\w.-]+) ([\w.<>-]+)", path.read_text())
    for name, version in named:
        if "<" in version or version.isupper() or version.startswith("-") or name == "train":
            continue  # a placeholder (<version>, VERSION), a flag, or a listing (no version)
        versions = [p.name for p in bundle_versions(ROOT / "models", name)]
        assert version in versions, f"{path.name}: {name} {version}; committed: {versions}"
