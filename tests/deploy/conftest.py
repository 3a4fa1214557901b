"""Fixtures for the Kubernetes manifest tests: every kustomization rendered once per session."""

from __future__ import annotations

import pytest

from service.settings import Settings
from tests.deploy.k8s import (
    K8S_DIR,
    Image,
    kustomizations,
    read_image,
    render,
    render_with_components,
)

BASE = K8S_DIR / "base"
# Every Kustomization under deploy/k8s, and the base with each Component on top of it.
RENDERS = [str(d.relative_to(K8S_DIR)) for d in kustomizations("Kustomization")] + [
    f"base+{c.relative_to(K8S_DIR)}" for c in kustomizations("Component")
]


@pytest.fixture(scope="session")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    home = tmp_path_factory.mktemp("kubectl-home")
    rendered = {}
    for name in RENDERS:
        if name.startswith("base+"):
            component = K8S_DIR / name.removeprefix("base+")
            workdir = tmp_path_factory.mktemp("with-component")
            rendered[name] = render_with_components(BASE, [component], workdir)
        else:
            rendered[name] = render(K8S_DIR / name, home)
    return rendered


@pytest.fixture(params=RENDERS)
def docs(request: pytest.FixtureRequest, renders: dict[str, list[dict]]) -> list[dict]:
    """The objects one kustomization renders (each test runs once per kustomization)."""
    return renders[request.param]


@pytest.fixture(scope="session")
def image() -> Image:
    return read_image()


@pytest.fixture(scope="session")
def settings_env_names() -> set[str]:
    """Every environment variable the service reads: SENTIMENT_ + a Settings field."""
    prefix = Settings.model_config["env_prefix"]
    assert Settings.model_config.get("case_sensitive") is not True
    aliased = [n for n, f in Settings.model_fields.items() if f.alias or f.validation_alias]
    assert not aliased, f"fields read under another name: {aliased}"
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}
