"""``fp8emu vectors``, ``fp8emu check`` and ``fp8emu crosscheck`` (registered into :mod:`fp8emu.cli`).

Examples::

    fp8emu vectors --source float32 --format e4m3fn --rounding nearest_even --level 1 --out e4m3fn.txt
    fp8emu vectors --source float16 --format e5m2 --saturate --level exhaustive --out e5m2_sat.npz
    fp8emu vectors --format e4m3fn --b-format e5m2 --accumulator fp32_sequential --k 64 --level 2 --out dot.txt
    fp8emu check --vectors e4m3fn.txt --results dut.txt --max-failures 20
    fp8emu crosscheck --out docs/results/crosscheck.md
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def _cmd_dot_vectors(args: argparse.Namespace) -> int:
    from .dot import generate_dot, write_dot

    if args.level == "exhaustive" or not args.out.endswith(".txt"):
        raise argparse.ArgumentTypeError("dot-product vectors: levels 1 or 2, written to a .txt file")
    try:
        vs = generate_dot(args.format, args.b_format, accumulator=args.accumulator, k=args.k, level=args.level,
                          count=args.count, seed=args.seed)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    write_dot(vs, args.out)
    print(f"fp8emu vectors: {len(vs)} dot products of length {vs.k} ({vs.a_fmt.name} x {vs.b_fmt.name}, "
          f"accumulator {vs.accumulator}) written to {args.out}")
    return 0


def _cmd_vectors(args: argparse.Namespace) -> int:
    if args.accumulator is not None:
        return _cmd_dot_vectors(args)
    from ..formats import get_format
    from .vectors import exhaustive_chunks, generate, source_dtype, write_vectors

    try:
        fmt = get_format(args.format)
        dt = source_dtype(args.source)
        streamed = args.level == "exhaustive" and dt.itemsize == 4
        if streamed and not args.out.endswith(".txt"):
            raise ValueError("exhaustive float32 vectors (2^32 lines) are streamed to a .txt file only")
        if args.level == "exhaustive" and dt.itemsize == 8:
            raise ValueError("level 'exhaustive' needs a 16- or 32-bit source (float64 has 2^64 patterns)")
        import numpy as np
        vs = generate(fmt, dt, rounding=args.rounding, saturate=args.saturate, seed=args.seed, count=args.count,
                      tininess=args.tininess, level="1" if streamed else args.level,
                      inputs=np.zeros(0, dtype=np.uint64) if streamed else None)
        if streamed:
            vs.level = "exhaustive"
        path = write_vectors(vs, args.out, stream_chunks=exhaustive_chunks(dt) if streamed else None)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    print(f"fp8emu vectors: {'2^32' if streamed else len(vs)} cases ({dt.name} -> {fmt.name}, {vs.rounding.value}, "
          f"{'saturating' if args.saturate else 'non-saturating'}, level {args.level}) written to {path}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from .check import check_files
    from .dot import check_dot, is_dot_file, read_dot
    from .vectors import _read_columns

    try:
        if is_dot_file(args.vectors):  # dot products: one float32 hex word per line (the last column)
            _, cols = _read_columns(args.results)
            report = check_dot(read_dot(args.vectors), cols[-1].astype("uint32") if cols else [],
                               max_failures=args.max_failures)
        else:
            report = check_files(args.vectors, args.results, max_failures=args.max_failures, z_max=args.z_max)
    except (OSError, ValueError) as exc:
        print(f"fp8emu check: error: {exc}", file=sys.stderr)
        return 2
    print(report.format(args.max_failures))
    return 0 if report.ok else 1


def _cmd_crosscheck(args: argparse.Namespace) -> int:
    from .crosscheck import crosscheck_report

    text = crosscheck_report(count=args.count, seed=args.seed)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
        print(f"fp8emu crosscheck: report written to {args.out}")
    else:
        print(text)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``vectors``, ``check`` and ``crosscheck``."""
    p = subparsers.add_parser("vectors", help="generate TestFloat-style conversion test vectors",
                              description="Write conversion test vectors (hex input, hex expected code, hex "
                              "flags per line; see docs/verification.md) with fp8emu's results as expected values.")
    p.add_argument("--source", default="float32", choices=["float16", "bfloat16", "float32", "float64"],
                   help="source dtype (default float32)")
    p.add_argument("--format", required=True, help="target format: a preset (e4m3fn) or a name like e4m3b11fnuz")
    p.add_argument("--rounding", default="nearest_even",
                   help="nearest_even, nearest_away, toward_zero, up, down or stochastic")
    p.add_argument("--saturate", action="store_true", help="saturating conversion (overflow -> +-max)")
    p.add_argument("--level", default="1", choices=["1", "2", "exhaustive"],
                   help="1: boundary cases; 2: level 1 + seeded random fill; exhaustive: every source pattern")
    p.add_argument("--seed", type=int, default=0, help="seed of the level-2 random fill")
    p.add_argument("--count", type=int, default=10000, help="level-2 random cases (default 10000)")
    p.add_argument("--tininess", default="after", choices=["after", "before"], help="underflow tininess rule")
    p.add_argument("--accumulator", metavar="SPEC",
                   help="write dot-product vectors for this accumulator instead: fp32_sequential, fp32_pairwise, "
                   "fp32_blocked:<block>, lowp:<format>[:<chunk>], nvidia_hopper_fp8[:fast]")
    p.add_argument("--b-format", help="dot products: the second operand's format (default: --format)")
    p.add_argument("--k", type=int, default=32, help="dot products: length K (default 32)")
    p.add_argument("--out", required=True, metavar="FILE", help="output file, .txt (text) or .npz")
    p.set_defaults(func=_cmd_vectors, _parser=p)

    p = subparsers.add_parser("check", help="check a device's results against test vectors",
                              description="Compare results (input code [flags] per line) with test vectors; "
                              "print mismatches by class; exit status 1 on any mismatch.")
    p.add_argument("--vectors", required=True, metavar="FILE", help="vectors from `fp8emu vectors` (.txt or .npz)")
    p.add_argument("--results", required=True, metavar="FILE", help="the device's results, same line format")
    p.add_argument("--max-failures", type=int, default=10, metavar="N", help="failing cases to print (default 10)")
    p.add_argument("--z-max", type=float, default=5.0, help="stochastic rounding bias z-score limit (default 5)")
    p.set_defaults(func=_cmd_check, _parser=p)

    p = subparsers.add_parser("crosscheck", help="report where ml_dtypes / PyTorch / gfloat disagree with fp8emu",
                              description="Run the same vectors through the installed peer libraries and write "
                              "a Markdown table of their disagreements with fp8emu, with the reason for each.")
    p.add_argument("--count", type=int, default=20000, help="random cases per source (default 20000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random cases")
    p.add_argument("--out", metavar="FILE", help="write the Markdown report here (default: print it)")
    p.set_defaults(func=_cmd_crosscheck, _parser=p)
