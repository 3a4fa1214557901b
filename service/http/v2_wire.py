"""The Open Inference Protocol (KServe/Triton "v2") on the wire, for a text classifier.

One ``BYTES`` input of texts, named ``text``, shape ``[n]`` or ``[n, 1]``; two outputs:
``probabilities`` (``FP32``, ``[n, classes]``, in the order of the model's labels) and
``label`` (``BYTES``, ``[n]``). Each tensor travels in the JSON form or in the binary tensor
extension: the JSON header comes first (its length in the ``Inference-Header-Content-Length``
header), then each binary tensor's bytes in order; a ``BYTES`` element is a 4-byte
little-endian length and its bytes. Also the classification extension
(``parameters.classification: k`` on ``probabilities``: the top k as ``"value:index:label"``).

Pure functions (no HTTP framework here): ``service.http.v2`` calls them. Every problem
raises ``InvalidInput`` (400 on /v2) naming the field, never an uncaught error.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError
from pydantic_core import to_json

from service.errors import InvalidInput
from service.http.json_body import duplicate_key

PREFIX = "/v2"
INPUT = "text"
PROBABILITIES = "probabilities"
LABEL = "label"
HEADER_LENGTH = "inference-header-content-length"
_ELEMENT_LENGTH = struct.Struct("<I")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def error_body(message: str) -> dict:
    """Every failure on /v2, as the protocol (and tritonclient, which reads ``error``) has it."""
    return {"error": message}


class Tensor(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: StrictStr
    shape: list[StrictInt]
    datatype: StrictStr
    parameters: dict[str, Any] | None = None
    data: Any = None


class RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: StrictStr
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """The JSON part of an inference request (the protocol's ``$inference_request``)."""

    model_config = ConfigDict(extra="ignore")
    id: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[Tensor]
    outputs: list[RequestedOutput] | None = None


@dataclass(frozen=True)
class Output:
    """One output to send: which, in binary or JSON, and the classification's k (or None)."""

    name: str
    binary: bool
    classification: int | None = None


def parse(body: bytes, header_length: str | None) -> tuple[InferRequest, bytes]:
    """The JSON header, and the binary data after it (empty without the extension)."""
    head, blob = body, b""
    if header_length is not None:
        length = _byte_count(header_length, len(body))
        head, blob = body[:length], body[length:]
    try:
        request = InferRequest.model_validate_json(head)
    except ValidationError as exc:
        request = _read_by_python(head, exc)
    if problem := duplicate_key(head):
        raise InvalidInput(f"inference request: {problem}")
    return request, blob


def _read_by_python(head: bytes, exc: ValidationError) -> InferRequest:
    """pydantic's parser calls a lone surrogate escape ("\\ud800") invalid JSON; Python's
    reads it, so that the text check names it as /predict does. Else pydantic's error."""
    if exc.errors()[0]["type"] == "json_invalid" and _SURROGATE_ESCAPE.search(head):
        try:
            return InferRequest.model_validate(json.loads(head, parse_constant=_no_constant))
        except (ValueError, RecursionError):  # JSONDecodeError and ValidationError too
            pass
    raise InvalidInput(f"inference request: {_describe(exc)}") from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: pydantic refuses them too


def _byte_count(header: str, body_bytes: int) -> int:
    """Inference-Header-Content-Length in bytes, within the body: ASCII digits, no more of
    them than the body's size has ("²" passes ``isdigit``; ``int`` refuses 4,301 digits)."""
    n = header.strip()
    if n.isascii() and n.isdigit() and len(n) <= len(str(body_bytes)) and 0 < int(n) <= body_bytes:
        return int(n)
    message = f"a byte count from 1 to the body's {body_bytes} bytes, got {header[:40]!r}"
    raise InvalidInput(f"Inference-Header-Content-Length must be {message}")


def _describe(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return f"the JSON header is not valid JSON ({first['ctx'].get('error', first['msg'])})"
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
    more = len(exc.errors()) - 1
    return f"'{where.lstrip('.')}': {first['msg']}" + (f" (and {more} more)" if more else "")


def input_texts(request: InferRequest, blob: bytes, max_texts: int) -> list[str]:
    """The texts of the one input, from its JSON ``data`` or from the binary data."""
    if len(request.inputs) != 1:
        raise InvalidInput(f"expected one input ({INPUT!r}), got {len(request.inputs)}")
    tensor = request.inputs[0]
    if tensor.name != INPUT:
        raise InvalidInput(f"unknown input {tensor.name[:100]!r}: this model takes {INPUT!r}")
    if tensor.datatype != "BYTES":
        raise InvalidInput(f"input {INPUT!r} must be BYTES, got {tensor.datatype[:40]!r}")
    count = _count(tensor.shape, max_texts)
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is None:
        if blob:
            raise InvalidInput(
                f"{len(blob)} bytes follow the JSON header, but no input has "
                "parameters.binary_data_size"
            )
        return _json_texts(tensor.data, count)
    if tensor.data is not None:
        raise InvalidInput(f"input {INPUT!r} has both 'data' and binary_data_size")
    if type(size) is not int or size < 0:
        problem = f"must be a number of bytes, not {str(size)[:40]!r}"
    elif size != len(blob):
        problem = f"is {size}, but {len(blob)} bytes follow the JSON header"
    else:
        return unpack_bytes(blob, count)
    raise InvalidInput(f"input {INPUT!r}: binary_data_size {problem}")


def _count(shape: list[int], max_texts: int) -> int:
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise InvalidInput(f"input {INPUT!r} must have shape [n] or [n, 1], got {shape}")
    n = shape[0]
    if n < 1:
        raise InvalidInput(f"input {INPUT!r} must hold at least one text (shape {shape})")
    if n > max_texts:
        raise InvalidInput(f"{n} texts in one request; the limit is {max_texts}")
    return n


def _json_texts(data: Any, count: int) -> list[str]:
    if data is None:
        raise InvalidInput(f"input {INPUT!r} has no 'data' (nor parameters.binary_data_size)")
    if not isinstance(data, list):
        raise InvalidInput(f"input {INPUT!r}: 'data' must be a list of strings")
    # Row-major, flat or nested as the shape ([n] or [n, 1]).
    flat = [x for row in data for x in (row if isinstance(row, list) else [row])]
    if len(flat) != count:
        raise InvalidInput(f"input {INPUT!r}: shape says {count} texts, 'data' holds {len(flat)}")
    for i, x in enumerate(flat):
        if not isinstance(x, str):
            raise InvalidInput(f"input {INPUT!r}: element {i} is {type(x).__name__}, not a string")
    return flat


def unpack_bytes(blob: bytes, count: int) -> list[str]:
    """``count`` length-prefixed UTF-8 elements filling ``blob`` exactly."""
    texts = []
    pos = 0
    for i in range(count):
        if pos + 4 > len(blob):
            raise InvalidInput(f"input {INPUT!r}: binary data ends before element {i}")
        (n,) = _ELEMENT_LENGTH.unpack_from(blob, pos)
        pos += 4
        if pos + n > len(blob):
            raise InvalidInput(
                f"input {INPUT!r}: element {i} claims {n} bytes, {len(blob) - pos} are left"
            )
        try:
            texts.append(blob[pos : pos + n].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"input {INPUT!r}: element {i} is not valid UTF-8 (byte {exc.start}: {exc.reason})"
            ) from None
        pos += n
    if pos != len(blob):
        raise InvalidInput(
            f"input {INPUT!r}: {len(blob) - pos} bytes left over after its {count} elements"
        )
    return texts


def pack_bytes(elements: list[str]) -> bytes:
    raws = [element.encode("utf-8") for element in elements]
    return b"".join(part for raw in raws for part in (_ELEMENT_LENGTH.pack(len(raw)), raw))


def requested_outputs(request: InferRequest, classes: int) -> list[Output]:
    """What to send: every output unless some are named, binary as asked."""
    binary_default = (request.parameters or {}).get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise InvalidInput("parameters.binary_data_output must be true or false")
    if not request.outputs:  # absent or [] (as Triton reads it): both
        return [Output(PROBABILITIES, binary_default), Output(LABEL, binary_default)]
    outputs: list[Output] = []
    for i, asked in enumerate(request.outputs):
        if asked.name not in (PROBABILITIES, LABEL):
            raise InvalidInput(
                f"unknown output {asked.name[:100]!r}: this model has "
                f"{PROBABILITIES!r} and {LABEL!r}"
            )
        if any(o.name == asked.name for o in outputs):
            raise InvalidInput(f"output {asked.name!r} is asked for twice")
        params = asked.parameters or {}
        binary = params.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise InvalidInput(f"outputs[{i}].parameters.binary_data must be true or false")
        outputs.append(Output(asked.name, binary, _top_k(params, asked.name, i, classes)))
    return outputs


def _top_k(params: dict, name: str, i: int, classes: int) -> int | None:
    k = params.get("classification")
    if k is None or k == 0:  # (tritonclient's class_count=0 means "no classification")
        return None
    if type(k) is not int or k < 0:
        raise InvalidInput(f"outputs[{i}].parameters.classification must be a positive integer")
    if name != PROBABILITIES:
        raise InvalidInput(f"classification applies to {PROBABILITIES!r}, not {name!r}")
    return min(k, classes)


def render(
    head: dict,
    outputs: list[Output],
    probabilities: np.ndarray,
    labels: list[str],
    predicted: list[str],
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary data follows it.

    ``probabilities``: one row per text, one column per label, float64: the JSON form
    carries exactly /predict's numbers, the binary form float32 (the datatype, FP32).
    ``predicted``: each text's label.
    """
    tensors, blobs = [], []
    for output in outputs:
        tensor, values = _tensor(output, probabilities, labels, predicted)
        fp32 = tensor["datatype"] == "FP32"
        if output.binary:
            blob = np.asarray(values, "<f4").tobytes() if fp32 else pack_bytes(values)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = values.ravel().tolist() if fp32 else values
        tensors.append(tensor)
    header = to_json({**head, "outputs": tensors})
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def _tensor(
    output: Output, probabilities: np.ndarray, labels: list[str], predicted: list[str]
) -> tuple[dict, Any]:
    n = len(probabilities)
    if output.name == LABEL:
        return {"name": LABEL, "datatype": "BYTES", "shape": [n]}, predicted
    if output.classification:
        k = output.classification
        tensor = {"name": PROBABILITIES, "datatype": "BYTES", "shape": [n, k]}
        return tensor, top_k_strings(probabilities, labels, k)
    return {"name": PROBABILITIES, "datatype": "FP32", "shape": [n, len(labels)]}, probabilities


def top_k_strings(probabilities: np.ndarray, labels: list[str], k: int) -> list[str]:
    """Row-major ``"value:index:label"``, each row's k best first (Triton's format)."""
    out = []
    for row in probabilities:
        best = sorted(range(len(labels)), key=lambda j: (-row[j], j))[:k]
        out += [f"{row[j]:f}:{j}:{labels[j]}" for j in best]
    return out
