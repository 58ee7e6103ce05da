"""Numerics statistics of a recipe, per layer and tensor class, collected on demand.

``QuantStats`` registers itself as an observer of every quantization the GEMM/conv ops do
(:func:`fp8emu.autograd.add_observer`) while enabled::

    stats = QuantStats()
    with stats:                       # collect during these steps only
        train_step(...)
    print(stats.table())

For each (layer, tensor class) it accumulates, over all quantized elements:

* ``underflow``: fraction of the nonzero finite inputs that became zero;
* ``overflow``: fraction of the finite inputs that became Inf or NaN;
* ``saturated``: fraction of the finite inputs beyond the format's range (after per-tensor
  or delayed scaling) that came out finite, i.e. were clamped to +-max (not measured, 0, for
  MX or NVFP4 block scaling, whose per-block scales the observer does not see);
* ``snr_db``: quantization signal-to-noise ratio ``10 log10(sum x^2 / sum (x - q)^2)`` over
  the elements where both are finite (``inf`` when exact).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .autograd import add_observer, remove_observer

__all__ = ["QuantStats"]

_FIELDS = ("elements", "nonzero", "underflow", "overflow", "saturated", "signal", "noise")


class QuantStats:
    """Collector of per-layer, per-class quantization statistics (see the module docstring)."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, str], dict[str, float]] = {}
        self.enabled = False

    def __call__(self, layer: Any, tclass: str, x: np.ndarray, q: np.ndarray, spec: Any) -> None:
        x64 = np.asarray(x, dtype=np.float64)
        q64 = np.asarray(q, dtype=np.float64)
        fin_x = np.isfinite(x64)
        fin_q = np.isfinite(q64)
        nonzero = fin_x & (x64 != 0)
        both = fin_x & fin_q
        if spec.scaling in ("mx", "nvfp4"):  # per-block scales are not visible here: not measured
            beyond = np.zeros(x64.shape, bool)
        else:
            beyond = np.abs(x64) > spec.fmt.max * getattr(layer, "last_inv", 1.0)
        diff = np.where(both, x64 - q64, 0.0)
        s = self.sums.setdefault((layer.name, tclass), dict.fromkeys(_FIELDS, 0.0))
        s["elements"] += x64.size
        s["nonzero"] += int(np.count_nonzero(nonzero))
        s["underflow"] += int(np.count_nonzero(nonzero & (q64 == 0)))
        s["overflow"] += int(np.count_nonzero(fin_x & ~fin_q))
        s["saturated"] += int(np.count_nonzero(both & beyond))
        s["signal"] += float(np.sum(np.where(both, x64, 0.0) ** 2))
        s["noise"] += float(np.sum(diff * diff))

    def enable(self) -> "QuantStats":
        if not self.enabled:
            add_observer(self)
            self.enabled = True
        return self

    def disable(self) -> None:
        remove_observer(self)
        self.enabled = False

    def __enter__(self) -> "QuantStats":
        return self.enable()

    def __exit__(self, *exc: Any) -> None:
        self.disable()

    def reset(self) -> None:
        self.sums.clear()

    def report(self) -> list[dict[str, Any]]:
        """One row per (layer, class): fractions and SNR (see the module docstring)."""
        rows = []
        for (layer, tclass), s in self.sums.items():
            n = max(s["elements"], 1)
            snr = math.inf if s["noise"] == 0 else (10 * math.log10(s["signal"] / s["noise"]) if s["signal"] > 0
                                                    else -math.inf)
            rows.append({"layer": layer, "class": tclass, "elements": int(s["elements"]),
                         "underflow": s["underflow"] / max(s["nonzero"], 1), "overflow": s["overflow"] / n,
                         "saturated": s["saturated"] / n, "snr_db": snr})
        return rows

    def get(self, layer: str, tclass: str) -> dict[str, Any]:
        """The row of one layer and class.

        Raises:
            KeyError: nothing was collected for it.
        """
        for row in self.report():
            if row["layer"] == layer and row["class"] == tclass:
                return row
        raise KeyError(f"no statistics for layer {layer!r}, class {tclass!r}; collected: "
                       f"{sorted(self.sums)}")

    def table(self) -> str:
        """A plain-text table of :meth:`report`."""
        lines = [f"{'layer':<24} {'class':<13} {'underflow':>9} {'overflow':>9} {'saturated':>9} {'SNR dB':>8}"]
        for r in self.report():
            lines.append(f"{r['layer']:<24} {r['class']:<13} {r['underflow']:>9.2%} {r['overflow']:>9.2%} "
                         f"{r['saturated']:>9.2%} {r['snr_db']:>8.1f}")
        return "\n".join(lines)
