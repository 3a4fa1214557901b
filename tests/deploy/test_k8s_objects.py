"""The rendered objects agree with each other: selectors, targets, namespaces, claims, images."""

from __future__ import annotations

from tests.deploy.k8s import (
    compose_api_image,
    containers,
    objects,
    one,
    service_link_names,
)


def pod_labels(docs: list[dict]) -> dict:
    return one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels selectors here: {selector}"
    return selector["matchLabels"].items() <= labels.items()


def test_the_deployment_selects_its_own_pods(docs):
    deployment = one(docs, "Deployment")
    assert selects(deployment["spec"]["selector"], pod_labels(docs))
    for spread in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]:
        assert selects(spread["labelSelector"], pod_labels(docs))


def test_service_and_disruption_budget_select_the_pods(docs):
    labels = pod_labels(docs)
    assert one(docs, "Service")["spec"]["selector"].items() <= labels.items()
    assert selects(one(docs, "PodDisruptionBudget")["spec"]["selector"], labels)


def test_the_autoscaler_owns_the_replica_count(docs):
    deployment, hpa = one(docs, "Deployment"), one(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"],
        deployment["kind"],
        deployment["metadata"]["name"],
    )
    # A replica count in the Deployment would reset the autoscaler's on every apply.
    assert "replicas" not in deployment["spec"]
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert all("cpu" in c["resources"]["requests"] for c in containers(deployment))


def test_disruptions_and_rollouts_keep_pods_serving(docs):
    pdb = one(docs, "PodDisruptionBudget")["spec"]
    min_replicas = one(docs, "HorizontalPodAutoscaler")["spec"]["minReplicas"]
    assert "minAvailable" not in pdb
    assert 1 <= pdb["maxUnavailable"] < min_replicas  # drains proceed, one pod stays
    rolling = one(docs, "Deployment")["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0 and rolling["maxSurge"] not in (0, "0%")


def test_one_namespace_for_everything(docs):
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    declared = [d["metadata"]["name"] for d in objects(docs, "Namespace")]
    assert len(namespaces) == 1, namespaces
    assert declared in ([], list(namespaces)), (declared, namespaces)


def test_every_claim_the_pods_mount_is_rendered_with_them(docs):
    claims = {d["metadata"]["name"] for d in objects(docs, "PersistentVolumeClaim")}
    for volume in one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]:
        if "persistentVolumeClaim" in volume:
            assert volume["persistentVolumeClaim"]["claimName"] in claims, volume


def test_no_service_link_variable_can_reach_the_settings(docs, settings_env_names):
    """Docker-link variables would start with SENTIMENT_ for a Service named sentiment-*;
    one named "sentiment" would set SENTIMENT_PORT. The pods take none of them."""
    named_sentiment = {"metadata": {"name": "sentiment"}, "spec": {"ports": [{"port": 80}]}}
    assert "SENTIMENT_PORT" in service_link_names(named_sentiment) & settings_env_names
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["enableServiceLinks"] is False
    for service in objects(docs, "Service"):
        assert not service_link_names(service) & settings_env_names


def test_images(renders):
    """The base runs the image compose builds; an overlay names a registry and a version."""
    (base,) = containers(one(renders["base"], "Deployment"))
    assert base["image"] == compose_api_image()
    overlays = {k: v for k, v in renders.items() if k.startswith("overlays/")}
    assert overlays
    for name, docs in overlays.items():
        for container in containers(one(docs, "Deployment")):
            repository, _, tag = container["image"].rpartition(":")
            assert "/" in repository, f"{name}: {container['image']} names no registry"
            assert "@sha256:" in container["image"] or tag not in ("", "latest"), name
