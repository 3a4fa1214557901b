"""Request and response bodies, named by role."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

_EXAMPLE_TEXT = "A wonderful film: sharp writing, superb acting, and an ending I loved."
# Beyond this many keys a body is refused with one error instead of one per unknown key:
# pydantic would build (and FastAPI copy) an error for each of 300,000 keys in a 4 MB body,
# holding the event loop for seconds.
_MAX_KEYS = 8


def _refuse_many_keys(model: type[BaseModel], data: Any) -> Any:
    if isinstance(data, dict) and len(data) > _MAX_KEYS:
        allowed = ", ".join(repr(k) for k in model.model_fields)
        raise ValueError(f"{len(data)} fields in the body; the allowed fields are {allowed}")
    return data


class TextsRequest(BaseModel):
    """Exactly one of ``text`` (one string) or ``texts`` (a list of strings)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": _EXAMPLE_TEXT},
                {"texts": [_EXAMPLE_TEXT, "Dull, predictable and far too long."]},
            ]
        },
    )

    text: StrictStr | None = Field(None, description="One text to score")
    # fail_fast: a list of a million numbers is one error (the first), not a million.
    texts: Annotated[list[StrictStr], Field(fail_fast=True)] | None = Field(
        None, description="Several texts, answered in order"
    )

    @model_validator(mode="before")
    @classmethod
    def few_keys(cls, data: Any) -> Any:
        return _refuse_many_keys(cls, data)

    @model_validator(mode="after")
    def exactly_one(self) -> TextsRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' (a string) or 'texts' (a list of strings)")
        return self

    def as_list(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or [])

    def field_name(self, index: int) -> str:
        return "text" if self.text is not None else f"texts[{index}]"


class PredictRequest(TextsRequest):
    pass


class TokenizeRequest(TextsRequest):
    pass


class ModelRef(BaseModel):
    name: str
    version: str


class Probabilities(BaseModel):
    negative: float
    positive: float


class Prediction(BaseModel):
    label: Literal["negative", "positive"]
    score: float = Field(description="P(positive)")
    probabilities: Probabilities
    tokens: int = Field(description="number of token ids the model saw")
    truncated: bool
    unknown_tokens: int


class PredictResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": {"name": "sentiment-lstm", "version": "20261122-030000"},
                    "predictions": [
                        {
                            "label": "positive",
                            "score": 0.97,
                            "probabilities": {"negative": 0.03, "positive": 0.97},
                            "tokens": 16,
                            "truncated": False,
                            "unknown_tokens": 0,
                        }
                    ],
                }
            ]
        }
    )
    model: ModelRef
    predictions: list[Prediction]


class TokenizeResult(BaseModel):
    ids: list[int] = Field(description="exactly the ids the model sees, before padding")
    tokens: list[str]
    length: int
    truncated: bool
    unknown_tokens: int


class TokenizeResponse(BaseModel):
    model: ModelRef
    results: list[TokenizeResult]


class ErrorDetail(BaseModel):
    field: str | None = None
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = []


class ErrorResponse(BaseModel):
    error: ErrorBody
    request_id: str | None = None


class HealthResponse(BaseModel):
    status: Literal["ok", "not_ready"]
    reason: str | None = None
    model: ModelRef | None = None


class ModelSummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    version: str
    variant: str
    labels: list[str]
    threshold: float
    max_length: int
    truncation: str
    metrics: dict
    files: dict[str, str]


class ActivateModelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: StrictStr | None = Field(None, description="a version directory under the models root")
    path: StrictStr | None = Field(None, description="or an absolute bundle directory")

    @model_validator(mode="before")
    @classmethod
    def few_keys(cls, data: Any) -> Any:
        return _refuse_many_keys(cls, data)


def json_media_type(content_type: str) -> bool:
    """application/json or application/*+json: the types FastAPI parses as JSON."""
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )
