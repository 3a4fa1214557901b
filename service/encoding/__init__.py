"""Encoding: text to the token ids the model reads.

``encoder.Encoder`` is the interface and the reference (the Rust pipeline in a worker
thread). Speed-ups behind it, each switchable: ``python_path`` (the rules restated in
Python, ``SENTIMENT_PYTHON_ENCODER``), ``vocab_table`` (a batch's ids in numpy,
``SENTIMENT_VOCAB_TABLE``) and ``placement`` (cheap requests encoded on the event loop,
``SENTIMENT_ENCODE_ON_LOOP``).
"""

from __future__ import annotations

from sentiment_core.encoder import TextEncoder
from service.encoding.encoder import Encoder


def build_encoder(
    reference: TextEncoder, *, python_path: bool, vocab_table: bool, on_loop: bool
) -> Encoder:
    """The encoder the settings ask for (the reference one when ``python_path`` is off)."""
    if not python_path:
        return Encoder(reference)
    from service.encoding.python_path import PythonPathEncoder

    return PythonPathEncoder(reference, vocab_table=vocab_table, on_loop=on_loop)
