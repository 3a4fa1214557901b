"""``sentiment-serve --ray ADDRESS``: run the service on an existing Ray cluster.

Reads the deployment's options from ``serve.yaml`` (or ``--ray-config``), the file that
``serve run`` takes as well; starts Serve (once per cluster: the proxy's host, port and
location are fixed from then on) and deploys or updates the application, then returns:
the application keeps running on the cluster. Running it again with other settings or
a newly promoted model version rolls the replicas over (``max_surge_percent``: the new
ones start and become ready before the old ones drain).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import yaml

from service.ray_serve.proxy import CALLBACK, CALLBACK_ENV
from service.settings import Settings

CONFIG = Path(__file__).with_name("serve.yaml")
_NOT_FOR_REPLICAS = {"host", "port", "workers"}  # the proxy's, or meaningless under Serve


def load_config(path: Path | None = None) -> dict[str, Any]:
    return yaml.safe_load((path or CONFIG).read_text())


def application_options(
    config: dict[str, Any], flags: dict[str, Any], environ: dict[str, str]
) -> dict[str, Any]:
    """What to deploy: the first application of ``config``, with the ``SENTIMENT_*``
    variables of ``environ`` and the command line's flags added to its replicas'
    environment (flags win, as for ``sentiment-serve``)."""
    app = config["applications"][0]
    (deployment,) = app["deployments"]
    options = {k: v for k, v in deployment.items() if k != "name"}
    env = dict(app.get("runtime_env", {}).get("env_vars", {}))
    env.update({k: v for k, v in environ.items() if k.startswith("SENTIMENT_")})
    for key, value in flags.items():
        if key not in _NOT_FOR_REPLICAS:
            env[f"SENTIMENT_{key.upper()}"] = str(value)
    actor = dict(options.get("ray_actor_options", {}))
    actor["runtime_env"] = {"env_vars": env}
    options["ray_actor_options"] = actor
    return {
        "name": app["name"],
        "route_prefix": app.get("route_prefix", "/"),
        "args": app.get("args", {}),
        "deployment": options,
    }


def http_options(config: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    options = dict(config.get("http_options", {}))
    options.update({k: flags[k] for k in ("host", "port") if k in flags})
    return options


def proxy_environment(location: str) -> dict[str, str]:
    """For the Serve controller, whose proxies inherit its environment."""
    env = {CALLBACK_ENV: CALLBACK}  # service.ray_serve.proxy: 503, not 500, for a lost replica
    if location == "HeadOnly":
        # The one proxy would otherwise send every request it can to the replicas on its
        # own node, and the other nodes' replicas would idle until those are full.
        env["RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING"] = "0"
    return env


def connect(address: str) -> None:
    """``ray.init`` on a cluster; on a loopback head, as that address (Ray would put the
    machine's routable address in place of 127.0.0.1)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    host = address.rsplit(":", 1)[0]
    extra = {"_node_ip_address": host} if _is_loopback(host) else {}
    if not ray.is_initialized():
        ray.init(address=address, logging_level="WARNING", log_to_driver=False, **extra)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def deploy(address: str, config: dict[str, Any], flags: dict[str, Any]) -> str:
    """Start Serve (if needed) and deploy; the URL the proxy serves the app at."""
    from ray import serve

    from service.ray_serve.app import SentimentService

    connect(address)
    proxy = http_options(config, flags)
    location = config.get("proxy_location", "HeadOnly")
    serve.start(
        proxy_location=location,
        http_options=proxy,
        controller_options={"runtime_env": {"env_vars": proxy_environment(location)}},
    )
    app = application_options(config, flags, dict(os.environ))
    serve.run(
        SentimentService.options(**app["deployment"]).bind(**app["args"]),
        name=app["name"],
        route_prefix=app["route_prefix"],
        blocking=False,
    )
    return f"http://{proxy.get('host', '127.0.0.1')}:{proxy.get('port', 8000)}"


def deploy_from_cli(
    address: str, settings: Settings, flags: dict[str, Any], config_path: Path | None
) -> None:
    del settings  # validated by the caller; replicas read the same SENTIMENT_* themselves
    url = deploy(address, load_config(config_path), flags)
    print(f"sentiment-serve: deployed to the Ray cluster at {address}; serving at {url}")
