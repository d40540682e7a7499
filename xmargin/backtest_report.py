"""``xmargin backtest``: load the price history, run ``engine.backtest``, write a report
(JSON and PNG plots) and print the coverage table."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from engine.backtest import BENCHMARK_BOOKS, Coverage, backtest_each, pair_loss_floors
from engine.params import MarginParams

PAIRS = {"BTC": "BTCUSDT", "ETH": "ETHUSDT", "SOL": "SOLUSDT"}


def load_closes(prices_dir: Path, start: date, end: date) -> tuple[list[date], dict[str, Any]]:
    """Daily closes on one calendar from ``start`` to ``end``; NaN before a coin listed."""
    series: dict[str, dict[date, float]] = {}
    for name, pair in PAIRS.items():
        with (prices_dir / "binance-spot" / f"{pair}_1d.csv").open() as f:
            series[name] = {date.fromisoformat(r["timestamp"][:10]): float(r["close"])
                            for r in csv.DictReader(f)}
    days = sorted(d for d in series["BTC"] if start <= d <= end)
    closes = {n: np.array([s.get(d, np.nan) for d in days]) for n, s in series.items()}
    return days, closes


def load_dvol(options_dir: Path, days: list[date]) -> dict[str, Any]:
    """BTC's DVOL close per day of ``days`` as a fraction (NaN where neither capture has
    it): the CSV capture, its gaps filled from the JSON one (../shared/data/options)."""
    folder = options_dir / "deribit-dvol"
    by_day: dict[date, float] = {}
    with (folder / "btc_dvol_daily_2021-2026.csv").open() as f:
        by_day.update({date.fromisoformat(r["date"]): float(r["dvol"]) / 100.0
                       for r in csv.DictReader(f)})
    for ms, value in json.loads((folder / "btc_dvol_daily_2022-2025.json").read_text()):
        by_day.setdefault(datetime.fromtimestamp(ms / 1000, UTC).date(), float(value) / 100.0)
    return {"BTC": np.array([by_day.get(d, np.nan) for d in days])}


def summary(results: list[Coverage], days: list[date]) -> list[dict[str, Any]]:
    return [{
        "book": r.name, "days": r.days, "breaches": r.breaches,
        "breach_rate": round(r.breach_rate, 5), "kupiec_lr": round(r.kupiec_lr, 3),
        "kupiec_pass": r.kupiec_lr < 3.841, "worst_250d_breaches": r.worst_window_breaches,
        "worst_250d_from": str(days[r.worst_window_start]),
        "yellow_250d_windows": r.yellow_windows, "red_250d_windows": r.red_windows,
        "traffic_light": r.traffic_light,
        "mean_mm_usd": {k: round(v, 2) for k, v in r.mean_mm_usd.items()},
        "saving_vs_isolated": round(r.saving_vs_isolated, 4),
    } for r in results]


def plot(results: list[Coverage], days: list[date], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, axes = plt.subplots(len(results), 1, figsize=(11, 2.2 * len(results)), sharex=True)
    for ax, r in zip(np.atleast_1d(axes), results, strict=True):
        ax.plot(days, r.mm_usd, lw=0.8, label="maintenance margin")
        ax.plot(days, r.loss_usd, lw=0.5, alpha=0.7, label="2-day loss")
        breach = r.loss_usd > r.mm_usd
        ax.scatter(np.array(days)[breach], r.loss_usd[breach], color="red", s=8, label="breach")
        ax.set_title(f"{r.name}: {r.breaches} breaches / {r.days} days", fontsize=9)
        ax.set_ylabel("USD")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    paths.append(out / "margin_vs_loss.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(10, 4))
    names = [r.name for r in results]
    x = np.arange(len(results))
    for i, mode in enumerate(("isolated", "protocol_cross", "portfolio")):
        ax.bar(x + (i - 1) * 0.27, [r.mean_mm_usd[mode] for r in results], 0.27, label=mode)
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("mean maintenance margin (USD)")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "savings_by_mode.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def run_report(prices_dir: Path, out: Path, params: MarginParams, start: date,
               end: date) -> dict[str, Any]:
    days, closes = load_closes(prices_dir, start, end)
    implied = load_dvol(prices_dir.parent / "options", days)
    results = backtest_each(closes, BENCHMARK_BOOKS, params, implied=implied)
    out.mkdir(parents=True, exist_ok=True)
    report = {"params_version": params.version, "from": str(days[0]), "to": str(days[-1]),
              "margin_period_days": 2, "confidence": 0.99, "books": summary(results, days),
              # What MarginParams.pair_loss_floor should hold for these closes: the
              # parameters carry them rounded up (engine.params.PAIR_LOSS_FLOOR).
              "pair_loss_floor": {k: round(v, 6)
                                  for k, v in pair_loss_floors(closes).items()},
              "pair_loss_floor_in_params": params.pair_loss_floor,
              # BTC options at Deribit's DVOL where it exists (from 2021-03-24); ETH
              # options and earlier days at the realised volatility, floored at 20%.
              "implied_vol": {"BTC": {"source": "deribit-dvol",
                                      "days": int(np.isfinite(implied["BTC"]).sum())}}}
    report["plots"] = [str(p) for p in plot(results, days, out)]
    (out / "backtest.json").write_text(json.dumps(report, indent=2))
    return report
