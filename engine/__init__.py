"""Portfolio-margin engine: pure numpy/scipy, arrays in and arrays out, no I/O.

``compute_margin(book, market, params)`` margins every trader of a ``Book`` (spot,
perpetuals, dated futures, European options, lending supply and borrow) on a scenario
grid per underlying, aggregates across underlyings with stressed correlations, and
reports the same book under isolated and protocol-cross margin for comparison.
"""

from engine.errors import BookError, EngineError, ParamsError
from engine.instruments import Book, Kind, Market
from engine.margin import MarginResult, compute_margin
from engine.params import MarginParams

__all__ = ["Book", "BookError", "EngineError", "Kind", "MarginParams", "MarginResult", "Market",
           "ParamsError", "compute_margin"]
