"""Side-by-side report of training runs: ``report.md`` plus PNG plots, from saved metrics only.

A run directory (written by :mod:`fp8emu.train`) holds ``config.json`` and ``metrics.jsonl``,
one JSON object per finished epoch with at least ``epoch``, ``train_loss``, ``train_acc``,
``test_loss``, ``test_acc`` and ``images_per_s``; optionally ``first_step_s`` (the run's first
step, which compiles the kernels and is left out of ``images_per_s``), ``loss_scale_trace``
(the scale at every step of the epoch), ``skipped_steps`` and ``stats`` (``{layer: {tensor
class: {"flushed": f, "overflow": f, "saturated": f, ...}}}``, see :mod:`fp8emu.stats`; metrics
of older versions say ``underflow`` for ``flushed``).

Plots (matplotlib, Agg backend, imported only here): ``loss.png``, ``accuracy.png``,
``loss_scale.png`` and ``numerics.png`` (per-layer flushed / overflow / saturated fractions of
errors and weight gradients, last epoch, on log axes).  Titles name the model, width and data
set; legends sit beside the axes, not on the data.  When some configuration was run with
several seeds, the plots show means with ± sd bands and medians over seeds instead, and a
seed-statistics section follows the table (:mod:`fp8emu.seedstats`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

__all__ = ["Run", "load_run", "write_report", "stat_value", "STAT_CLASSES", "STAT_KINDS"]

STAT_CLASSES = ("errors", "weight_grads")  # the backward tensors the paper worries about
STAT_KINDS = ("flushed", "overflow", "saturated")
_NONE_TEXT = {"flushed": "nothing flushed to zero", "overflow": "no overflow", "saturated": "no saturation"}
# Loss-scale traces often coincide (same recipe family): tell them apart by dash and width.
_STYLES = (("-", 3.0), ("--", 2.2), (":", 2.0), ("-.", 1.6), ((0, (5, 1, 1, 1, 1, 1)), 1.4))


@dataclass
class Run:
    """The saved configuration and per-epoch metrics of one training run."""

    path: str
    config: dict
    epochs: list[dict] = field(default_factory=list)
    name: str = ""  # a label chosen by the report (e.g. with the seed); empty: the default below

    @property
    def label(self) -> str:
        """``name``, else the recipe name, else the directory name."""
        return self.name or str(self.config.get("recipe") or os.path.basename(os.path.normpath(self.path)))

    def best(self) -> dict | None:
        """The epoch record with the highest test accuracy (the earliest on ties)."""
        return max(self.epochs, key=lambda e: e["test_acc"], default=None)


def load_run(path: str | os.PathLike) -> Run:
    """Read ``config.json`` and ``metrics.jsonl`` of a run directory.

    A torn last line (a run killed while appending) is ignored; other bad lines raise.

    Args:
        path: the run directory.

    Raises:
        FileNotFoundError: ``path`` has no ``metrics.jsonl``.
        ValueError: ``config.json`` is not a JSON object, or a line other than the last is not
            valid JSON or not an epoch record (a JSON object with the keys :data:`RECORD_KEYS`,
            numbers); the message names the file and the line.
    """
    path = os.fspath(path)
    metrics = os.path.join(path, "metrics.jsonl")
    if not os.path.exists(metrics):
        raise FileNotFoundError(f"{path} holds no metrics.jsonl: is it a run directory written by fp8emu train?")
    config = {}
    config_path = os.path.join(path, "config.json")
    if os.path.exists(config_path):
        with open(config_path) as f:
            try:
                config = json.load(f)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{config_path}:{exc.lineno} is not valid JSON ({exc.msg})") from None
        if not isinstance(config, dict):
            raise ValueError(f"{config_path} holds a JSON {type(config).__name__}, not the object of settings "
                             "fp8emu train writes")
    with open(metrics) as f:
        lines = [(i + 1, line) for i, line in enumerate(f.read().split("\n")) if line.strip()]
    epochs = []
    for n, (line_no, line) in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if n != len(lines) - 1:
                raise ValueError(f"{metrics}:{line_no} is not valid JSON") from None
            continue
        problem = _record_problem(record)
        if problem:
            raise ValueError(f"{metrics}:{line_no} is not an epoch record of fp8emu train: {problem}")
        epochs.append(record)
    return Run(path, config, epochs)


# What every epoch record holds (the report's table and plots read them).
RECORD_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "images_per_s")


def _record_problem(record: object) -> str | None:
    """Why ``record`` is not an epoch record (None: it is one)."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, expected an object"
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        return f"it lacks {', '.join(missing)}"
    bad = [k for k in RECORD_KEYS if isinstance(record[k], bool) or not isinstance(record[k], int | float)]
    return f"{', '.join(bad)} must be numbers" if bad else None


def _setup(runs: list[Run]) -> str:
    """"ResNet-18 width 8, fashion-mnist (2048 train / 1000 test images)" from the first run's config."""
    cfg = runs[0].config if runs else {}
    if not cfg:
        return ""
    model = str(cfg.get("model", "model")).replace("resnet", "ResNet-")
    text = f"{model} width {cfg['width']}" if cfg.get("width") else model
    if cfg.get("dataset"):
        text += f", {cfg['dataset']}"
        limits = [f"{cfg[k]} {w}" for k, w in (("limit_train", "train"), ("limit_test", "test")) if cfg.get(k)]
        if limits:
            text += f" ({' / '.join(limits)} images)"
    return text


def _finish(plt, fig, ax, title: str, runs: list[Run], path: str, *, legend: bool = True, integer_x: bool = False):
    from matplotlib.ticker import MaxNLocator
    setup = _setup(runs)
    ax.set_title(f"{title}\n{setup}" if setup else title, fontsize=10)
    if integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if legend:  # beside the axes: never on top of the curves
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_curves(plt, runs: list[Run], out: str) -> list[str]:
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for run in runs:
        xs = [e["epoch"] for e in run.epochs]
        line, = ax.plot(xs, [e["train_loss"] for e in run.epochs], marker="o", label=f"{run.label} train")
        ax.plot(xs, [e["test_loss"] for e in run.epochs], ls="--", color=line.get_color(), label=f"{run.label} test")
    ax.set(xlabel="epoch", ylabel="cross-entropy loss")
    _finish(plt, fig, ax, "Loss per epoch", runs, os.path.join(out, "loss.png"), integer_x=True)
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for run in runs:
        ax.plot([e["epoch"] for e in run.epochs], [100 * e["test_acc"] for e in run.epochs], marker="o",
                label=run.label)
    ax.set(xlabel="epoch", ylabel="test accuracy (%)")
    _finish(plt, fig, ax, "Test accuracy per epoch", runs, os.path.join(out, "accuracy.png"), integer_x=True)
    return ["loss.png", "accuracy.png"]


def _plot_loss_scale(plt, runs: list[Run], out: str) -> list[str]:
    traced = [(r, [s for e in r.epochs for s in e.get("loss_scale_trace", [])]) for r in runs]
    traced = [(r, t) for r, t in traced if t]
    if not traced:
        return []
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for k, (run, trace) in enumerate(traced):
        dash, width = _STYLES[k % len(_STYLES)]
        ax.step(range(1, len(trace) + 1), trace, where="post", ls=dash, lw=width, alpha=0.85, label=run.label)
    ax.set(xlabel="step", ylabel="loss scale", yscale="log")
    _finish(plt, fig, ax, "Loss scale per step", runs, os.path.join(out, "loss_scale.png"), integer_x=True)
    return ["loss_scale.png"]


def stat_value(values: dict, kind: str) -> float:
    """One statistic of a class entry; metrics of older versions say "underflow" for "flushed".

    Args:
        values: one class entry of a layer's ``stats`` in ``metrics.jsonl``.
        kind: the statistic (one of :data:`STAT_KINDS`: ``"flushed"``, ``"overflow"``, ``"saturated"``).
    """
    if kind == "flushed" and "flushed" not in values:
        return float(values.get("underflow", 0.0))
    return float(values.get(kind) or 0.0)


def _layer_stats(run: Run) -> dict:
    return run.epochs[-1].get("stats") or {} if run.epochs else {}


def _plot_numerics(plt, runs: list[Run], out: str) -> list[str]:
    with_stats = [r for r in runs if _layer_stats(r)]
    if not with_stats:
        return []
    layers = list(dict.fromkeys(name for r in with_stats for name in _layer_stats(r)))
    fig, axes = plt.subplots(len(STAT_CLASSES), len(STAT_KINDS), figsize=(13, 2.5 + 0.36 * len(layers)),
                             squeeze=False, sharey=True)
    width = 0.8 / len(with_stats)
    for i, cls in enumerate(STAT_CLASSES):
        for j, kind in enumerate(STAT_KINDS):
            ax = axes[i][j]
            drawn = False
            for k, run in enumerate(with_stats):
                stats = _layer_stats(run)
                vals = [100 * stat_value(stats.get(name, {}).get(cls, {}), kind) for name in layers]
                drawn |= any(v > 0 for v in vals)
                ax.barh([y + k * width for y in range(len(layers))], vals, height=width, label=run.label)
            ax.set_yticks([y + 0.4 - width / 2 for y in range(len(layers))], layers, fontsize=6)
            ax.set_title(f"{cls.replace('_', ' ')}: {kind}", fontsize=9)
            if drawn:  # fractions span decades: 0.3% next to 90% needs a log axis
                ax.set_xscale("log")
                ax.set_xlabel(f"% of values {kind} (log)", fontsize=8)
            else:
                ax.set_xticks([])
                ax.text(0.5, 0.5, _NONE_TEXT[kind], transform=ax.transAxes, ha="center", va="center", fontsize=9,
                        color="0.4")
    axes[0][0].invert_yaxis()  # shared: once
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="upper right", ncol=len(with_stats))
    setup = _setup(runs)
    fig.suptitle("Per-layer numerics in the last epoch" + (f": {setup}" if setup else ""), x=0.02, ha="left",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(os.path.join(out, "numerics.png"), dpi=110)
    plt.close(fig)
    return ["numerics.png"]


def _table(runs: list[Run]) -> list[str]:
    rows = ["| run | epochs | final test acc | best test acc (epoch) | final train loss | images/s | "
            "skipped steps | final loss scale |", "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        if not run.epochs:
            rows.append(f"| {run.label} | 0 | – | – | – | – | – | – |")
            continue
        last, best = run.epochs[-1], run.best()
        ips = sum(e["images_per_s"] for e in run.epochs) / len(run.epochs)
        skipped = sum(e.get("skipped_steps", 0) for e in run.epochs)
        scale = last.get("loss_scale")
        rows.append(f"| {run.label} | {last['epoch']} | {100 * last['test_acc']:.2f}% | "
                    f"{100 * best['test_acc']:.2f}% ({best['epoch']}) | {last['train_loss']:.4f} | {ips:.1f} | "
                    f"{skipped} | {'–' if scale is None else f'{scale:g}'} |")
    return rows


def _numerics_table(runs: list[Run]) -> list[str]:
    rows = []
    for run in runs:
        stats = _layer_stats(run)
        if not stats:
            continue
        if not rows:
            rows = ["| run | layer | " + " | ".join(f"{c} {k}" for c in STAT_CLASSES for k in STAT_KINDS) + " |",
                    "|---|---|" + "---|" * (len(STAT_CLASSES) * len(STAT_KINDS))]
        for name, per_class in stats.items():
            cells = [f"{100 * stat_value(per_class.get(c, {}), k):.3f}%" for c in STAT_CLASSES for k in STAT_KINDS]
            rows.append(f"| {run.label} | {name} | " + " | ".join(cells) + " |")
    return rows


def write_report(run_dirs: list[str | os.PathLike], out: str | os.PathLike, *, title: str = "fp8emu comparison",
                 notes: str = "") -> str:
    """Write ``report.md`` and the plots for ``run_dirs`` into ``out``; return the report's path.

    Args:
        run_dirs: run directories (each with ``metrics.jsonl``).
        out: output directory (created if needed).
        title: the report's heading.
        notes: free Markdown appended under "Notes".

    Raises:
        ValueError: ``run_dirs`` is empty, ``out`` is a file, or a run's files are malformed.
        FileNotFoundError: a run directory has no metrics.
    """
    if not run_dirs:
        raise ValueError("run_dirs must name at least one run directory")
    from .seedstats import group_runs, plot_seed_stats, seed_sections

    runs = [load_run(d) for d in run_dirs]
    groups = group_runs(runs)
    seeded = any(len(g.runs) > 1 for g in groups)  # replicates: statistics over seeds replace per-run plots
    for group in groups if seeded else []:
        for run in group.runs:
            run.name = f"{group.label} seed {run.config.get('seed')}"
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"{out} is a file, not a directory for report.md and the plots; choose another --out")
    os.makedirs(out, exist_ok=True)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if seeded:
        plots = plot_seed_stats(plt, groups, out)
    else:
        plots = _plot_curves(plt, runs, out) + _plot_loss_scale(plt, runs, out) + _plot_numerics(plt, runs, out)
    lines = [f"# {title}", ""]
    cfg = runs[0].config
    if cfg:
        keys = ("model", "width", "dataset", "limit_train", "limit_test", "batch_size", "lr", "epochs", "seed")
        same = [k for k in keys if cfg.get(k) is not None and all(r.config.get(k) == cfg[k] for r in runs)]
        seeds = sorted({r.config.get("seed") for r in runs}, key=lambda s: f"{s!s:>12}") if "seed" not in same else []
        lines += ["Setup: " + ", ".join([f"{k}={cfg[k]}" for k in same] +
                                        ([f"seeds={','.join(map(str, seeds))}"] if seeds else [])) + ".", ""]
    lines += ["## Results", ""] + _table(runs) + [""]
    trained = [r for r in runs if r.epochs]  # a run without a finished epoch has no throughput to qualify
    recorded = [r for r in trained if "first_step_s" in r.epochs[0]]  # metrics that time it apart
    first = ("leaving out the first step of each run, which compiles the kernels" if len(recorded) == len(trained) else
             "the first step's kernel compilation included in metrics written before fp8emu timed it apart")
    lines += ["Accuracy is top-1 on the test split; images/s is the mean training throughput over epochs "
              f"(data loading included), {first}.", ""]
    compile_times = [(r.label, r.epochs[0]["first_step_s"]) for r in runs
                     if r.epochs and r.epochs[0].get("first_step_s") is not None]
    if compile_times:
        lines += ["First step (kernel compilation included): "
                  + ", ".join(f"{label} {sec:.1f} s" for label, sec in compile_times) + ".", ""]
    if seeded:
        lines += seed_sections(groups)
    lines += ["## Plots", ""] + [f"![{p[:-4]}]({p})" for p in plots] + [""]
    numerics = [] if seeded else _numerics_table(runs)  # with seeds: the medians over seeds above
    if numerics:
        lines += ["## Per-layer numerics (last epoch)", "",
                  "Flushed: the fraction of the nonzero values of a tensor class that the recipe's format "
                  "flushed to zero; overflow: the fraction of its values that became Inf/NaN; saturated: the "
                  "fraction clamped to the format's largest magnitude as scaled (per tensor, or per block for "
                  "MX and NVFP4). Sampled every `--stats-every` steps and at the last step of every epoch.", ""] + numerics + [""]
    lines += ["## Runs", ""] + [f"- `{r.label}`: `{os.path.relpath(r.path, out)}`" for r in runs] + [""]
    if notes:
        lines += ["## Notes", "", notes.strip(), ""]
    path = os.path.join(out, "report.md")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, path)
    return path
