#!/usr/bin/env python3
"""Run the reproduction grid (widths x recipes x seeds) as concurrent ``fp8emu train`` processes,
resumably, within a time budget; pack every run's config.json and metrics.jsonl.

Made for a borrowed GPU machine whose commands may run at most a few minutes each and whose
files survive only while it is held: call it again and again with the same arguments; each call

1. starts CUDA MPS (``--mps``: ``nvidia-cuda-mps-control -d``, so that the processes share the
   GPU at once instead of time-slicing it) unless it is already running;
2. starts the unfinished runs in priority order (the paper's width first; ``fp32`` and
   ``paper-e5m2`` before the ablations), at most ``--max-procs`` at a time, each
   ``fp8emu train ... --resume`` in ``OUT/w{width}/{recipe}/seed{seed}`` with its log in
   ``train.log`` there (``--resume`` continues a checkpoint and starts a run that has none);
3. ``--budget`` seconds after its start, sends SIGINT to the runs still going: each finishes its
   step, writes its checkpoint and exits; after ``--grace`` more seconds the stragglers are
   killed (their last end-of-epoch checkpoint stays);
4. packs ``config.json``, ``metrics.jsonl`` and the last lines of ``train.log`` of every run
   (never a checkpoint) plus ``status.json`` into ``--pack`` (a ``.tar.gz``), prints a table of
   the runs, and exits 0 when every run has finished, 3 when some have not (call again).

Example (the device command; the data and a NumPy wheel carried along)::

    python3 tools/repro_gpu.py --out /tmp/repro --data /tmp/fmnist --mps --budget 520 \\
        --pack "$OUT/results.tar.gz"

and on a CPU, a tiny check of the same machinery::

    python tools/repro_gpu.py --out /tmp/rt --widths 2 --seeds 0,1 --epochs 2 --limit-train 64 \\
        --limit-test 32 --batch-size 16 --train-args "--backend torch --device cpu" --budget 60
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import tarfile
import time

RECIPES = ("fp32", "paper-e5m2", "paper-e5m2-nols", "paper-e5m2-rne", "paper-e5m2-nols-rne")
PRIORITY_RECIPES = ("fp32", "paper-e5m2")  # the paper's comparison first, then its ablations


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def run_grid(widths: list[int], recipes: list[str], seeds: list[int]) -> list[tuple[int, str, int]]:
    """``(width, recipe, seed)`` in priority order: widths as given; within a width the
    :data:`PRIORITY_RECIPES` (all seeds), then the other recipes (all seeds)."""
    first = [r for r in recipes if r in PRIORITY_RECIPES]
    rest = [r for r in recipes if r not in PRIORITY_RECIPES]
    return [(w, r, s) for w in widths for group in (first, rest) for r in group for s in seeds]


def run_dir(out: str, width: int, recipe: str, seed: int) -> str:
    return os.path.join(out, f"w{width}", recipe, f"seed{seed}")


def epochs_done(path: str) -> int:
    """Complete lines of ``metrics.jsonl`` (a torn last line does not count)."""
    try:
        with open(os.path.join(path, "metrics.jsonl")) as f:
            lines = [line for line in f.read().split("\n") if line.strip()]
    except FileNotFoundError:
        return 0
    done = 0
    for line in lines:
        try:
            json.loads(line)
            done += 1
        except json.JSONDecodeError:
            break
    return done


def start_mps(pipe_dir: str) -> None:
    """Start the MPS control daemon (once per machine); its clients find it through the pipe directory."""
    os.environ.setdefault("CUDA_MPS_PIPE_DIRECTORY", pipe_dir)
    os.environ.setdefault("CUDA_MPS_LOG_DIRECTORY", pipe_dir + "-log")
    for d in (os.environ["CUDA_MPS_PIPE_DIRECTORY"], os.environ["CUDA_MPS_LOG_DIRECTORY"]):
        os.makedirs(d, exist_ok=True)
    if os.path.exists(os.path.join(os.environ["CUDA_MPS_PIPE_DIRECTORY"], "control")):
        print("repro: MPS control daemon already running", flush=True)
        return
    res = subprocess.run(["nvidia-cuda-mps-control", "-d"], capture_output=True, text=True)
    print(f"repro: nvidia-cuda-mps-control -d -> {res.returncode} {res.stdout.strip()} {res.stderr.strip()}",
          flush=True)


def _default_sigint() -> None:
    """In a run's process before it starts: SIGINT back to its default.  A driver started in the
    background of a shell (``cmd &``, nohup) ignores SIGINT, and an ignored signal stays ignored
    across exec: its runs would then miss the driver's request to checkpoint and stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def train_command(args: argparse.Namespace, width: int, recipe: str, seed: int, out: str) -> list[str]:
    cmd = [sys.executable, "-m", "fp8emu", "train", "--recipe", recipe, "--width", str(width), "--seed", str(seed),
           "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
           "--momentum", "0.9", "--weight-decay", "5e-4", "--schedule", "cosine", "--threads", str(args.threads),
           "--no-progress", "--resume", "--out", out]
    if args.data:
        cmd += ["--data", args.data]
    if args.limit_train:
        cmd += ["--limit-train", str(args.limit_train)]
    if args.limit_test:
        cmd += ["--limit-test", str(args.limit_test)]
    return cmd + shlex.split(args.train_args)


def _tail(path: str, n: int = 40) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except FileNotFoundError:
        return ""


def status(args: argparse.Namespace, grid: list[tuple[int, str, int]]) -> list[dict]:
    rows = []
    for width, recipe, seed in grid:
        path = run_dir(args.out, width, recipe, seed)
        rec: dict = {"width": width, "recipe": recipe, "seed": seed, "dir": os.path.relpath(path, args.out),
                     "epochs_done": epochs_done(path), "epochs": args.epochs}
        if rec["epochs_done"]:
            with open(os.path.join(path, "metrics.jsonl")) as f:
                last = json.loads(f.read().split("\n")[rec["epochs_done"] - 1])
            rec |= {"test_acc": last.get("test_acc"), "train_loss": last.get("train_loss"),
                    "epoch_time_s": last.get("epoch_time_s")}
        rows.append(rec)
    return rows


def pack(args: argparse.Namespace, rows: list[dict]) -> None:
    """config.json, metrics.jsonl, train.log's tail of every run and status.json -> args.pack."""
    os.makedirs(os.path.dirname(os.path.abspath(args.pack)), exist_ok=True)
    tmp = args.pack + ".tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        for row in rows:
            path = os.path.join(args.out, row["dir"])
            for name in ("config.json", "metrics.jsonl"):
                if os.path.exists(os.path.join(path, name)):
                    tar.add(os.path.join(path, name), arcname=os.path.join(row["dir"], name))
            log = _tail(os.path.join(path, "train.log")).encode()
            if log:
                info = tarfile.TarInfo(os.path.join(row["dir"], "train.log.tail"))
                info.size = len(log)
                tar.addfile(info, io.BytesIO(log))
        blob = json.dumps(rows, indent=1).encode()
        info = tarfile.TarInfo("status.json")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    os.replace(tmp, args.pack)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="where the run directories live (persistent while the machine is)")
    p.add_argument("--data", help="directory of the Fashion-MNIST IDX files")
    p.add_argument("--widths", type=_ints, default=[64, 8])
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--seeds", type=_ints, default=[0, 1, 2])
    p.add_argument("--first", type=int, help="only the first N runs of the priority order")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--limit-train", type=int)
    p.add_argument("--limit-test", type=int)
    p.add_argument("--train-args", default="--backend torch --device cuda", help="more arguments of fp8emu train")
    p.add_argument("--max-procs", type=int, default=30, help="runs at once")
    p.add_argument("--threads", type=int, default=1, help="CPU kernel threads per run (the recipes' rounding "
                   "runs on the host in the torch backend)")
    p.add_argument("--gpus", type=int, default=1, help="spread the runs over this many GPUs (CUDA_VISIBLE_DEVICES)")
    p.add_argument("--budget", type=float, default=520.0, help="seconds until the runs are told to checkpoint")
    p.add_argument("--grace", type=float, default=40.0, help="seconds they get for it before being killed")
    p.add_argument("--mps", action="store_true", help="start CUDA MPS first")
    p.add_argument("--pack", help="write the packed metrics here (.tar.gz)")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    grid = run_grid(args.widths, [r.strip() for r in args.recipes.split(",") if r.strip()], args.seeds)
    grid = grid[:args.first] if args.first else grid
    todo = [g for g in grid if epochs_done(run_dir(args.out, *g)) < args.epochs]
    print(f"repro: {len(grid) - len(todo)} of {len(grid)} runs finished; starting up to {args.max_procs} of "
          f"{len(todo)} at a time", flush=True)
    if args.mps and todo:
        start_mps("/tmp/fp8emu-mps")
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS="1",
               NUMBA_NUM_THREADS=str(args.threads))
    running: dict[subprocess.Popen, tuple] = {}
    stopping, started = False, 0
    while todo or running:
        while todo and len(running) < args.max_procs and not stopping:
            width, recipe, seed = todo.pop(0)
            path = run_dir(args.out, width, recipe, seed)
            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, "train.log"), "a") as log:
                log.write(f"=== repro call at {time.strftime('%H:%M:%S')}\n")
                gpu = {"CUDA_VISIBLE_DEVICES": str(started % args.gpus)} if args.gpus > 1 else {}
                proc = subprocess.Popen(train_command(args, width, recipe, seed, path), stdout=log,
                                        stderr=subprocess.STDOUT, env=env | gpu, preexec_fn=_default_sigint)
            running[proc] = (width, recipe, seed)
            started += 1
        for proc in [q for q in running if q.poll() is not None]:
            width, recipe, seed = running.pop(proc)
            print(f"repro: w{width} {recipe} seed {seed} exited {proc.returncode} "
                  f"({epochs_done(run_dir(args.out, width, recipe, seed))}/{args.epochs} epochs) "
                  f"at {time.monotonic() - t0:.0f} s", flush=True)
            if proc.returncode not in (0, 130, -signal.SIGINT):  # a failure, not a requested stop: show why
                print(_tail(os.path.join(run_dir(args.out, width, recipe, seed), "train.log"), 15), flush=True)
        elapsed = time.monotonic() - t0
        if not stopping and elapsed > args.budget and running:
            print(f"repro: budget reached at {elapsed:.0f} s: asking {len(running)} runs to checkpoint", flush=True)
            stopping, todo = True, []
            for proc in running:
                proc.send_signal(signal.SIGINT)
        if stopping and elapsed > args.budget + args.grace:
            for proc in running:
                print(f"repro: killing w{running[proc][0]} {running[proc][1]} seed {running[proc][2]}", flush=True)
                proc.kill()
            for proc in running:
                proc.wait()
            running.clear()
        time.sleep(0.5)
    rows = status(args, grid)
    if args.pack:
        pack(args, rows)
    print(f"{'run':<34} {'epochs':>6} {'test acc':>9} {'train loss':>10} {'s/epoch':>8}")
    for r in rows:
        acc = "" if r.get("test_acc") is None else f"{100 * r['test_acc']:.2f}"
        loss = "" if r.get("train_loss") is None else f"{r['train_loss']:.4f}"
        ept = "" if r.get("epoch_time_s") is None else f"{r['epoch_time_s']:.0f}"
        print(f"{r['dir']:<34} {r['epochs_done']:>3}/{r['epochs']:<2} {acc:>9} {loss:>10} {ept:>8}")
    unfinished = sum(r["epochs_done"] < r["epochs"] for r in rows)
    print(f"repro: {len(rows) - unfinished} of {len(rows)} runs finished after {time.monotonic() - t0:.0f} s"
          + ("" if not unfinished else "; call again to continue"), flush=True)
    return 3 if unfinished else 0


if __name__ == "__main__":
    sys.exit(main())
