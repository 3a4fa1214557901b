"""Two trivial Serve deployments for ``bench.ray``: what one extra Ray hop costs.

``Echo``: the proxy hands the request to a replica, which answers a fixed body.
``Forward`` → ``Inner``: the replica that gets the request passes its body through a
deployment handle to a second deployment, which answers: one hop more, as an ingress
routing requests to one deployment per model would add to every request.
"""

from __future__ import annotations

from ray import serve
from starlette.requests import Request
from starlette.responses import Response

ANSWER = b'{"ok": true}'


@serve.deployment(max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.5})
class Echo:
    async def __call__(self, request: Request) -> Response:
        await request.body()
        return Response(ANSWER, media_type="application/json")


@serve.deployment(max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.5})
class Inner:
    async def score(self, body: bytes) -> bytes:
        return ANSWER


@serve.deployment(max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.5})
class Forward:
    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, request: Request) -> Response:
        answer = await self.inner.score.remote(await request.body())
        return Response(answer, media_type="application/json")


echo = Echo.bind()
forward = Forward.bind(Inner.bind())
