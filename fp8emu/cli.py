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


def _add_training_arguments(p: argparse.ArgumentParser, *, compare: bool) -> None:
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
    g.add_argument("--schedule", choices=("cosine", "step", "constant"), help=f"LR schedule (default {d['schedule']})")
    g.add_argument("--warmup-epochs", type=_nonneg_int, help="epochs of linear LR warm-up (default 0)")
    g.add_argument("--label-smoothing", type=_fraction, help="cross-entropy label smoothing (default 0)")
    g.add_argument("--seed", type=_nonneg_int, help="seed of initialisation, data order, augmentation and "
                   "stochastic rounding (default 0)")
    g = p.add_argument_group("run")
    g.add_argument("--out", required=not compare, metavar="DIR",
                   help="run directory (checkpoint.npz, metrics.jsonl, config.json)" +
                   ("; each recipe trains in DIR/RECIPE and the report goes to DIR" if compare else ""))
    g.add_argument("--resume", action="store_true", help="continue from DIR's checkpoint (same arguments)")
    g.add_argument("--overwrite", action="store_true", help="replace an earlier run in DIR (without it, a "
                   "directory holding a run is refused); its files stay until the new run's first checkpoint")
    g.add_argument("--backend", choices=("numpy", "torch"), help="training engine: fp8emu's NumPy engine or "
                   "PyTorch with fp8emu's recipes (fp8emu.torch; needs the torch extra); same data, models, recipes "
                   "and metrics (default numpy)")
    g.add_argument("--device", metavar="DEV", help="torch device of --backend torch (default cpu)")
    g.add_argument("--threads", type=_positive_int, help="CPU threads for the kernels (default: all; with "
                   "compare --jobs J: CPUs // J per run)")
    if compare:
        g.add_argument("--seeds", type=_seed_list, metavar="LIST",
                       help="train every recipe once per seed (e.g. 0,1,2 or 0-2) into DIR/RECIPE/seedN; the "
                       "report adds mean ± sd over seeds and Welch t-tests against fp32 (instead of --seed)")
        g.add_argument("--jobs", type=_positive_int, default=1, metavar="J",
                       help="train J recipes at once, each in its own process (default 1: one after another); "
                       "one thread per run is the most efficient use of the cores")
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


def _config(args: argparse.Namespace, recipe: str, out: str) -> dict:
    from .recipes import get_recipe

    opts = _resolve(args)
    try:
        get_recipe(recipe)
    except (KeyError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"--recipe: {exc.args[0] if exc.args else exc}") from None
    opts.pop("recipes")
    opts["recipe"] = recipe
    _check_backend(opts)
    if opts["warmup_epochs"] >= opts["epochs"] and opts["warmup_epochs"]:
        raise argparse.ArgumentTypeError(f"--warmup-epochs ({opts['warmup_epochs']}) must be < --epochs "
                                         f"({opts['epochs']})")
    return {**opts, "out": out}


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
    if threads is None:
        return
    import numba
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
    except ImportError:
        pass


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    config = _config(args, args.recipe or DEFAULTS["recipe"], args.out)
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

    if args.jobs > 1:
        if _train_in_parallel(configs, names, args.jobs, resume=args.resume, overwrite=args.overwrite):
            print("fp8emu compare: interrupted; continue with the same command plus --resume", file=sys.stderr)
            return 130
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


def _train_child(config: dict, resume: bool, overwrite: bool) -> tuple[bool, float | None]:
    """One ``compare --jobs`` run in a worker process: (interrupted, final test accuracy)."""
    from .train import train

    _apply_threads(config["threads"])
    result = train(config, resume=resume, overwrite=overwrite, progress=False)
    return result.interrupted, (result.history[-1].get("test_acc") if result.history else None)


def _train_in_parallel(configs: list[dict], names: list[str], jobs: int, *, resume: bool,
                       overwrite: bool) -> bool:
    """Train the configurations (called ``names`` in messages) ``jobs`` at a time in worker
    processes; True when interrupted.

    Each run gets ``--threads`` or ``CPUs // jobs`` kernel threads.  Ctrl-C reaches the
    workers too (one process group): each finishes its step, writes its checkpoint and stops.
    """
    import concurrent.futures
    import multiprocessing

    jobs = min(jobs, len(configs))
    threads = configs[0]["threads"] or max(1, (os.cpu_count() or 1) // jobs)
    configs = [{**c, "threads": threads} for c in configs]
    interrupted = False
    ctx = multiprocessing.get_context("spawn")     # fresh interpreters: no forked thread pools
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {}
        for c, name in zip(configs, names):
            print(f"fp8emu compare: training {name} -> {c['out']} ({threads} thread(s), log in "
                  f"{os.path.join(c['out'], 'metrics.jsonl')})", flush=True)
            futures[pool.submit(_train_child, c, resume, overwrite)] = name
        pending = set(futures)
        while pending:
            try:
                done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            except KeyboardInterrupt:
                interrupted = True      # the workers got the signal too and are checkpointing
                continue
            for fut in done:
                stopped, acc = fut.result()
                interrupted |= stopped
                state = "interrupted" if stopped else "done"
                acc_text = "" if acc is None else f", test accuracy {acc:.4f}"
                print(f"fp8emu compare: {futures[fut]} {state}{acc_text}", flush=True)
    return interrupted


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    out = args.out or os.path.dirname(os.path.normpath(args.runs[0])) or "."
    try:
        path = write_report(args.runs, out, title=args.title)
    except (FileNotFoundError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
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
