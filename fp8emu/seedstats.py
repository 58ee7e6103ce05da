"""Seed statistics of training runs: replicates grouped by everything but the seed.

Runs whose configurations agree in every entry that changes the numbers, except the seed,
form a :class:`RunGroup` (entries that only say where or how a run was executed -- its
directory, data path, thread count, evaluation batch size, statistics interval -- do not
split groups).  Per group and epoch the report gives the mean and the sample standard
deviation (``n - 1`` in the denominator) over the seeds; for the final epoch it compares each
group with the ``fp32`` group of otherwise equal configuration by the difference of the means
and Welch's unequal-variance t-test.  Per-layer underflow/overflow fractions are summarised by
their median over the seeds; the loss-scale traces of every seed are drawn.

Welch's test (B. L. Welch, *Biometrika* 34, 1947): for samples ``a`` and ``b`` with sizes
``n_a, n_b``, sample variances ``s_a^2, s_b^2`` and ``v_x = s_x^2 / n_x``::

    t  = (mean(a) - mean(b)) / sqrt(v_a + v_b)
    df = (v_a + v_b)^2 / (v_a^2 / (n_a - 1) + v_b^2 / (n_b - 1))     (Welch-Satterthwaite)
    p  = 2 * P(T_df > |t|)                                             (two-sided)

The t distribution's tail comes from SciPy (the ``train`` extra).  :func:`seed_sections`
writes the Markdown, :func:`plot_seed_stats` the plots; :func:`fp8emu.report.write_report`
uses both when some group holds more than one run.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .report import RECORD_KEYS, STAT_CLASSES, STAT_KINDS, Run, stat_value

__all__ = ["RunGroup", "Welch", "group_runs", "mean_sd", "welch_t_test", "seed_sections", "plot_seed_stats"]

# Configuration entries that say where or how a run was executed, not what it computed.  The data
# fingerprint names the files, not the experiment (``dataset`` and the limits do), and runs written
# before fingerprints existed have none: it must not split their group.
NOT_GROUPING = ("seed", "out", "data", "data_fingerprint", "threads", "eval_batch_size", "stats_every", "progress")
REFERENCE = "fp32"


@dataclass
class RunGroup:
    """Runs of one configuration with different seeds.

    Attributes:
        key: the configuration without the seed, as sorted ``(name, JSON value)`` pairs.
        runs: the runs, in the order given.
        label: a short name: the recipe plus the entries in which groups differ.
    """

    key: tuple[tuple[str, str], ...]
    runs: list[Run]
    label: str = ""

    @property
    def recipe(self) -> str | None:
        """The recipe name of the group (None for runs without a configuration)."""
        value = dict(self.key).get("recipe")
        return None if value is None else json.loads(value)

    @property
    def seeds(self) -> list[Any]:
        """The seed of each run, in run order."""
        return [r.config.get("seed") for r in self.runs]

    def final_epoch(self) -> int | None:
        """The last epoch any run of the group reached (None when no run has finished an epoch)."""
        return max((r.epochs[-1]["epoch"] for r in self.runs if r.epochs), default=None)

    def at_epoch(self, epoch: int | None) -> list[tuple[Run, dict]]:
        """``(run, record)`` for each run that has a record of ``epoch``.

        Args:
            epoch: the epoch number (None, what :meth:`final_epoch` gives for a group without
                records, matches no run).
        """
        found = []
        for run in self.runs:
            record = next((e for e in run.epochs if e["epoch"] == epoch), None)
            if record is not None:
                found.append((run, record))
        return found

    def finals(self, metric: str) -> list[float]:
        """``metric`` at :meth:`final_epoch`, from the runs that reached it.

        Args:
            metric: a key of the epoch records (``"test_acc"``, ``"train_loss"``, ...).
        """
        return [float(rec[metric]) for _, rec in self.at_epoch(self.final_epoch())]

    def per_epoch(self, metric: str) -> list[tuple[int, list[float]]]:
        """``(epoch, values over the runs that reached it)`` for every epoch of any run.

        Args:
            metric: a key of the epoch records (``"test_acc"``, ``"train_loss"``, ...).
        """
        epochs = sorted({e["epoch"] for r in self.runs for e in r.epochs})
        return [(ep, [float(rec[metric]) for _, rec in self.at_epoch(ep)]) for ep in epochs]


def _key(run: Run) -> tuple[tuple[str, str], ...]:
    if not run.config:  # nothing to group by: a run of its own
        return (("path", json.dumps(os.path.normpath(run.path))),)
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in run.config.items() if k not in NOT_GROUPING))


def _record_line(run: Run, index: int) -> str:
    """``metrics.jsonl:<line>`` of the run's ``index``-th epoch record, for messages.

    :func:`fp8emu.report.load_run` keeps every non-blank line as a record (only a torn last
    line is dropped), so record ``index`` is the ``index``-th non-blank line.
    """
    metrics = os.path.join(run.path, "metrics.jsonl")
    try:
        with open(metrics) as f:
            numbers = [i + 1 for i, line in enumerate(f.read().split("\n")) if line.strip()]
        return f"{metrics}:{numbers[index]}"
    except (OSError, IndexError):  # a Run built in memory, or a file changed since
        return f"{metrics} (epoch record {index + 1})"


def _check_finite(runs: Sequence[Run]) -> None:
    """Refuse epoch records whose numbers are not finite (JSON's ``NaN``/``Infinity`` tokens).

    fp8emu train writes ``null`` for a non-finite number and stops a diverged run, so such a
    token means a file from elsewhere or an edited one; means, deviations and t-tests of it
    would be NaN or fail deep in :mod:`statistics`.

    Raises:
        ValueError: the first such record, named by file and line.
    """
    for run in runs:
        for index, record in enumerate(run.epochs):
            bad = [k for k in RECORD_KEYS if isinstance(record.get(k), float) and not math.isfinite(record[k])]
            if bad:
                raise ValueError(f"{_record_line(run, index)} is not an epoch record of fp8emu train: "
                                 + ", ".join(f"{k} is {json.dumps(record[k])}" for k in bad)
                                 + " (the metrics must be finite numbers)")


def group_runs(runs: Sequence[Run]) -> list[RunGroup]:
    """Group ``runs`` by their configuration without the seed, in order of first appearance.

    Labels name the recipe and every configuration entry in which the groups differ (``width=8``).

    Args:
        runs: the runs (:func:`fp8emu.report.load_run`), each at most once.

    Raises:
        ValueError: two runs have the same configuration and the same seed (the same run twice
            would count as two seeds), or an epoch record holds a number that is not finite
            (``NaN``/``Infinity`` in ``metrics.jsonl``; the message names the file and line).
    """
    _check_finite(runs)
    groups: dict[tuple, RunGroup] = {}
    for run in runs:
        group = groups.setdefault(_key(run), RunGroup(_key(run), []))
        twin = next((r for r in group.runs if r.config and r.config.get("seed") == run.config.get("seed")), None)
        if twin is not None:
            raise ValueError(f"{twin.path} and {run.path} have the same configuration and seed "
                             f"{run.config.get('seed')}: pass each run once")
        group.runs.append(run)
    found = list(groups.values())
    keys = [dict(g.key) for g in found]
    varying = [k for k in dict.fromkeys(k for d in keys for k in d)
               if k not in ("recipe", "path") and len({d.get(k) for d in keys}) > 1]
    for group, d in zip(found, keys):
        extra = ", ".join(f"{k}={json.loads(d[k]) if k in d else '–'}" for k in varying)
        group.label = group.runs[0].label + (f" ({extra})" if extra else "")
    return found


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean and the sample standard deviation (``n - 1``; None for one value).

    Args:
        values: the sample.

    Raises:
        ValueError: ``values`` is empty.
    """
    if not values:
        raise ValueError("mean_sd needs at least one value")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


@dataclass(frozen=True)
class Welch:
    """The result of :func:`welch_t_test`: ``diff = mean(a) - mean(b)``, t, degrees of freedom, two-sided p."""

    diff: float
    t: float
    df: float
    p: float


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> Welch | None:
    """Welch's two-sided t-test of ``mean(a) == mean(b)`` without assuming equal variances.

    Args:
        a: the first sample (e.g. a recipe's final accuracies over seeds).
        b: the second sample (e.g. those of ``fp32``).

    Returns:
        The difference of the means, t, the Welch-Satterthwaite degrees of freedom and the
        two-sided p value; None when a sample has fewer than two values or both have zero
        spread (t is undefined then).

    Raises:
        ImportError: SciPy is not installed (``pip install 'fp8emu[train]'``).
    """
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return None
    diff = statistics.fmean(a) - statistics.fmean(b)
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    try:
        from scipy.stats import t as student_t
    except ImportError:
        raise ImportError("the seed statistics' t-test needs SciPy: pip install 'fp8emu[train]'") from None
    return Welch(diff, t, df, float(2 * student_t.sf(abs(t), df)))


def _reference(group: RunGroup, groups: Sequence[RunGroup]) -> RunGroup | None:
    """The ``fp32`` group whose configuration equals ``group``'s apart from the recipe."""
    want = tuple(sorted((k, json.dumps(REFERENCE) if k == "recipe" else v) for k, v in group.key))
    return next((g for g in groups if g.key == want and g is not group), None)


def _pm(values: Sequence[float], scale: float, digits: int) -> str:
    mean, sd = mean_sd(values)
    return f"{scale * mean:.{digits}f}" + ("" if sd is None else f" ± {scale * sd:.{digits}f}")


def _final_table(groups: Sequence[RunGroup], metric: str, scale: float, digits: int) -> list[str]:
    rows = ["| runs | seeds | epoch | mean ± sd | per seed | Δ vs fp32 | Welch t (df) | p |",
            "|---|---|---|---|---|---|---|---|"]
    for g in groups:
        values = g.finals(metric)
        if not values:
            rows.append(f"| {g.label} | – | – | – | – | – | – | – |")
            continue
        seeds = ", ".join(str(run.config.get("seed", "?")) for run, _ in g.at_epoch(g.final_epoch()))
        per_seed = ", ".join(f"{scale * v:.{digits}f}" for v in values)
        ref = _reference(g, groups)
        diff = test = p = "–"
        # the fp32 runs at the same epoch (a group stopped early is not compared with finished runs)
        ref_values = [] if ref is None else [float(rec[metric]) for _, rec in ref.at_epoch(g.final_epoch())]
        if ref_values:
            diff = f"{scale * (statistics.fmean(values) - statistics.fmean(ref_values)):+.{digits}f}"
            welch = welch_t_test(values, ref_values)
            if welch is not None:
                test, p = f"{welch.t:+.2f} ({welch.df:.1f})", ("< 0.001" if welch.p < 1e-3 else f"{welch.p:.2g}")
        rows.append(f"| {g.label} | {seeds} | {g.final_epoch()} | {_pm(values, scale, digits)} | {per_seed} | "
                    f"{diff} | {test} | {p} |")
    return rows


def _epoch_table(groups: Sequence[RunGroup], metric: str, scale: float, digits: int) -> list[str]:
    epochs = sorted({ep for g in groups for ep, _ in g.per_epoch(metric)})
    rows = ["| runs | " + " | ".join(f"epoch {ep}" for ep in epochs) + " |", "|---|" + "---|" * len(epochs)]
    for g in groups:
        cells = dict((ep, _pm(v, scale, digits)) for ep, v in g.per_epoch(metric) if v)
        rows.append(f"| {g.label} | " + " | ".join(cells.get(ep, "–") for ep in epochs) + " |")
    return rows


def _median_stats(group: RunGroup) -> dict[str, dict[str, dict[str, float]]]:
    """``{layer: {class: {kind: median over seeds}}}`` of the final epoch's statistics."""
    per_run = [rec.get("stats") or {} for _, rec in group.at_epoch(group.final_epoch())]
    per_run = [s for s in per_run if s]
    layers = list(dict.fromkeys(name for s in per_run for name in s))
    return {name: {cls: {kind: statistics.median(stat_value(s.get(name, {}).get(cls, {}), kind) for s in per_run)
                         for kind in STAT_KINDS}
                   for cls in STAT_CLASSES}
            for name in layers}


def _underflow_tables(groups: Sequence[RunGroup]) -> list[str]:
    medians = [(g, _median_stats(g)) for g in groups]
    medians = [(g, m) for g, m in medians if m]
    if not medians:
        return []
    layers = list(dict.fromkeys(name for _, m in medians for name in m))
    lines = []
    for cls in STAT_CLASSES:
        lines += [f"{cls.replace('_', ' ').capitalize()}, fraction of nonzero values flushed to zero:", "",
                  "| layer | " + " | ".join(g.label for g, _ in medians) + " |",
                  "|---|" + "---|" * len(medians)]
        for name in layers:
            cells = [f"{100 * m[name][cls]['flushed']:.3f}%" if name in m else "–" for _, m in medians]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        overall = [f"{100 * statistics.median(m[n][cls]['flushed'] for n in m):.3f}%" for _, m in medians]
        lines += ["| **median over layers** | " + " | ".join(overall) + " |", ""]
    return lines


def _trace(run: Run) -> list[float]:
    return [float(s) for e in run.epochs for s in e.get("loss_scale_trace", [])]


def _loss_scale_table(groups: Sequence[RunGroup]) -> list[str]:
    rows = ["| runs | final scale per seed | smallest – largest scale | skipped steps per seed |",
            "|---|---|---|---|"]
    for g in groups:
        traces = [_trace(r) for r in g.runs if _trace(r)]
        if not traces:
            continue
        finals = ", ".join(f"{r.epochs[-1].get('loss_scale', float('nan')):g}" for r in g.runs if r.epochs)
        low, high = min(min(t) for t in traces), max(max(t) for t in traces)
        skipped = ", ".join(str(sum(e.get("skipped_steps", 0) for e in r.epochs)) for r in g.runs)
        rows.append(f"| {g.label} | {finals} | {low:g} – {high:g} | {skipped} |")
    return rows if len(rows) > 2 else []


def _caveat(groups: Sequence[RunGroup]) -> str:
    sizes = sorted({len(g.finals("test_acc")) for g in groups if len(g.finals("test_acc")) > 1})
    if not sizes:
        return ("Each configuration has one finished run only: no spread and no test (train more seeds, "
                "e.g. `compare --seeds 0,1,2`).")
    n = sizes[0]
    try:
        from scipy.stats import t as student_t
        crit = f"{student_t.ppf(0.975, 2 * n - 2):.2f}"
    except ImportError:
        crit = "several"
    return (f"**Low power.** With {n} seeds per configuration{' (or more)' if len(sizes) > 1 else ''} these tests "
            f"see only large effects: with equal spreads a difference reaches p < 0.05 only beyond {crit} "
            f"standard errors ({2 * n - 2} degrees of freedom), about {crit} × sd × √(2/{n}). A p above 0.05 "
            "means that no difference was detected, not that there is none; a small difference with a small p "
            "may still be one of several comparisons (the p values are not corrected for testing several "
            "recipes).")


def seed_sections(groups: Sequence[RunGroup]) -> list[str]:
    """The Markdown lines of the seed statistics for ``groups`` (see the module docstring).

    Args:
        groups: the groups of :func:`group_runs`.
    """
    lines = ["## Seed statistics", "",
             "Runs grouped by their configuration without the seed; mean ± sample standard deviation over the "
             "seeds; Δ vs fp32 is the difference of the means to the `fp32` runs of otherwise equal "
             "configuration, tested with Welch's unequal-variance t-test (two-sided).", "",
             _caveat(groups), "",
             "### Final test accuracy (%)", ""] + _final_table(groups, "test_acc", 100, 2)
    lines += ["", "### Final training loss", ""] + _final_table(groups, "train_loss", 1, 4)
    lines += ["", "### Test accuracy (%) per epoch", ""] + _epoch_table(groups, "test_acc", 100, 2)
    lines += ["", "### Training loss per epoch", ""] + _epoch_table(groups, "train_loss", 1, 4) + [""]
    underflow = _underflow_tables(groups)
    if underflow:
        lines += ["### Per-layer values flushed to zero (median over seeds, last epoch)", ""] + underflow
    scale = _loss_scale_table(groups)
    if scale:
        lines += ["### Loss scale", ""] + scale + [""]
    return lines


def _colors(plt: Any, n: int) -> list[Any]:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _band(ax: Any, group: RunGroup, metric: str, scale: float, color: Any, **kw: Any) -> None:
    points = [(ep, mean_sd(v)) for ep, v in group.per_epoch(metric) if v]
    xs = [ep for ep, _ in points]
    means = [scale * m for _, (m, _) in points]
    sds = [scale * (s or 0.0) for _, (_, s) in points]
    ax.plot(xs, means, color=color, marker="o", ms=3, **kw)
    ax.fill_between(xs, [m - s for m, s in zip(means, sds)], [m + s for m, s in zip(means, sds)], color=color,
                    alpha=0.18, lw=0)
    ax.xaxis.get_major_locator().set_params(integer=True)  # epochs are whole numbers


def plot_seed_stats(plt: Any, groups: Sequence[RunGroup], out: str) -> list[str]:
    """Draw ``accuracy.png``, ``loss.png`` (means with ± sd bands), ``loss_scale.png`` (every seed's
    trace) and ``numerics.png`` (per-layer medians over seeds) into ``out``; return the names written.

    Args:
        plt: ``matplotlib.pyplot`` (imported by the caller, which picks the backend).
        groups: the groups of :func:`group_runs`.
        out: the directory to write the images into.

    Returns:
        The file names written (plots without data are left out).
    """
    colors = _colors(plt, len(groups))
    names = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for g, c in zip(groups, colors):
        _band(ax, g, "test_acc", 100, c, label=f"{g.label} (n={len(g.runs)})")
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy: mean ± sd over seeds")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "accuracy.png"), dpi=110)
    names.append("accuracy.png")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for g, c in zip(groups, colors):
        _band(ax, g, "train_loss", 1, c, label=f"{g.label} train")
        _band(ax, g, "test_loss", 1, c, ls="--", label=f"{g.label} test")
    ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss: mean ± sd over seeds (dashed: test)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "loss.png"), dpi=110)
    names.append("loss.png")
    plt.close("all")
    traced = [(g, c, [_trace(r) for r in g.runs if _trace(r)]) for g, c in zip(groups, colors)]
    traced = [(g, c, ts) for g, c, ts in traced if ts]
    if traced:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for g, c, traces in traced:
            for i, trace in enumerate(traces):
                ax.step(range(1, len(trace) + 1), trace, where="post", color=c, lw=0.8, alpha=0.8,
                        label=g.label if i == 0 else None)
        ax.set(xlabel="step", ylabel="loss scale", yscale="log", title="Loss scale per step (every seed)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "loss_scale.png"), dpi=110)
        plt.close(fig)
        names.append("loss_scale.png")
    medians = [(g, c, _median_stats(g)) for g, c in zip(groups, colors)]
    medians = [(g, c, m) for g, c, m in medians if m]
    if medians:
        layers = list(dict.fromkeys(name for _, _, m in medians for name in m))
        fig, axes = plt.subplots(1, len(STAT_CLASSES), figsize=(11, 2.5 + 0.15 * len(layers) * len(medians) ** 0.5),
                                 squeeze=False)
        height = 0.8 / len(medians)
        for ax, cls in zip(axes[0], STAT_CLASSES):
            for k, (g, c, m) in enumerate(medians):
                vals = [100 * m.get(name, {}).get(cls, {}).get("flushed", 0.0) for name in layers]
                ax.barh([y + k * height for y in range(len(layers))], vals, height=height, color=c, label=g.label)
            ax.set_yticks([y + 0.4 - height / 2 for y in range(len(layers))], layers, fontsize=6)
            ax.invert_yaxis()
            ax.set_xscale("symlog", linthresh=0.01)  # 0.01% .. 100%: a log axis that still shows zeros
            ax.set(xlabel="% of nonzero values flushed to zero", title=f"{cls.replace('_', ' ')}: flushed")
        axes[0][0].legend(fontsize=6)
        fig.suptitle("Per-layer values flushed to zero in the last epoch: median over seeds")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "numerics.png"), dpi=110)
        plt.close(fig)
        names.append("numerics.png")
    return names
