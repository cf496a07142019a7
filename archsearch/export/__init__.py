"""Export the winner of a study: bundle writer, serialised formats, model card, reproduction."""

from archsearch.export.bundle import write_bundle
from archsearch.export.reproduce import reproduce

__all__ = ["reproduce", "write_bundle"]
