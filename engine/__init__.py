"""Portfolio-margin engine: pure numpy, arrays in and arrays out, no I/O.

The walking skeleton margins linear instruments (spot-like collateral in USD and
perpetual futures) on a ±R price scan; see ``margin.py`` for the model and
``params.py`` for the versioned parameters.
"""

from engine.margin import Book, MarginResult, compute_margin
from engine.params import MarginParams

__all__ = ["Book", "MarginParams", "MarginResult", "compute_margin"]
