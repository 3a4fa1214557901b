"""``python -m service.bulk``: the same as ``sentiment-score``."""

from service.bulk.cli import main

main()
