"""``sentiment-score``: a table of texts in, one scored row per input row out.

``cli`` (the command), ``readers`` / ``writers`` (CSV, TSV, JSON Lines, Parquet, streamed
in chunks so memory stays bounded; ``lines``: no text line held whole), ``rows`` (a chunk and its bad rows), ``local`` (in
process: the service's encoder, length groups and onnxruntime settings on every core),
``remote`` (through a running service, ``--server``), ``output`` (written under a
temporary name, renamed at the end) and ``progress`` (the bar on a terminal).
"""
