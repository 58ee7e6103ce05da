"""Numerics statistics of quantization: of plain arrays, and per layer and tensor class of a recipe.

For plain arrays, :func:`error_stats` compares an input with its quantized version::

    q = fp8emu.quantize(x, e5m2)
    error_stats(x, q, e5m2)     # {"snr_db": ..., "rel_error": ..., "flushed": ..., ...}

For training, :class:`QuantStats` registers itself as an observer of every quantization the
GEMM/conv ops do (:func:`fp8emu.autograd.add_observer`) while enabled::

    stats = QuantStats()
    with stats:                       # collect during these steps only
        train_step(...)
    print(stats.table())

Both count the same things (:func:`error_stats` over one array, :class:`QuantStats` summed over
every quantized element of a layer and class):

* ``flushed``: fraction of the nonzero finite inputs that became zero ("flushed to zero";
  not the IEEE *underflow* flag of :func:`fp8emu.verify.flag_counts`, which is raised for
  tiny results whether or not they become zero);
* ``overflow``: fraction of the finite inputs that became Inf or NaN;
* ``saturated``: fraction of the finite inputs beyond the largest magnitude of the format
  *as scaled* (``fmt.max`` times the tensor's dequantization scale under per-tensor or
  delayed scaling, times each block's scale under MX and NVFP4 -- and NVFP4's tensor scale)
  that came out clamped to it;
* ``snr_db``: quantization signal-to-noise ratio ``10 log10(sum x^2 / sum (x - q)^2)`` over
  the elements where both are finite (``inf`` when exact);
* ``rel_error`` (:func:`error_stats` only): the relative RMS error
  ``sqrt(sum (x - q)^2 / sum x^2)`` over the same elements.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from .autograd import add_observer, remove_observer
from .format import Format
from .formats import get_format

__all__ = ["QuantStats", "error_stats", "STAT_FIELDS"]

#: The raw sums behind every statistic (``finite``: the finite inputs, the denominator of
#: ``overflow`` and ``saturated``; ``nonzero``: the nonzero finite ones, that of ``flushed``).
STAT_FIELDS = ("elements", "finite", "nonzero", "flushed", "overflow", "saturated", "signal", "noise")


def _sums(x: npt.ArrayLike, q: npt.ArrayLike, fmt: Format, scale: float | np.ndarray = 1.0) -> dict[str, float]:
    """The :data:`STAT_FIELDS` sums of one input ``x`` and its dequantized result ``q``.

    ``scale`` is the dequantization scale (a number, or an array broadcasting to ``x`` for
    block scaling): the largest magnitude ``q`` can take is ``fmt.max * scale``.
    """
    x64 = np.asarray(x, dtype=np.float64)
    q64 = np.asarray(q, dtype=np.float64)
    if x64.shape != q64.shape:
        raise ValueError(f"x and q must have the same shape, got {x64.shape} and {q64.shape}")
    fin_x, fin_q = np.isfinite(x64), np.isfinite(q64)
    nonzero = fin_x & (x64 != 0)
    both = fin_x & fin_q
    top = fmt.max * np.asarray(scale, dtype=np.float64)
    q_dtype = np.asarray(q).dtype
    # q holds the clamped value as rounded into its own dtype (NVFP4: max * block * tensor scale)
    top_q = top.astype(q_dtype).astype(np.float64) if q_dtype.kind == "f" else top
    with np.errstate(invalid="ignore", over="ignore"):  # NaN block scales compare False: not saturated
        clamped = both & (np.abs(x64) > top) & (np.abs(q64) == top_q)
    diff = np.where(both, x64 - q64, 0.0)
    return {"elements": x64.size, "finite": int(np.count_nonzero(fin_x)), "nonzero": int(np.count_nonzero(nonzero)),
            "flushed": int(np.count_nonzero(nonzero & (q64 == 0))),
            "overflow": int(np.count_nonzero(fin_x & ~fin_q)),
            "saturated": int(np.count_nonzero(clamped)),
            "signal": float(np.sum(np.where(both, x64, 0.0) ** 2)), "noise": float(np.sum(diff * diff))}


def _finish(s: dict[str, float]) -> dict[str, float]:
    """Fractions and SNR from :data:`STAT_FIELDS` sums (each fraction of the inputs it is about:
    ``overflow`` and ``saturated`` of the finite inputs, ``flushed`` of the nonzero finite ones)."""
    finite = max(s["finite"], 1)
    if s["noise"] == 0:
        snr, rel = math.inf, 0.0
    elif s["signal"] > 0:
        snr, rel = 10 * math.log10(s["signal"] / s["noise"]), math.sqrt(s["noise"] / s["signal"])
    else:
        snr, rel = -math.inf, math.inf
    return {"flushed": s["flushed"] / max(s["nonzero"], 1), "overflow": s["overflow"] / finite,
            "saturated": s["saturated"] / finite, "snr_db": snr, "rel_error": rel}


def error_stats(x: npt.ArrayLike, q: npt.ArrayLike, fmt: Format | str,
                scale: float | npt.ArrayLike = 1.0) -> dict[str, float]:
    """What quantizing ``x`` into ``fmt`` did, given the dequantized result ``q``.

    Args:
        x: the input (any float array).
        q: its quantized values, dequantized (same shape), e.g. ``quantize(x, fmt)``.
        fmt: the format (or its name).
        scale: the dequantization scale that ``q`` includes (``q = format value * scale``):
            a number, or an array broadcasting to ``x`` (per-channel or per-block scales).

    Returns:
        ``{"flushed", "overflow", "saturated", "snr_db", "rel_error", "elements", "finite"}`` as
        described in the module docstring (fractions in [0, 1]: ``overflow`` and ``saturated``
        of the ``finite`` inputs, ``flushed`` of the nonzero finite ones, each 0 when there are
        none; ``snr_db`` is ``inf`` and ``rel_error`` 0 when ``q`` equals ``x`` wherever both
        are finite; ``elements`` and ``finite`` are counts).

    Raises:
        ValueError: ``x`` and ``q`` differ in shape, or an unknown format name.
    """
    s = _sums(x, q, get_format(fmt), np.asarray(scale, dtype=np.float64))
    return {**_finish(s), "elements": int(s["elements"]), "finite": int(s["finite"])}


class QuantStats:
    """Collector of per-layer, per-class quantization statistics (see the module docstring)."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, str], dict[str, float]] = {}
        self.enabled = False

    def __call__(self, layer: Any, tclass: str, x: np.ndarray, q: np.ndarray, spec: Any) -> None:
        # the layer's last_scale: the dequantization scale of this call (per element under MX/NVFP4)
        s = _sums(x, q, spec.fmt, layer.last_scale)
        total = self.sums.setdefault((layer.name, tclass), dict.fromkeys(STAT_FIELDS, 0.0))
        for k, v in s.items():
            total[k] += v

    def enable(self) -> "QuantStats":
        """Start collecting: register this collector as an observer of every quantization.

        Returns:
            This collector (so ``with QuantStats().enable() as st`` and chaining work).
        """
        if not self.enabled:
            add_observer(self)
            self.enabled = True
        return self

    def disable(self) -> None:
        """Stop collecting (the sums so far are kept)."""
        remove_observer(self)
        self.enabled = False

    def __enter__(self) -> "QuantStats":
        return self.enable()

    def __exit__(self, *exc: Any) -> None:
        self.disable()

    def reset(self) -> None:
        """Forget every sum collected so far."""
        self.sums.clear()

    def merge(self, other: "QuantStats") -> None:
        """Add ``other``'s sums to this collector's.

        Args:
            other: another collector (e.g. of a worker process); it is not changed.
        """
        for key, s in other.sums.items():
            total = self.sums.setdefault(key, dict.fromkeys(STAT_FIELDS, 0.0))
            for k, v in s.items():
                total[k] += v

    def state_dict(self) -> dict[str, dict[str, dict[str, float]]]:
        """The raw sums as ``{layer: {class: {field: sum}}}`` (string keys: checkpoints, JSON)."""
        state: dict[str, dict[str, dict[str, float]]] = {}
        for (layer, tclass), s in self.sums.items():
            state.setdefault(layer, {})[tclass] = dict(s)
        return state

    def load_state_dict(self, state: dict[str, dict[str, dict[str, float]]]) -> None:
        """Replace the sums by those of :meth:`state_dict`.

        Args:
            state: ``{layer: {class: {field: sum}}}`` as :meth:`state_dict` returns.

        Sums saved before ``finite`` was counted (no such key) take every element as finite:
        the denominator they were reported with, exact unless an input was Inf or NaN.

        Raises:
            KeyError: a class entry lacks one of :data:`STAT_FIELDS` (``finite`` excepted).
        """
        def fields(s: dict[str, float]) -> dict[str, float]:
            saved = {"finite": s["elements"], **s}  # a saved ``finite`` wins over the fallback
            return {k: saved[k] for k in STAT_FIELDS}
        self.sums = {(layer, tclass): fields(s)
                     for layer, per_class in state.items() for tclass, s in per_class.items()}

    def summary(self) -> dict[str, dict[str, dict[str, float | None]]]:
        """``{layer: {class: {"flushed", "overflow", "saturated", "snr_db"}}}`` for JSON metrics
        (``snr_db`` None where the quantization was exact or there was no signal)."""
        out: dict[str, dict[str, dict[str, float | None]]] = {}
        for row in self.report():
            snr = row["snr_db"] if math.isfinite(row["snr_db"]) else None
            out.setdefault(row["layer"], {})[row["class"]] = {
                "flushed": row["flushed"], "overflow": row["overflow"], "saturated": row["saturated"], "snr_db": snr}
        return out

    def report(self) -> list[dict[str, Any]]:
        """One row per (layer, class): fractions and SNR (see the module docstring)."""
        rows = []
        for (layer, tclass), s in self.sums.items():
            f = _finish(s)
            rows.append({"layer": layer, "class": tclass, "elements": int(s["elements"]), "flushed": f["flushed"],
                         "overflow": f["overflow"], "saturated": f["saturated"], "snr_db": f["snr_db"]})
        return rows

    def get(self, layer: str, tclass: str) -> dict[str, Any]:
        """The row of one layer and class.

        Args:
            layer: the layer's name.
            tclass: the tensor class (one of :data:`fp8emu.autograd.quant.TENSOR_CLASSES`).

        Returns:
            The :meth:`report` row of that layer and class.

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
        lines = [f"{'layer':<24} {'class':<13} {'flushed':>9} {'overflow':>9} {'saturated':>9} {'SNR dB':>8}"]
        for r in self.report():
            lines.append(f"{r['layer']:<24} {r['class']:<13} {r['flushed']:>9.2%} {r['overflow']:>9.2%} "
                         f"{r['saturated']:>9.2%} {r['snr_db']:>8.1f}")
        return "\n".join(lines)
