"""The Deployment agrees with the service it runs, read from the code, not restated here.

- the port: where ``sentiment-serve`` would listen, given the image's command and
  environment (docker/Dockerfile) and the pod's own (service/cli.py run for real, with
  its server (uvicorn.run or run_server) replaced by a recorder);
- the probes: the routes of ``create_app`` (readiness and startup on the route served by
  ``routes.ready``, liveness on ``routes.live``), and they answer 200 on the started app;
- every environment variable: a field of ``service.settings.Settings``, with a value it
  accepts;
- shutdown: terminationGracePeriodSeconds > the preStop pause + the service's own shutdown
  (lame duck, closing window, drain limit), and no lame duck after the preStop pause;
- the container: the image's uid and gid, writable HOME, a model bundle it can find;
- memory: sized from the peak RSS measured in bench/results/latest.json, two-models.json
  and swap-memory.json.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import tomllib
from pathlib import Path, PurePosixPath
from unittest import mock

from fastapi import FastAPI

import service.cli
import service.http.app
from sentiment_core.bundle import promoted_bundle, promoted_models
from service.http import graceful, routes
from service.settings import Settings
from tests.deploy.k8s import (
    ROOT,
    container_port,
    containers,
    literal_env,
    one,
    quantity,
    restricted_violations,
    volume_holding,
)
from tests.support.servers import make_settings, serve

PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def api_container(docs: list[dict]) -> tuple[dict, dict]:
    deployment = one(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, container


def sentiment_serve(container: dict, image) -> dict:
    """What the container's process would pass to uvicorn.run (host, port, drain limit...),
    with ``settings``: the service's Settings in that container."""
    argv = image.argv(container)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts.get(argv[0]) == "service.cli:main", f"the container runs {argv}"
    env = {**image.env, **literal_env(container)}
    calls = []
    with (
        mock.patch.dict(os.environ, {k: v for k, v in env.items() if k.startswith("SENTIMENT_")}),
        mock.patch.object(service.cli.uvicorn, "run", lambda app, **kw: calls.append((app, kw))),
        mock.patch.object(
            service.cli,
            "run_server",
            lambda app, lame_duck_s, **kw: calls.append((app, {**kw, "lame_duck_s": lame_duck_s})),
        ),
        mock.patch.object(service.http.app, "create_app", lambda settings: settings),
        # The paths are the container's, not this machine's: what they hold is checked
        # against the image's contents below (test_the_image_ships_the_models_the_base_serves).
        mock.patch.object(Settings, "missing_bundle_paths", lambda self: None),
    ):
        service.cli.main(argv[1:])
        ((app, server),) = calls
        settings = app if isinstance(app, Settings) else Settings()  # (several workers)
    return {**server, "settings": settings}


def shipped_from(image, path: Path) -> Path:
    """The repository directory that the Dockerfile COPYs to ``path`` (or above it)."""
    target = PurePosixPath(path)
    found = [
        ROOT / src / target.relative_to(dst)
        for src, dst in image.copies
        if (ROOT / src).exists() and target.is_relative_to(PurePosixPath(dst))
    ]
    assert len(found) == 1, f"{path}: copied into the image from {found}"
    assert found[0].is_dir(), found[0]
    return found[0]


@functools.cache
def service_app() -> FastAPI:
    return service.http.app.create_app(make_settings(), configure_logs=False)


def get_paths() -> set[str]:
    """The paths the app answers GET on (from its OpenAPI document)."""
    return {p for p, ops in service_app().openapi()["paths"].items() if "get" in ops}


def path_of(endpoint) -> str:
    """The path of the route that ``endpoint`` serves (routes are named after it)."""
    path = service_app().url_path_for(endpoint.__name__)
    assert path in get_paths(), path
    return path


def prestop_seconds(container: dict) -> float:
    """How long the preStop hook holds SIGTERM back: the kubelet's sleep action, or an exec
    of ``python -c "...time.sleep(N)..."``."""
    hook = container["lifecycle"]["preStop"]
    if "sleep" in hook:
        return hook["sleep"]["seconds"]
    command = hook["exec"]["command"]
    assert command[:2] == ["python", "-c"], command
    sleeps = [
        node.args[0].value
        for node in ast.walk(ast.parse(command[2]))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "time.sleep"
    ]
    assert len(sleeps) == 1, command
    return sleeps[0]


# -- port, probes, environment -------------------------------------------------------------
def test_the_container_port_is_where_sentiment_serve_listens(docs, image):
    _, container = api_container(docs)
    served = sentiment_serve(container, image)
    assert served["host"] == "0.0.0.0"  # reachable from the kubelet and the Service
    assert [p["containerPort"] for p in container["ports"]] == [served["port"]]


def test_probes_use_the_apps_health_routes_on_its_port(docs, image):
    _, container = api_container(docs)
    port = sentiment_serve(container, image)["port"]
    ready, live = path_of(routes.ready), path_of(routes.live)
    expected = {"startupProbe": ready, "readinessProbe": ready, "livenessProbe": live}
    for probe, path in expected.items():
        http = container[probe]["httpGet"]
        assert (http["path"], container_port(container, http["port"])) == (path, port), probe


def test_the_metrics_annotations_point_at_the_metrics_route(docs, image):
    deployment, container = api_container(docs)
    notes = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(notes["prometheus.io/port"]) == sentiment_serve(container, image)["port"]
    assert notes["prometheus.io/path"] in get_paths()


def test_the_service_targets_the_containers_port(docs):
    _, container = api_container(docs)
    for port in one(docs, "Service")["spec"]["ports"]:
        assert (
            container_port(container, port["targetPort"]) == container["ports"][0]["containerPort"]
        )


def test_every_env_name_is_a_setting_and_every_value_is_accepted(docs, image, settings_env_names):
    for container in containers(one(docs, "Deployment")):
        names = [e["name"] for e in container.get("env", [])]
        assert len(names) == len(set(names)), f"duplicate env names: {names}"
        unknown = set(names) - settings_env_names
        assert not unknown, f"{container['name']}: not service settings: {sorted(unknown)}"
        settings = sentiment_serve(container, image)["settings"]  # (raises if one is refused)
        for name, value in literal_env(container).items():
            # Each takes effect: no command-line flag of the image's command overrides it.
            field = name.removeprefix(Settings.model_config["env_prefix"]).lower()
            with mock.patch.dict(os.environ, {name: value}):
                alone = getattr(Settings(), field)
            assert getattr(settings, field) == alone, f"{name}={value} does not take effect"


async def test_the_probe_paths_answer_200_on_the_started_app(renders, image):
    """The base's settings, with the bundle the image ships (its COPY of models/)."""
    _, container = api_container(renders["base"])
    settings = sentiment_serve(container, image)["settings"]
    local_models = shipped_from(image, settings.models_root)
    paths = {container[p]["httpGet"]["path"] for p in PROBES} | {"/metrics"}
    fields = {**settings.model_dump(), "models_root": local_models, "log_json": False}
    async with serve(Settings(**fields)) as (_, client):
        for path in sorted(paths):
            response = await client.get(path)
            assert response.status_code == 200, (path, response.text)


# -- shutdown ------------------------------------------------------------------------------
def test_grace_period_outlasts_the_prestop_pause_and_the_whole_shutdown(docs, image):
    """preStop pause, then SIGTERM: lame duck, closing window, drain (service/http/graceful.py)."""
    deployment, container = api_container(docs)
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    served = sentiment_serve(container, image)
    drain = served["timeout_graceful_shutdown"]
    assert drain == served["settings"].drain_timeout_s + graceful.DRAIN_GRACE_S
    lame_duck = served.get("lame_duck_s", 0.0)  # (several workers: uvicorn's stop, none)
    steps = (prestop_seconds(container), lame_duck, graceful.CLOSE_WINDOW_S, drain)
    assert grace > sum(steps), (grace, steps)


def test_the_prestop_pause_is_the_lame_duck_on_kubernetes(docs, image):
    """The pod leaves the endpoints when its deletion starts, while preStop pauses: a lame
    duck after SIGTERM as well would only make every rollout step longer."""
    _, container = api_container(docs)
    assert sentiment_serve(container, image)["lame_duck_s"] == 0


def test_prestop_pauses_long_enough_for_load_balancers(docs):
    _, container = api_container(docs)
    assert 3 <= prestop_seconds(container) <= 30


# -- the container -------------------------------------------------------------------------
def test_runs_as_the_images_user_under_the_restricted_pod_security_standard(docs, image):
    deployment, container = api_container(docs)
    pod = deployment["spec"]["template"]["spec"]
    uid, gid = image.uid_gid
    assert uid != 0
    security = {**pod["securityContext"], **container.get("securityContext", {})}
    assert (security["runAsUser"], security.get("runAsGroup", gid)) == (uid, gid)
    assert security["readOnlyRootFilesystem"] is True
    assert restricted_violations(pod) == []


def test_home_is_writable_on_a_read_only_root(docs, image):
    deployment, container = api_container(docs)
    home = {**image.env, **literal_env(container)}["HOME"]
    held = volume_holding(home, deployment, container)
    assert held, f"HOME={home} is on the read-only root filesystem"
    mount, volume = held
    assert "emptyDir" in volume and not mount.get("readOnly"), (mount, volume)


def test_the_model_bundle_is_in_the_image_or_on_a_read_only_volume(docs, image):
    deployment, container = api_container(docs)
    settings = sentiment_serve(container, image)["settings"]
    where = str(settings.model_dir or settings.models_root)
    held = volume_holding(where, deployment, container)
    if held is None:
        assert image.holds(where), f"{where}: neither in the image nor on a volume"
    else:
        mount, volume = held
        assert mount.get("readOnly") is True and "emptyDir" not in volume, (mount, volume)


def test_the_image_ships_the_models_the_base_serves(renders, image):
    _, container = api_container(renders["base"])
    settings = sentiment_serve(container, image)["settings"]
    shipped = shipped_from(image, settings.models_root)
    names = settings.served_models() if settings.models else promoted_models(shipped)
    assert names, f"no promoted model under {shipped}"
    for name in names:
        assert (promoted_bundle(shipped, name) / "manifest.json").is_file(), name


# -- resources -----------------------------------------------------------------------------
RESULTS = ROOT / "bench" / "results"


def measured_peak_rss_bytes() -> float:
    """The service's peak RSS over every workload of the latest full benchmark and of the
    run with both committed models loaded, as the pod serves them."""
    peaks = []
    for name in ("latest.json", "two-models.json"):
        results = json.loads((RESULTS / name).read_text())["results"]
        found = [r["peak_rss_mb"] for r in results if r["system"].split("-")[0] == "c"]
        assert found, f"no service (c) results in bench/results/{name}"
        peaks += found
    return max(peaks) * 1e6


def measured_swap_peak_rss_bytes() -> float:
    """The peak RSS through hot swaps under load (``python -m bench.swap_memory``)."""
    return json.loads((RESULTS / "swap-memory.json").read_text())["peak_rss_mb_max"] * 1e6


def test_memory_is_sized_from_the_measured_peak(docs):
    _, container = api_container(docs)
    resources = container["resources"]
    peak = measured_peak_rss_bytes()
    swap_peak = measured_swap_peak_rss_bytes()
    request = quantity(resources["requests"]["memory"])
    limit = quantity(resources["limits"]["memory"])
    # request: the steady peak with 25% to spare; limit: a hot swap's moment with two
    # copies of a model, with 25% to spare
    assert request >= 1.25 * peak, (request, peak)
    assert limit >= max(request, 2 * peak, 1.25 * swap_peak), (limit, peak, swap_peak)
    cpu = {k: quantity(resources[k]["cpu"]) for k in ("requests", "limits")}
    assert 1 <= cpu["requests"] <= cpu["limits"], cpu
