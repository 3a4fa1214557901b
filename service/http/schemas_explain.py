"""Bodies of ``POST /explain`` (word-level attributions; see service/explain/)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from service.http.examples import EXPLAIN_EXAMPLE
from service.http.schemas import ModelRef, Prediction, TextStr, _refuse_many_keys

_EXAMPLE_TEXT = "The food was excellent but the service was terrible."


class ExplainRequest(BaseModel):
    # For error messages: what a body looks like, and which fields it takes.
    EXAMPLE: ClassVar[str] = '{"text": "..."}'
    FIELDS_HELP: ClassVar[str] = (
        "expected 'text' (one string) and optionally 'model' (a name from GET /models)"
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"text": _EXAMPLE_TEXT}]},
    )

    text: TextStr = Field(
        description="one text; at most SENTIMENT_EXPLAIN_MAX_TOKENS tokens (default 512)"
    )
    model: StrictStr | None = Field(
        None, description="A served model's name (GET /models); default: the default model"
    )

    @model_validator(mode="before")
    @classmethod
    def few_keys(cls, data: Any) -> Any:
        return _refuse_many_keys(cls, data)

    # The pipeline's text checks take a request with these two (``validated_texts``).
    def as_list(self) -> list[str]:
        return [self.text]

    def field_name(self, index: int) -> str:
        return "text"


class TokenWeight(BaseModel):
    text: str = Field(description="the token as sent: the input's [start:end]")
    start: int = Field(description="offset into the input text, in Unicode code points")
    end: int = Field(description="end offset (exclusive), in Unicode code points")
    token: str = Field(description="what the model reads: the normalised word, or [UNK]")
    weight: float = Field(
        description="P(target | text) - P(target | text without this token): positive "
        "pushes towards the predicted label, negative against it"
    )


class ExplainResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EXPLAIN_EXAMPLE]})
    model: ModelRef
    prediction: Prediction = Field(description="the model's answer on the whole text")
    target: str = Field(description="the label whose probability the weights measure")
    method: Literal["leave-one-out"] = Field(
        description="occlusion: each token deleted in turn, all variants in one batch"
    )
    tokens: list[TokenWeight] = Field(description="every token, in text order")
