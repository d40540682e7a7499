"""Versioned, validated margin parameters.

Every result carries ``MarginParams.version`` so an attestation can say which model
produced it. Defaults follow ``margin-model.md``: a ±16% scan in 9 steps (Deribit /
Paradex shape), a minimum delta charge of 2% of net plus 1% of hedged delta, and
IM = 1.25 × MM.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ParamsError(ValueError):
    """A margin parameter is out of its allowed range; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class MarginParams:
    version: int = 1
    scan_range: float = 0.16
    scan_steps: int = 9
    scan_range_by_underlying: dict[str, float] = field(default_factory=dict)
    net_delta_charge: float = 0.02
    hedged_delta_charge: float = 0.01
    initial_to_maintenance: float = 1.25

    def __post_init__(self) -> None:
        if self.version < 1:
            raise ParamsError("version", "must be ≥ 1")
        if not 0.0 < self.scan_range < 1.0:
            raise ParamsError("scan_range", "must lie in (0, 1)")
        if self.scan_steps < 3 or self.scan_steps % 2 == 0:
            raise ParamsError("scan_steps", "must be odd and ≥ 3 so that 0 is a scenario")
        for name, r in self.scan_range_by_underlying.items():
            if not 0.0 < r < 1.0:
                raise ParamsError(f"scan_range_by_underlying.{name}", "must lie in (0, 1)")
        if self.net_delta_charge < 0 or self.hedged_delta_charge < 0:
            raise ParamsError("net_delta_charge", "delta charges must be ≥ 0")
        if self.initial_to_maintenance < 1.0:
            raise ParamsError("initial_to_maintenance", "must be ≥ 1")

    def range_for(self, underlying: str) -> float:
        return self.scan_range_by_underlying.get(underlying, self.scan_range)
