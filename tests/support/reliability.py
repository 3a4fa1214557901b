"""Helpers for the reliability suite.

Nothing here hard-codes a model version, a score or a token id: texts come from the
bundle's manifest ("reference") and expected scores from the bundle itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from sentiment_core.bundle import sha256_file
from sentiment_core.encoder import TextEncoder
from service.model.loader import load_bundle
from tests.support.servers import NEGATIVE_TEXT, POSITIVE_TEXT, copy_bundle

# Limits of the module-scoped ``live`` server (conftest.py).
LIVE_MAX_TEXTS = 4
LIVE_MAX_CHARS = 400
LIVE_MAX_BODY = 1024 * 1024  # room for 100k-deep nesting (600 kB)
LIVE_EXPLAIN_TOKENS = 64  # /explain's limit (SENTIMENT_EXPLAIN_MAX_TOKENS), under the chars
LIVE_MAX_SENTENCES = 16  # sentences per /predict request (SENTIMENT_MAX_SENTENCES_PER_REQUEST)
ADMIN_TOKEN = "reliability-admin-token-0123456789"

# What a Python traceback looks like in text; no response body may contain either.
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "')


def assert_no_traceback(body: bytes | str, what: str) -> None:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    for marker in TRACEBACK_MARKERS:
        assert marker not in text, (
            f"{what}: response body holds a traceback ({marker!r}): {text[:500]}"
        )


@dataclass
class Tally:
    """Statuses of every response a test saw (and that none of them holds a traceback)."""

    statuses: Counter = field(default_factory=Counter)

    def record(self, status: int, body: bytes | str, what: str) -> None:
        assert_no_traceback(body, what)
        self.statuses[status] += 1

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def summary(self) -> str:
        return ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items()))


# -- texts ----------------------------------------------------------------------------------
def review_texts(reference: list[dict], count: int, min_chars: int, seed: int = 7) -> list[str]:
    """``count`` distinct reviews of ``min_chars`` to about ``2 * min_chars`` characters,
    built from the manifest's reference texts and two strongly worded ones."""
    pieces = [r["text"][:min_chars] for r in reference if r["text"].strip()]
    pieces += [POSITIVE_TEXT, NEGATIVE_TEXT]
    rng = random.Random(seed)
    texts: list[str] = []
    while len(texts) < count:
        parts: list[str] = [f"Review {len(texts)}."]
        while sum(len(p) + 1 for p in parts) < min_chars:
            parts.append(rng.choice(pieces))
        text = " ".join(parts)
        text = "".join(c for c in text if c.isprintable() or c in "\t\n")
        texts.append(text)
    return texts


def short_texts(reference: list[dict]) -> list[str]:
    """The reference texts that are real text, and the two strongly worded ones."""
    texts = [r["text"] for r in reference if r["text"].strip() and r["text"].isprintable()]
    return [*texts, POSITIVE_TEXT, NEGATIVE_TEXT]


# -- metrics ------------------------------------------------------------------------------------
def metric_samples(metrics_text: str, family_name: str) -> list[tuple[str, dict, float]]:
    for family in text_string_to_metric_families(metrics_text):
        if family.name == family_name:
            return [(s.name, s.labels, s.value) for s in family.samples]
    return []


def active_model_versions(metrics_text: str) -> list[str]:
    """Versions in sentiment_model_info with value 1 (exactly one while serving)."""
    return [
        labels["version"]
        for _, labels, value in metric_samples(metrics_text, "sentiment_model_info")
        if value == 1
    ]


def request_statuses(metrics_text: str) -> Counter:
    """Server-side count of answered requests by status (sentiment_requests_total)."""
    counts: Counter = Counter()
    for name, labels, value in metric_samples(metrics_text, "sentiment_requests"):
        if name.endswith("_total"):
            counts[int(labels["status"])] += int(value)
    return counts


# -- raw HTTP -----------------------------------------------------------------------------------
def raw_exchange(port: int, request: bytes, timeout_s: float = 10) -> tuple[bytes, float]:
    """Send ``request`` as is; read one response (head + Content-Length body).

    Returns the bytes read and the seconds from sending to the first response byte.
    The connection is closed afterwards, whatever the server meant to do with it.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        started = time.monotonic()
        # the server may answer and close before taking all of it
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        data = b""
        first_byte_s = float("nan")
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            if not data:
                first_byte_s = time.monotonic() - started
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = _content_length(head)
                if length is not None and len(body) >= length:
                    break
        return data, first_byte_s


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return None


def status_of(raw: bytes) -> int:
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    return int(raw[9:12])


# -- a second bundle that scores differently ------------------------------------------------------
def permuted_bundle(src: Path, dst: Path, version: str) -> Path:
    """A valid bundle with ``src``'s model and a tokenizer whose 2000 most frequent words'
    ids are reversed: same shapes, different ids and scores, so mixing tokenizer and model
    of two versions (or labelling an answer with the wrong version) is detectable.

    The manifest gets the new tokenizer's SHA-256 and reference scores recomputed with
    this tokenizer and the model (each text alone, as training does); ``load_bundle``
    must accept the result.
    """
    copy_bundle(src, dst, edit_manifest=lambda m: m.update(version=version))
    manifest = json.loads((dst / "manifest.json").read_text())
    tokenizer_file = manifest.get("tokenizer_file", "tokenizer.json")
    tokenizer = json.loads((dst / tokenizer_file).read_text())
    vocab = tokenizer["model"]["vocab"]
    frequent = sorted((w for w, i in vocab.items() if i >= 2), key=vocab.get)[:2000]
    ids = [vocab[w] for w in frequent]
    for word, new_id in zip(frequent, reversed(ids), strict=True):
        vocab[word] = new_id
    (dst / tokenizer_file).write_text(json.dumps(tokenizer, ensure_ascii=False))
    manifest["files"][tokenizer_file]["sha256"] = sha256_file(dst / tokenizer_file)
    if "bytes" in manifest["files"][tokenizer_file]:
        manifest["files"][tokenizer_file]["bytes"] = (dst / tokenizer_file).stat().st_size

    spec = manifest["input"]
    encoder = TextEncoder.from_file(
        dst / tokenizer_file, max_length=int(spec["max_length"]), truncation=spec["truncation"]
    )
    model = load_bundle(src)  # the same model file; only its scoring function is used
    manifest["reference"] = [
        {"text": r["text"], "score": float(model.score_ids(encoder.encode_ids([r["text"]]))[0])}
        for r in manifest["reference"]
    ]
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    load_bundle(dst)  # verifies hashes and the self-check: a valid, different bundle
    return dst


# -- a light HTTP/1.1 client for bursts ---------------------------------------------------------
@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # from opening the connection to the last byte of the response

    def json(self):
        return json.loads(self.body)


async def raw_post_json(port: int, path: str, payload, timeout_s: float = 60) -> RawResponse:
    """POST one JSON body on a fresh connection (Connection: close) and read the answer.

    httpx's pool costs more client CPU per request than the server spends refusing one, so
    a burst measured with it would time the client; this costs next to nothing.
    """
    body = json.dumps(payload).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    started = time.monotonic()

    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(head + body)
            await writer.drain()
            return await reader.read()  # until the server closes (Connection: close)
        finally:
            writer.close()

    data = await asyncio.wait_for(exchange(), timeout_s)
    seconds = time.monotonic() - started
    head_bytes, _, rest = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(lines[0].split()[1]), headers, rest, seconds)
