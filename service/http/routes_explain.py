"""``POST /explain``: word-level attributions (service/explain/attribution.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service import pipeline
from service.explain.attribution import explain_json
from service.http.json_body import StrictJsonRoute
from service.http.routes import _PREDICT_ERRORS, JSON_ONLY, _error
from service.http.schemas_explain import ExplainRequest, ExplainResponse

router = APIRouter(route_class=StrictJsonRoute)

_EXPLAIN_ERRORS = {
    **_PREDICT_ERRORS,
    422: _error(
        "Invalid input, or more tokens than /explain explains (SENTIMENT_EXPLAIN_MAX_TOKENS)"
    ),
}


@router.post(
    "/explain",
    response_model=ExplainResponse,
    dependencies=JSON_ONLY,
    responses=_EXPLAIN_ERRORS,
    tags=["inference"],
)
async def explain(body: ExplainRequest, request: Request) -> Response:
    """The prediction for one text, and how much each token moves the predicted label's
    probability: leave-one-out occlusion, every variant scored in one batch.

    Offsets are Unicode code points into `text`. A text of n tokens costs n + 1 model
    rows, so texts over `SENTIMENT_EXPLAIN_MAX_TOKENS` tokens are refused (422).
    """
    state = request.app.state
    text = pipeline.validated_texts(body, state.settings)[0]
    request.scope["state"]["texts"] = 1
    content = await explain_json(state, text, body.model, request.scope["state"])
    return Response(content, media_type="application/json")
