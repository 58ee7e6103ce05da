"""The ``fp8emu`` command line: ``train``, ``compare`` and ``report`` (+ subcommands of other modules).

Subcommands are registered, not hard-wired: every module named in :data:`SUBCOMMAND_MODULES`
defines ``register(subparsers)``, which adds its parsers with
``set_defaults(func=handler)``; ``handler(args)`` returns an exit status (``None`` = 0) and
reports a bad combination of arguments by raising ``argparse.ArgumentTypeError`` (exit 2 with
the subcommand's usage).  Parsers import nothing heavy: handlers import the engine lazily, so
``fp8emu --help`` is instant.

Examples::

    fp8emu train --recipe paper-e5m2 --epochs 5 --width 16 --out runs/e5m2
    fp8emu compare --recipes fp32,paper-e5m2 --epochs 5 --out runs/cmp
    fp8emu compare --preset quick --out runs/quick
    fp8emu report runs/cmp/fp32 runs/cmp/paper-e5m2 --out runs/cmp
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser", "SUBCOMMAND_MODULES", "PRESETS"]

# Modules adding subcommands through ``register(subparsers)``; this module registers its own first.
SUBCOMMAND_MODULES: list[str] = ["fp8emu.verify.cli"]

# Named bundles of defaults for ``compare``/``train``; explicit arguments override them.
PRESETS: dict[str, dict] = {
    # The README's main job: a few minutes on 2 cores, FP32 vs the paper's recipe.
    "quick": {"recipes": "fp32,paper-e5m2", "model": "resnet18", "width": 8, "epochs": 2, "batch_size": 64,
              "limit_train": 2048, "limit_test": 1000, "lr": 0.05},
}

# Defaults used when neither the command line nor a preset gives a value.
DEFAULTS: dict = {
    "model": "resnet18", "recipe": "paper-e5m2", "recipes": "fp32,paper-e5m2", "dataset": "fashion-mnist",
    "data": None, "epochs": 1, "batch_size": 128, "eval_batch_size": 500, "lr": 0.1, "momentum": 0.9,
    "weight_decay": 5e-4, "schedule": "cosine", "warmup_epochs": 0, "seed": 0, "width": 64,
    "limit_train": None, "limit_test": None, "augment": True, "label_smoothing": 0.0, "threads": None,
    "stats_every": 50, "backend": "numpy", "device": "cpu",
}


# Where a user first waits for it (measured on cold caches: see docs/getting-started.md).
_COMPILE_NOTE = ("The first training step compiles fp8emu's Numba kernels: up to a minute on a fresh "
                 "installation, a few seconds once they are cached; images/s leaves that step out.")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text}")
    return value


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {value}")
    return value


def _seed_list(text: str) -> list[int]:
    """``0,1,2`` or ``0-2`` (or a mix: ``0-2,7``) -> distinct seeds in the order given."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        lo, dash, hi = part.partition("-")
        try:
            span = range(int(lo), int(hi) + 1) if dash else [int(part)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected seeds like 0,1,2 or 0-2, got {text!r}") from None
        if not span or min(span) < 0:
            raise argparse.ArgumentTypeError(f"expected seeds >= 0 and ranges LOW-HIGH with LOW <= HIGH, "
                                             f"got {part!r}")
        seeds += span
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct, got {text!r}")
    return seeds


def _add_training_arguments(p: argparse.ArgumentParser, *, compare: bool, sweep: bool = False) -> None:
    """Arguments shared by ``train`` and ``compare``; defaults are None so presets can fill them."""
    from .data import DATASETS  # numpy only
    from .recipes import RECIPES  # already loaded with the package

    d = DEFAULTS
    names = ", ".join(RECIPES)
    g = p.add_argument_group("model and recipe")
    g.add_argument("--model", choices=("resnet18", "resnet34", "resnet50"), help=f"network (default {d['model']})")
    g.add_argument("--width", type=_positive_int, help=f"channels of the first ResNet stage (default {d['width']}; "
                   "the paper's ResNet-18 has 64)")
    if compare:
        g.add_argument("--recipes", help=f"comma-separated recipe names: {names} (default {d['recipes']})")
    else:
        g.add_argument("--recipe", help=f"quantization recipe: {names} (default {d['recipe']})")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=sorted(DATASETS), help=f"data set (default {d['dataset']})")
    g.add_argument("--data", metavar="DIR", help="directory holding the data set files (default: the Debian "
                   "package's /usr/share/datasets/fashion-mnist for fashion-mnist)")
    g.add_argument("--limit-train", type=_positive_int, metavar="N", help="train on the first N images only (default: all)")
    g.add_argument("--limit-test", type=_positive_int, metavar="N", help="evaluate on the first N test images only (default: all)")
    g.add_argument("--no-augment", dest="augment", action="store_const", const=False,
                   help="no random crops / flips (default: augment)")
    g = p.add_argument_group("optimization")
    g.add_argument("--epochs", type=_positive_int, help=f"epochs (default {d['epochs']})")
    g.add_argument("--batch-size", type=_positive_int, help=f"training batch size (default {d['batch_size']})")
    g.add_argument("--eval-batch-size", type=_positive_int, help=f"evaluation batch size (default {d['eval_batch_size']})")
    g.add_argument("--lr", type=_positive_float, help=f"peak learning rate of SGD (default {d['lr']})")
    g.add_argument("--momentum", type=_fraction, help=f"SGD momentum (default {d['momentum']})")
    g.add_argument("--weight-decay", type=_nonneg_float, help=f"L2 weight decay, >= 0 (default {d['weight_decay']})")
    g.add_argument("--schedule", choices=("cosine", "step", "constant"), help=f"LR schedule (default {d['schedule']}; "
                   "step: /10 after each third of training)")
    g.add_argument("--warmup-epochs", type=_nonneg_int, help="epochs of linear LR warm-up, fewer than --epochs; "
                   "cosine schedule only (default 0)")
    g.add_argument("--label-smoothing", type=_fraction, help="cross-entropy label smoothing (default 0)")
    g.add_argument("--seed", type=_nonneg_int, help="seed of initialisation, data order, augmentation and "
                   "stochastic rounding (default 0)")
    g = p.add_argument_group("run")
    g.add_argument("--out", required=not compare, metavar="DIR",
                   help="run directory (checkpoint.npz, metrics.jsonl, config.json)" +
                   ("; each recipe trains in DIR/RECIPE and the report goes to DIR" if compare else ""))
    if not sweep:   # a sweep always resumes its cells
        g.add_argument("--resume", action="store_true", help="continue from DIR's checkpoint (same arguments)")
        g.add_argument("--overwrite", action="store_true", help="replace an earlier run in DIR (without it, a "
                       "directory holding a run is refused); its files stay until the new run's first checkpoint "
                       "(with compare --jobs: they are removed first)")
    g.add_argument("--backend", choices=("numpy", "torch"), help="training engine: fp8emu's NumPy engine or "
                   "PyTorch with fp8emu's recipes (fp8emu.torch; needs the torch extra); same data, models, recipes "
                   "and metrics (default numpy)")
    g.add_argument("--device", metavar="DEV", help="torch device of --backend torch (default cpu)")
    g.add_argument("--threads", type=_positive_int, help="CPU threads for the kernels (default: all; on Dask "
                   "workers (sweep, compare --jobs): 1 per task)")
    if compare:
        g.add_argument("--seeds", type=_seed_list, metavar="LIST",
                       help="train every recipe once per seed (e.g. 0,1,2 or 0-2) into DIR/RECIPE/seedN; the "
                       "report adds mean ± sd over seeds and Welch t-tests against fp32 (instead of --seed)")
    if compare and not sweep:
        g.add_argument("--jobs", type=_positive_int, default=1, metavar="J",
                       help="train J runs at once on a local Dask cluster of J single-threaded workers, as "
                       "'fp8emu sweep --workers J' does (default 1: one after another in this process)")
    if sweep:
        g.add_argument("--vary", type=_axis, action="append", metavar="KEY=V1,V2",
                       help="also sweep over a training option (repeatable): " +
                       ", ".join(k.replace("_", "-") for k in _SWEEP_AXES) + " (e.g. --vary width=8,16)")
        g.add_argument("--scheduler", default="local", metavar="ADDR",
                       help="'local' (default): a LocalCluster on this machine, one kernel thread per worker; or "
                       "the address of a running scheduler, e.g. tcp://host:8786 (dask-jobqueue, dask-ssh)")
        g.add_argument("--workers", type=_positive_int, metavar="N",
                       help="worker processes of the local cluster (default: the CPUs, at most one per cell)")
    g.add_argument("--stats-every", type=_nonneg_int, metavar="K",
                   help=f"collect per-layer numerics statistics every K steps and at the last step of every "
                   f"epoch (0 = never; default {d['stats_every']})")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    used = set(DEFAULTS) - ({"recipe"} if compare else {"recipes"})  # train ignores a preset's recipe list
    p.add_argument("--preset", choices=sorted(PRESETS), help="a named bundle of defaults; explicit arguments win. "
                   + "; ".join(f"{k}: " + ", ".join(f"{key}={v}" for key, v in preset.items() if key in used)
                               for k, preset in PRESETS.items()))


def _resolve(args: argparse.Namespace) -> dict:
    """Command line > preset > :data:`DEFAULTS`."""
    preset = PRESETS.get(getattr(args, "preset", None) or "", {})
    merged = {}
    for key, default in DEFAULTS.items():
        value = getattr(args, key, None)
        merged[key] = value if value is not None else preset.get(key, default)
    return merged


def _config(args: argparse.Namespace, recipe: str, out: str, *, check_schedule: bool = True) -> dict:
    """The run configuration of ``recipe`` into ``out``, validated as ``train`` needs it.

    Args:
        args: the parsed command line.
        recipe: the recipe's name.
        out: the run directory.
        check_schedule: check the LR schedule options (a sweep checks each cell instead, whose
            --vary values replace them).
    """
    from .recipes import get_recipe

    opts = _resolve(args)
    if not recipe.strip():  # `--recipe ''` must not fall back to the default recipe
        raise argparse.ArgumentTypeError("--recipe: empty recipe name; name one of "
                                         f"{', '.join(_recipe_names())}")
    try:
        get_recipe(recipe)
    except (KeyError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"--recipe: {exc.args[0] if exc.args else exc}") from None
    opts.pop("recipes")
    opts["recipe"] = recipe
    _check_backend(opts)
    if check_schedule:
        _check_schedule(opts)
    return {**opts, "out": out}


def _recipe_names() -> list[str]:
    from .recipes import RECIPES
    return list(RECIPES)


def _check_schedule(opts: dict, where: str = "") -> None:
    """The LR schedule rules of ``train``: warm-up only with the cosine schedule, and shorter than
    the run.  ``where`` prefixes the message (a sweep cell's name)."""
    warmup, epochs, schedule = opts["warmup_epochs"], opts["epochs"], opts["schedule"]
    if warmup and schedule != "cosine":
        raise argparse.ArgumentTypeError(f"{where}--warmup-epochs {warmup} needs --schedule cosine: the {schedule} "
                                         "schedule has no warm-up (use --warmup-epochs 0 or --schedule cosine)")
    if warmup and warmup >= epochs:
        raise argparse.ArgumentTypeError(f"{where}--warmup-epochs ({warmup}) must be < --epochs ({epochs})")


def _check_backend(opts: dict) -> None:
    """Refuse what a backend cannot run before anything is written."""
    from .recipes import get_recipe

    if opts["backend"] != "torch":
        if opts["device"] != "cpu":
            raise argparse.ArgumentTypeError(f"--device {opts['device']} needs --backend torch")
        return
    try:
        import torch
        import fp8emu.torch  # noqa: F401
    except ImportError as exc:
        raise argparse.ArgumentTypeError(f"--backend torch: {exc} (pip install 'fp8emu[torch]')") from None
    try:
        torch.device(opts["device"])
    except RuntimeError as exc:
        raise argparse.ArgumentTypeError(f"--device: {exc}") from None
    recipe = get_recipe(opts["recipe"])
    if recipe.accumulator is not None:
        raise argparse.ArgumentTypeError(f"--backend torch: recipe {recipe.name} sums with {recipe.accumulator.name}; "
                                         "PyTorch's GEMMs sum in float32 (use --backend numpy)")


def _apply_threads(threads: int | None) -> None:
    from .cluster import limit_threads
    limit_threads(threads)


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    config = _config(args, DEFAULTS["recipe"] if args.recipe is None else args.recipe, args.out)
    _apply_threads(config["threads"])
    result = train(config, resume=args.resume, overwrite=args.overwrite,
                   progress=config.pop("progress", args.progress))
    return 130 if result.interrupted else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    opts = _resolve(args)
    recipes = [r.strip() for r in str(opts["recipes"]).split(",") if r.strip()]
    if not recipes or len(set(recipes)) != len(recipes):
        raise argparse.ArgumentTypeError(f"--recipes must list distinct recipe names, got {opts['recipes']!r}")
    out = args.out or (f"runs/{args.preset}" if args.preset else None)
    if out is None:
        raise argparse.ArgumentTypeError("--out DIR is required (or --preset, which defaults to runs/PRESET)")
    if args.seeds is not None and args.seed is not None:
        raise argparse.ArgumentTypeError("give --seed or --seeds, not both")
    if args.seeds is None:
        configs = [_config(args, r, os.path.join(out, r)) for r in recipes]  # validate every name first
        names = recipes
    else:
        configs = [{**_config(args, r, os.path.join(out, r, f"seed{s}")), "seed": s} for r in recipes
                   for s in args.seeds]
        names = [f"{r} seed {s}" for r in recipes for s in args.seeds]
    from .report import write_report
    from .train import train

    if args.jobs > 1:   # the sweep's Dask path on a local cluster of J workers
        from .sweep import Cell
        if not args.resume:
            _start_over(configs, overwrite=args.overwrite)
        status = _run_on_dask([Cell(n, c) for n, c in zip(names, configs)], out, "local", args.jobs,
                              progress=args.progress, prog="fp8emu compare")
        if status:
            return status
    else:
        _apply_threads(configs[0]["threads"])
        for config, name in zip(configs, names):
            print(f"fp8emu compare: training {name} -> {config['out']}", flush=True)
            result = train(config, resume=args.resume, overwrite=args.overwrite, progress=args.progress)
            if result.interrupted:
                print("fp8emu compare: interrupted; continue with the same command plus --resume", file=sys.stderr)
                return 130
    title = f"fp8emu: {' vs '.join(recipes)}"
    if opts["backend"] != "numpy":
        title += f" ({opts['backend']} backend on {opts['device']})"
    if args.seeds is not None:
        title += f", seeds {','.join(map(str, args.seeds))}"
    path = write_report([c["out"] for c in configs], out, title=title)
    print(f"fp8emu compare: report written to {path}")
    return 0


def _start_over(configs: list[dict], *, overwrite: bool) -> None:
    """``compare --jobs`` without --resume: the Dask path always resumes (so that a retried task
    continues from its checkpoint), hence an earlier run is refused here as ``train`` would, or,
    with --overwrite, removed before the runs start."""
    from .train import RUN_FILES

    for c in configs:
        found = [f for f in RUN_FILES[:2] if os.path.exists(os.path.join(c["out"], f))
                 and os.path.getsize(os.path.join(c["out"], f)) > 0]
        if found and not overwrite:
            raise argparse.ArgumentTypeError(f"{c['out']} holds an earlier run ({' and '.join(found)}); continue it "
                                             "with --resume, replace it with --overwrite, or choose another --out")
        for f in found:
            print(f"fp8emu: {c['out']} holds an earlier run; removing its {f} (--overwrite)", flush=True)
            os.remove(os.path.join(c["out"], f))


def _run_on_dask(cells: list, out: str, scheduler: str, workers: int | None, *, progress: bool, prog: str,
                 threads: int | None = None) -> int:
    """Train ``cells`` through :func:`fp8emu.sweep.run_cells`; 0, or an exit status after a message."""
    from .checkpoint import CheckpointError
    from .cluster import connect
    from .sweep import run_cells

    try:
        with connect(scheduler, workers=min(workers or os.cpu_count() or 1, len(cells)), prog=prog) as client:
            run_cells(client, cells, out, progress=progress, prog=prog)
    except KeyboardInterrupt:
        again = "the same command plus --resume" if prog == "fp8emu compare" else "the same command"
        print(f"{prog}: interrupted; {again} resumes the unfinished runs from their last finished epoch "
              "(finished runs are skipped)", file=sys.stderr)
        return 130
    except (RuntimeError, CheckpointError, ValueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    return 0


# Options a sweep can vary (--vary KEY=V1,V2,...): their parsers.
_SWEEP_AXES: dict = {
    "width": _positive_int, "epochs": _positive_int, "lr": _positive_float, "limit_train": _positive_int,
    "limit_test": _positive_int, "batch_size": _positive_int, "momentum": _fraction, "weight_decay": _nonneg_float,
    "label_smoothing": _fraction, "warmup_epochs": _nonneg_int, "schedule": str, "model": str,
}


def _axis(text: str) -> tuple[str, list]:
    """``width=8,16`` -> ("width", [8, 16])."""
    key, eq, values = text.partition("=")
    key = key.strip().replace("-", "_")
    if not eq or key not in _SWEEP_AXES:
        raise argparse.ArgumentTypeError(f"expected KEY=V1,V2,... with KEY one of "
                                         f"{', '.join(k.replace('_', '-') for k in _SWEEP_AXES)}; got {text!r}")
    try:
        parsed = [_SWEEP_AXES[key](v.strip()) for v in values.split(",") if v.strip()]
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise argparse.ArgumentTypeError(f"--vary {key}: {exc}") from None
    if not parsed or len(set(parsed)) != len(parsed):
        raise argparse.ArgumentTypeError(f"--vary {key}: expected distinct values, got {values!r}")
    return key, parsed


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import expand_grid

    opts = _resolve(args)
    recipes = [r.strip() for r in str(opts["recipes"]).split(",") if r.strip()]
    if not recipes or len(set(recipes)) != len(recipes):
        raise argparse.ArgumentTypeError(f"--recipes must list distinct recipe names, got {opts['recipes']!r}")
    if args.seeds is not None and args.seed is not None:
        raise argparse.ArgumentTypeError("give --seed or --seeds, not both")
    seeds = args.seeds if args.seeds is not None else [opts["seed"]]
    axes = dict(args.vary or [])
    if len(axes) != len(args.vary or []):
        raise argparse.ArgumentTypeError("--vary: each option at most once")
    for key in axes:
        if getattr(args, key, None) is not None:
            raise argparse.ArgumentTypeError(f"give --{key.replace('_', '-')} or --vary {key}=..., not both")
    for r in recipes:     # validates every recipe and the backend before anything starts
        _config(args, r, args.out, check_schedule=False)
    base = _config(args, recipes[0], args.out, check_schedule=False)
    for key, values in axes.items():
        for v in values:
            if key == "schedule" and v not in ("cosine", "step", "constant"):
                raise argparse.ArgumentTypeError(f"--vary schedule: unknown schedule {v!r}")
            if key == "model" and v not in ("resnet18", "resnet34", "resnet50"):
                raise argparse.ArgumentTypeError(f"--vary model: unknown model {v!r}")
    try:
        cells = expand_grid(base, recipes, seeds, axes, args.out)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    for cell in cells:  # every cell with the rules of `train`, before any of them trains
        _check_schedule(cell.config, f"sweep cell '{cell.name}': " if axes else "")
    status = _run_on_dask(cells, args.out, args.scheduler, args.workers, progress=args.progress, prog="fp8emu sweep")
    if status:
        return status
    from .report import write_report

    title = f"fp8emu sweep: {' vs '.join(recipes)}, seeds {','.join(map(str, seeds))}"
    if axes:
        title += "; " + "; ".join(f"{k} {','.join(map(str, v))}" for k, v in axes.items())
    try:
        path = write_report([c.config["out"] for c in cells], args.out, title=title)
    except (OSError, ValueError) as exc:
        print(f"fp8emu sweep: error: {_report_failure(cells, args.out, exc)}", file=sys.stderr)
        return 1
    print(f"fp8emu sweep: report written to {path}")
    return 0


def _report_failure(cells: list, out: str, exc: OSError | ValueError) -> str:
    """Why ``fp8emu sweep`` could not write its report, and what to do (the cells are trained)."""
    missing = [c.config["out"] for c in cells if not os.path.exists(os.path.join(c.config["out"], "metrics.jsonl"))]
    if isinstance(exc, FileNotFoundError) and missing:   # a cell's run files were deleted, or never written
        return (f"cannot write the report: no metrics.jsonl in {', '.join(missing)}; run the same command again to "
                "complete those cells from their checkpoints (finished cells are skipped), or remove their "
                "directories to train them again")
    if isinstance(exc, ValueError):                       # a run's files are malformed (the message names it)
        return f"cannot write the report: {exc}"
    return (f"cannot write the report into {out}: {exc.strerror or exc} ({exc.filename or out}); the cells are "
            "trained: `fp8emu report` writes the report elsewhere (--out)")


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    out = args.out or os.path.dirname(os.path.normpath(args.runs[0])) or "."
    try:
        path = write_report(args.runs, out, title=args.title)
    except (FileNotFoundError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    except OSError as exc:  # an unwritable --out, a directory in the way of report.md, ...
        raise argparse.ArgumentTypeError(f"cannot write the report into {out}: {exc.strerror or exc} "
                                         f"({exc.filename or out}); choose another --out") from None
    print(f"fp8emu report: written to {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``compare`` and ``report``."""
    p = subparsers.add_parser("train", help="train one model under one recipe",
                              description="Train a model under a quantization recipe; checkpoints every epoch "
                              "and on Ctrl-C, --resume continues bit for bit. " + _COMPILE_NOTE)
    _add_training_arguments(p, compare=False)
    p.set_defaults(func=_cmd_train, _parser=p)
    p = subparsers.add_parser("compare", help="train several recipes with the same seed and data, then report",
                              description="Train each recipe with the same seed and data order into OUT/RECIPE "
                              "(with --seeds: once per seed into OUT/RECIPE/seedN), then write OUT/report.md with "
                              "plots (with --seeds: mean ± sd over seeds and Welch t-tests against fp32). "
                              + _COMPILE_NOTE)
    _add_training_arguments(p, compare=True)
    p.set_defaults(func=_cmd_compare, _parser=p)
    p = subparsers.add_parser("sweep", help="a grid of training runs (recipes x seeds x options) on Dask",
                              description="Train every cell of recipes x seeds x --vary options, each in its own "
                              "directory OUT/[AXES/]RECIPE/seedN, as Dask tasks on a local cluster or an existing "
                              "scheduler; then write OUT/report.md with statistics over seeds.  Runs checkpoint "
                              "each epoch: a task whose worker dies resumes from its checkpoint, and the same "
                              "command run again skips finished cells and resumes the others.  The output "
                              "directory and the data set must be visible to every worker (a shared file system).")
    _add_training_arguments(p, compare=True, sweep=True)
    p.set_defaults(func=_cmd_sweep, _parser=p)
    p = subparsers.add_parser("report", help="redraw report.md and plots from saved runs",
                              description="Write report.md and PNG plots from the metrics of finished runs.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (each with metrics.jsonl)")
    p.add_argument("--out", metavar="DIR", help="where report.md and the plots go (default: the first run's parent)")
    p.add_argument("--title", default="fp8emu comparison", help="report heading")
    p.set_defaults(func=_cmd_report, _parser=p)


def build_parser() -> argparse.ArgumentParser:
    """The full parser: this module's subcommands, then those of :data:`SUBCOMMAND_MODULES`."""
    import fp8emu  # the package root, for its version

    parser = argparse.ArgumentParser(prog="fp8emu", description="Bit-exact FP8 emulation: train, compare, report.")
    parser.add_argument("--version", action="version", version=f"fp8emu {fp8emu.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(subparsers)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fp8emu`` console script and ``python -m fp8emu``; returns the exit status."""
    from .checkpoint import CheckpointError
    from .data import DatasetError
    from .train import RunError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except argparse.ArgumentTypeError as exc:
        getattr(args, "_parser", parser).error(str(exc))  # exits 2
    except (DatasetError, CheckpointError, RunError) as exc:
        print(f"fp8emu {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return int(status or 0)
