"""The manifests deploy/k8s/README.md shows are valid, and the bundle-copy Job's script works."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sentiment_core.bundle import (
    PROMOTED_FILE,
    bundle_versions,
    promoted_bundle,
    promoted_models,
)
from tests.deploy.k8s import K8S_DIR, KUSTOMIZE_KINDS, ROOT, containers, objects
from tests.deploy.test_k8s_schemas import VERSIONS, validation_errors
from tests.support.servers import BINARY_MODEL


def readme_objects() -> list[dict]:
    """Kubernetes objects written out in deploy/k8s/README.md's ```yaml blocks."""
    text = (K8S_DIR / "README.md").read_text()
    blocks = re.findall(r"^```yaml\n(.*?)^```", text, flags=re.M | re.S)
    docs = [d for block in blocks for d in yaml.safe_load_all(block) if isinstance(d, dict)]
    return [d for d in docs if "apiVersion" in d and d.get("kind") not in KUSTOMIZE_KINDS]


@pytest.mark.parametrize("version", VERSIONS)
def test_objects_shown_in_the_readme_are_valid(version):
    shown = readme_objects()
    assert shown, "the README shows no complete object"
    errors = [e for doc in shown for e in validation_errors(doc, version)]
    assert not errors, "\n".join(errors)


def copy_job_script() -> str:
    (job,) = [j for j in objects(readme_objects(), "Job") if j["metadata"]["name"].endswith("copy")]
    (container,) = containers({"spec": job["spec"]})
    command = container["command"]
    assert command[:2] == ["python", "-c"], command
    return command[2]


def test_the_copy_job_fills_a_volume_the_service_reads(tmp_path):
    """Its script, run on the repository's models with the two paths moved to tmp_path:
    every version of every model lands complete (no .partial left), each PROMOTED file
    too, the service serves the same versions from there, and a second run changes
    nothing."""
    source, volume = ROOT / "models", tmp_path / "volume"
    script = copy_job_script()
    for inside, here in (("/app/models", source), ("/models", volume)):
        assert f'"{inside}"' in script, inside
        script = script.replace(f'"{inside}"', repr(str(here)))
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    names = promoted_models(source)
    assert names and promoted_models(volume) == names
    for name in names:
        expected = [p.name for p in bundle_versions(source, name)]
        assert [p.name for p in bundle_versions(volume, name)] == expected
        left = sorted(p.name for p in (volume / name).iterdir())
        assert left == sorted([*expected, PROMOTED_FILE])  # no .partial, no .tmp
        for version in expected:
            manifest = (volume / name / version / "manifest.json").read_bytes()
            assert manifest == (source / name / version / "manifest.json").read_bytes()
        served = promoted_bundle(volume, name)  # what a pod would serve
        assert served.name == promoted_bundle(source, name).name
    again = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert (again.returncode, again.stdout) == (0, ""), again.stderr


def test_a_half_copied_bundle_is_never_picked(tmp_path):
    """What the copy relies on: a <version>.partial directory is not a version."""
    name = BINARY_MODEL
    (newest,) = bundle_versions(ROOT / "models", name)[-1:]
    partial = tmp_path / name / "99999999-999999.partial"
    shutil.copytree(newest, partial)
    assert bundle_versions(tmp_path, name) == []
    partial.rename(partial.with_suffix(""))
    assert [p.name for p in bundle_versions(tmp_path, name)] == [Path(partial.stem).name]
