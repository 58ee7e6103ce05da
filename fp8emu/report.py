"""Side-by-side report of training runs: ``report.md`` plus PNG plots, from saved metrics only.

A run directory (written by :mod:`fp8emu.train`) holds ``config.json`` and ``metrics.jsonl``,
one JSON object per finished epoch with at least ``epoch``, ``train_loss``, ``train_acc``,
``test_loss``, ``test_acc`` and ``images_per_s``; optionally ``loss_scale_trace`` (the scale at
every step of the epoch), ``skipped_steps`` and ``stats`` (``{layer: {tensor class: {"underflow":
f, "overflow": f, ...}}}``: the fraction of nonzero values flushed to zero, and of all values that
overflowed, for that tensor class in that layer).

Plots (matplotlib, Agg backend, imported only here): ``loss.png``, ``accuracy.png``,
``loss_scale.png`` and ``numerics.png`` (per-layer underflow/overflow of errors and weight
gradients, last epoch).  When some configuration was run with several seeds, the plots show
means with ± sd bands and medians over seeds instead, and a seed-statistics section follows
the table (:mod:`fp8emu.seedstats`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

__all__ = ["Run", "load_run", "write_report"]

STAT_CLASSES = ("errors", "weight_grads")  # the backward tensors the paper worries about
STAT_KINDS = ("underflow", "overflow")


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

    Raises:
        FileNotFoundError: ``path`` has no ``metrics.jsonl``.
        ValueError: a line other than the last is not valid JSON.
    """
    path = os.fspath(path)
    metrics = os.path.join(path, "metrics.jsonl")
    if not os.path.exists(metrics):
        raise FileNotFoundError(f"{path} holds no metrics.jsonl: is it a run directory written by fp8emu train?")
    config = {}
    if os.path.exists(os.path.join(path, "config.json")):
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
    with open(metrics) as f:
        lines = [line for line in f.read().split("\n") if line.strip()]
    epochs = []
    for i, line in enumerate(lines):
        try:
            epochs.append(json.loads(line))
        except json.JSONDecodeError:
            if i != len(lines) - 1:
                raise ValueError(f"{metrics}:{i + 1} is not valid JSON") from None
    return Run(path, config, epochs)


def _plot_curves(plt, runs: list[Run], out: str) -> list[str]:
    names = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        xs = [e["epoch"] for e in run.epochs]
        line, = ax.plot(xs, [e["train_loss"] for e in run.epochs], marker="o", label=f"{run.label} train")
        ax.plot(xs, [e["test_loss"] for e in run.epochs], ls="--", color=line.get_color(), label=f"{run.label} test")
    ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss per epoch")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "loss.png"), dpi=110)
    names.append("loss.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        ax.plot([e["epoch"] for e in run.epochs], [100 * e["test_acc"] for e in run.epochs], marker="o",
                label=run.label)
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy per epoch")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "accuracy.png"), dpi=110)
    names.append("accuracy.png")
    plt.close("all")
    return names


def _plot_loss_scale(plt, runs: list[Run], out: str) -> list[str]:
    traced = [(r, [s for e in r.epochs for s in e.get("loss_scale_trace", [])]) for r in runs]
    traced = [(r, t) for r, t in traced if t]
    if not traced:
        return []
    fig, ax = plt.subplots(figsize=(6, 4))
    for run, trace in traced:
        ax.step(range(1, len(trace) + 1), trace, where="post", label=run.label)
    ax.set(xlabel="step", ylabel="loss scale", yscale="log", title="Loss scale per step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "loss_scale.png"), dpi=110)
    plt.close(fig)
    return ["loss_scale.png"]


def _layer_stats(run: Run) -> dict:
    return run.epochs[-1].get("stats") or {} if run.epochs else {}


def _plot_numerics(plt, runs: list[Run], out: str) -> list[str]:
    with_stats = [r for r in runs if _layer_stats(r)]
    if not with_stats:
        return []
    layers = list(dict.fromkeys(name for r in with_stats for name in _layer_stats(r)))
    fig, axes = plt.subplots(len(STAT_CLASSES), len(STAT_KINDS), figsize=(11, 2.5 + 0.18 * len(layers) * 2),
                             squeeze=False)
    width = 0.8 / len(with_stats)
    for i, cls in enumerate(STAT_CLASSES):
        for j, kind in enumerate(STAT_KINDS):
            ax = axes[i][j]
            for k, run in enumerate(with_stats):
                stats = _layer_stats(run)
                vals = [100 * stats.get(name, {}).get(cls, {}).get(kind, 0.0) for name in layers]
                ax.barh([y + k * width for y in range(len(layers))], vals, height=width, label=run.label)
            ax.set_yticks([y + 0.4 - width / 2 for y in range(len(layers))], layers, fontsize=6)
            ax.invert_yaxis()
            ax.set(xlabel=f"% of values ({kind})", title=f"{cls.replace('_', ' ')}: {kind}")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Per-layer underflow / overflow in the last epoch")
    fig.tight_layout()
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
            cells = [f"{100 * per_class.get(c, {}).get(k, 0.0):.3f}%" for c in STAT_CLASSES for k in STAT_KINDS]
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
        ValueError: ``run_dirs`` is empty.
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
    lines += ["Accuracy is top-1 on the test split; images/s is the mean training throughput over epochs "
              "(data loading included).", ""]
    if seeded:
        lines += seed_sections(groups)
    lines += ["## Plots", ""] + [f"![{p[:-4]}]({p})" for p in plots] + [""]
    numerics = [] if seeded else _numerics_table(runs)  # with seeds: the medians over seeds above
    if numerics:
        lines += ["## Per-layer underflow / overflow (last epoch)", "",
                  "Underflow: the fraction of the nonzero values of a tensor class that the recipe's format "
                  "flushed to zero; overflow: the fraction of its values that became Inf/NaN or were clamped "
                  "to the format's largest magnitude. Sampled every `--stats-every` steps.", ""] + numerics + [""]
    lines += ["## Runs", ""] + [f"- `{r.label}`: `{os.path.relpath(r.path, out)}`" for r in runs] + [""]
    if notes:
        lines += ["## Notes", "", notes.strip(), ""]
    path = os.path.join(out, "report.md")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, path)
    return path
