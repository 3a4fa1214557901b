"""deploy/k8s renders with kustomize, and every object it makes is valid Kubernetes.

Validation is offline, against the OpenAPI schemas that the ``kubernetes-validate`` package
ships, in strict mode (an unknown or misspelt field is an error, as ``kubectl apply
--validate=strict`` would make it). Two versions are named: the oldest the manifests
support (1.30: the preStop hook's ``sleep`` action is on by default from there) and the
newest the package has schemas for.
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from tests.deploy.conftest import RENDERS
from tests.deploy.k8s import containers, one

OLDEST_SUPPORTED = "1.30"
NEWEST = "1.37"
VERSIONS = [OLDEST_SUPPORTED, NEWEST]


def validation_errors(doc: dict, version: str) -> list[str]:
    """Why ``doc`` is not a valid object of Kubernetes ``version`` (strict); [] if it is."""
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    try:
        used = kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        return [f"{name} against {exc.version}: {where}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        # (the package's command line only warns about these and exits 0)
        return [f"{name}: {exc.message}"]
    # The package falls back to an older schema set when it lacks the one asked for.
    return [] if used == version else [f"{name}: validated against {used}, not {version}"]


def test_every_kustomization_is_rendered():
    assert "base" in RENDERS
    assert any(r.startswith("overlays/") for r in RENDERS), RENDERS
    assert any(r.startswith("base+components/") for r in RENDERS), RENDERS


def test_base_makes_the_objects_the_service_needs(renders):
    kinds = sorted(d["kind"] for d in renders["base"])
    assert kinds == sorted(
        ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"]
    )
    assert one(renders["base"], "HorizontalPodAutoscaler")["apiVersion"] == "autoscaling/v2"


@pytest.mark.parametrize("version", VERSIONS)
def test_every_rendered_object_is_valid_in_strict_mode(docs, version):
    errors = [e for doc in docs for e in validation_errors(doc, version)]
    assert not errors, "\n".join(errors)


# -- the validator itself: it does catch what it is here to catch ------------------------------
def test_strict_mode_rejects_a_misspelt_field(renders):
    deployment = copy.deepcopy(one(renders["base"], "Deployment"))
    container = containers(deployment)[0]
    container["readinesProbe"] = container.pop("readinessProbe")
    assert kubernetes_validate.validate(deployment, NEWEST, strict=False) == NEWEST
    errors = validation_errors(deployment, NEWEST)
    assert len(errors) == 1 and "readinesProbe" in errors[0], errors


def test_a_wrong_type_is_rejected(renders):
    deployment = copy.deepcopy(one(renders["base"], "Deployment"))
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "45s"
    errors = validation_errors(deployment, NEWEST)
    assert len(errors) == 1 and "terminationGracePeriodSeconds" in errors[0], errors


def test_the_sleep_action_needs_1_30_and_the_exec_component_covers_older_clusters(renders):
    """Kubernetes 1.28's API has no preStop ``sleep`` (1.29 has it behind a feature gate,
    on by default from 1.30): the base is refused there, the prestop-exec component is not."""
    (base_error,) = validation_errors(one(renders["base"], "Deployment"), "1.28")
    assert "sleep" in base_error, base_error
    for doc in renders["base+components/prestop-exec"]:
        assert validation_errors(doc, "1.28") == []
