"""Without a cluster: the shipped serve.yaml is a valid Serve config whose application
builds, ``sentiment-serve --ray`` passes settings to the replicas as ``sentiment-serve``
reads them, and the proxy middleware turns a lost replica's silence into a 503."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from service.ray_serve import deploy, proxy


def test_serve_yaml_is_a_valid_serve_config_whose_app_builds():
    pytest.importorskip("ray", reason="the 'ray' extra is not installed")
    from ray.serve.schema import ServeDeploySchema

    from service.ray_serve.app import DEPLOYMENT, build

    config = deploy.load_config()
    schema = ServeDeploySchema.model_validate(config)  # what `serve run/deploy` checks
    (app,) = schema.applications
    (deployment,) = app.deployments
    assert deployment.name == DEPLOYMENT
    assert app.import_path == "service.ray_serve.app:build"
    built = build(app.args)
    assert built._bound_deployment.name == DEPLOYMENT
    options = deploy.application_options(config, {}, {})["deployment"]
    limits = built._bound_deployment.options(**options)._deployment_config
    assert limits.max_ongoing_requests == 64 and limits.max_queued_requests == 256
    assert limits.autoscaling_config.max_replicas >= limits.autoscaling_config.min_replicas


def test_replicas_get_the_settings_sentiment_serve_would_read():
    config = deploy.load_config()
    environ = {"SENTIMENT_MODELS_ROOT": "/models", "SENTIMENT_LOG_LEVEL": "info", "HOME": "/x"}
    flags = {"model_dir": "/models/a/1", "host": "0.0.0.0", "port": 9000, "workers": 4}
    options = deploy.application_options(config, flags, environ)
    env = options["deployment"]["ray_actor_options"]["runtime_env"]["env_vars"]
    assert env["SENTIMENT_MODELS_ROOT"] == "/models"
    assert env["SENTIMENT_MODEL_DIR"] == "/models/a/1"  # a flag, as for sentiment-serve
    assert env["SENTIMENT_LOG_JSON"] == "true"  # serve.yaml's own
    assert "HOME" not in env
    # The proxy's address and uvicorn's worker count mean nothing to a replica.
    assert not {"SENTIMENT_HOST", "SENTIMENT_PORT", "SENTIMENT_WORKERS"} & set(env)
    assert deploy.http_options(config, flags) == {
        **config["http_options"],
        "host": "0.0.0.0",
        "port": 9000,
    }
    assert deploy.proxy_environment("HeadOnly")[proxy.CALLBACK_ENV] == proxy.CALLBACK


def _proxy_app(handler) -> TestClient:
    app = Starlette(routes=[Route("/predict", handler, methods=["POST"])])
    app.add_middleware(proxy.UnansweredAs503)
    return TestClient(app, raise_server_exceptions=False)


def test_a_replica_that_never_answers_becomes_a_503_with_retry_after():
    class Silent:  # what Serve's proxy app does when the replica dies mid-request
        async def __call__(self, scope, receive, send) -> None:
            return None

    app = proxy.UnansweredAs503(Silent())
    client = TestClient(app)
    answer = client.post("/predict", json={"text": "x"}, headers={"X-Request-ID": "abc"})
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == str(proxy.RETRY_AFTER_S)
    assert answer.headers["x-request-id"] == "abc"
    assert answer.json()["error"]["code"] == "unavailable"


def test_serve_503s_get_retry_after_and_one_request_id():
    def overloaded(request) -> Response:
        headers = [("x-request-id", "abc"), ("x-request-id", "abc")]
        response = Response("busy", status_code=503)
        response.raw_headers.extend((k.encode(), v.encode()) for k, v in headers)
        return response

    answer = _proxy_app(overloaded).post("/predict")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == str(proxy.RETRY_AFTER_S)
    assert answer.headers.get_list("x-request-id") == ["abc"]
    fine = _proxy_app(lambda request: Response("ok")).post("/predict")
    assert fine.status_code == 200 and "retry-after" not in fine.headers
