"""Request and response bodies, named by role."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

_EXAMPLE_TEXT = "A wonderful film: sharp writing, superb acting, and an ending I loved."


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
    texts: list[StrictStr] | None = Field(None, description="Several texts, answered in order")

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
