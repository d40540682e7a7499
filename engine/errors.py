"""Errors of the engine.

Tree::

    EngineError          bad input; ``field`` names what is wrong
    ├── BookError        positions or market data (trader, position and field)
    └── ParamsError      margin parameters
"""

from __future__ import annotations


class EngineError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class BookError(EngineError):
    """The book or market data are inconsistent."""


class ParamsError(EngineError):
    """A margin parameter is out of its allowed range."""
