"""Request and response bodies, named by role."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    WithJsonSchema,
    model_validator,
)

from service.http.examples import PREDICT_EXAMPLE, SENTENCES_EXAMPLE

_EXAMPLE_TEXT = "A wonderful film: sharp writing, superb acting, and an ending I loved."
# Beyond this many keys a body is refused with one error instead of one per unknown key:
# pydantic would build (and FastAPI copy) an error for each of 300,000 keys in a 4 MB body,
# holding the event loop for seconds.
_MAX_KEYS = 8


# A text as the schema tells clients (a generated client, a fuzzer): not empty. The service
# checks blank texts itself, to name the field and index in its own words.
TextStr = Annotated[StrictStr, WithJsonSchema({"type": "string", "minLength": 1})]


def _refuse_many_keys(model: type[BaseModel], data: Any) -> Any:
    if isinstance(data, dict) and len(data) > _MAX_KEYS:
        allowed = ", ".join(repr(k) for k in model.model_fields)
        raise ValueError(f"{len(data)} fields in the body; the allowed fields are {allowed}")
    return data


class TextsRequest(BaseModel):
    """Exactly one of ``text`` (one string) or ``texts`` (a list of strings)."""

    # For error messages: what a body looks like, and which fields it takes.
    EXAMPLE: ClassVar[str] = '{"text": "..."}'
    FIELDS_HELP: ClassVar[str] = (
        "expected 'text' (a string) or 'texts' (a list of strings), and optionally "
        "'model' (a name from GET /models)"
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": _EXAMPLE_TEXT},
                {"texts": [_EXAMPLE_TEXT, "Dull, predictable and far too long."]},
            ]
        },
    )

    text: TextStr | None = Field(None, description="One text to score")
    # fail_fast: a list of a million numbers is one error (the first), not a million.
    texts: Annotated[list[TextStr], Field(fail_fast=True)] | None = Field(
        None, description="Several texts, answered in order"
    )
    model: StrictStr | None = Field(
        None, description="A served model's name (GET /models); default: the default model"
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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"text": _EXAMPLE_TEXT},
                {"texts": [_EXAMPLE_TEXT, "Dull, predictable and far too long."]},
                {"text": "The food was excellent. The service was terrible.", "sentences": True},
            ]
        },
    )

    sentences: StrictBool = Field(
        False, description="also score each sentence (offsets in code points; see 'sentences')"
    )


class TokenizeRequest(TextsRequest):
    text: TextStr | None = Field(None, description="One text to tokenize")
    texts: Annotated[list[TextStr], Field(fail_fast=True)] | None = Field(
        None, description="Several texts to tokenize, answered in order"
    )
    model: StrictStr | None = Field(
        None,
        description="Whose tokenizer: a served model's name (GET /models); default: the default model",
    )


class ModelRef(BaseModel):
    name: str
    version: str


class SentencePrediction(BaseModel):
    text: str = Field(description="the sentence exactly as sent: the input's [start:end]")
    start: int = Field(description="offset into the input text, in Unicode code points")
    end: int = Field(description="end offset (exclusive), in Unicode code points")
    label: str
    probabilities: dict[str, float]


class Prediction(BaseModel):
    label: str = Field(description="one of the model's labels (GET /models), by its decision rule")
    score: float = Field(
        description="binary models: P(positive), in [0, 1]; models with more labels: "
        "P(positive) - P(negative), in [-1, 1] (a polarity), or the label's probability "
        "when the labels are not sentiment polarities"
    )
    probabilities: dict[str, float] = Field(description="one per label, summing to 1")
    tokens: int = Field(description="number of token ids the model saw")
    truncated: bool
    unknown_tokens: int
    sentences: list[SentencePrediction] | None = Field(
        None, description='only with "sentences": true: each sentence, scored on its own'
    )
    mixed: bool | None = Field(
        None,
        description='only with "sentences": true: confident sentences disagree (one positive '
        "and one negative, each with probability >= 0.8)",
    )


class PredictResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [PREDICT_EXAMPLE, SENTENCES_EXAMPLE]})
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
    model: ModelRef | None = Field(None, description="the default model")
    models: list[ModelRef] | None = Field(None, description="every served model")


class ModelSummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    status: Literal["ready", "not_ready"] = "ready"
    reason: str | None = Field(None, description="why the model is not ready")
    version: str | None = None
    variant: str | None = None
    labels: list[str] = []
    decision: Literal["threshold", "argmax"] | None = None
    threshold: float | None = Field(None, description="binary models: positive when score >= it")
    max_length: int | None = None
    truncation: str | None = None
    metrics: dict = {}
    files: dict[str, str] = {}

    @classmethod
    def not_ready(cls, name: str, reason: str | None) -> ModelSummary:
        return cls(name=name, status="not_ready", reason=reason)


class ModelsResponse(BaseModel):
    default: str | None = Field(description="the model for requests that name none")
    models: list[ModelSummary]


class ActivateModelRequest(BaseModel):
    EXAMPLE: ClassVar[str] = '{"version": "..."}'
    FIELDS_HELP: ClassVar[str] = (
        "expected 'version' (a version directory) or 'path' (a bundle directory), and "
        "optionally 'model' and 'force'"
    )
    model_config = ConfigDict(extra="forbid")
    model: StrictStr | None = Field(None, description="which served model; default: the default")
    version: StrictStr | None = Field(None, description="a version directory of that model")
    path: StrictStr | None = Field(None, description="or an absolute bundle directory")
    force: StrictBool = Field(False, description="also a smoke run (trained with --limit)")

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
