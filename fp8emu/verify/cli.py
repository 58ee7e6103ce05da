"""``fp8emu vectors``, ``fp8emu check`` and ``fp8emu crosscheck`` (registered into :mod:`fp8emu.cli`).

Examples::

    fp8emu vectors --source float32 --format e4m3fn --rounding nearest_even --level 1 --out e4m3fn.txt
    fp8emu vectors --source float16 --format e5m2 --saturate --level exhaustive --out e5m2_sat.npz
    fp8emu vectors --format e4m3fn --b-format e5m2 --accumulator fp32_sequential --k 64 --level 2 --out dot.txt
    fp8emu check --vectors e4m3fn.txt --results dut.txt --max-failures 20
    my_device < e4m3fn.txt | fp8emu check --vectors e4m3fn.txt --results -
    fp8emu crosscheck --out docs/results/crosscheck.md
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from .textio import display_name

__all__ = ["register"]


def _status(text: str) -> None:
    """Status lines go to stderr: stdout carries data (``--out -``)."""
    print(text, file=sys.stderr)


def _cmd_dot_vectors(args: argparse.Namespace) -> int:
    from .dot import generate_dot, write_dot

    if args.level == "exhaustive":
        raise argparse.ArgumentTypeError("dot-product vectors have levels 1 and 2 only")
    try:
        vs = generate_dot(args.format, args.b_format, accumulator=args.accumulator, k=args.k, level=args.level,
                          count=args.count, seed=args.seed)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    where = display_name(write_dot(vs, args.out), writing=True)
    _status(f"fp8emu vectors: {len(vs)} dot products of length {vs.k} ({vs.a_fmt.name} x {vs.b_fmt.name}, "
            f"accumulator {vs.accumulator}) written to {where}")
    return 0


def _cmd_vectors(args: argparse.Namespace) -> int:
    if args.hash:
        return _cmd_hash(args)
    if args.out is None:
        raise argparse.ArgumentTypeError("--out FILE is required (- for stdout)")
    if args.scheduler != "none" or args.workers is not None:
        raise argparse.ArgumentTypeError("--scheduler and --workers go with --hash")
    try:
        return _cmd_dot_vectors(args) if args.accumulator is not None else _cmd_conversion_vectors(args)
    except BrokenPipeError:  # `fp8emu vectors --out - | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as exc:  # --out in a missing or unwritable directory: exit 2, one line
        raise argparse.ArgumentTypeError(_cannot_write(args.out, exc)) from None


def _cannot_write(path: str, exc: OSError) -> str:
    return f"cannot write {path}: {exc.strerror or exc}"


def _cmd_conversion_vectors(args: argparse.Namespace) -> int:
    from ..formats import get_format
    from .vectors import exhaustive_chunks, generate, source_dtype, write_vectors

    try:
        fmt = get_format(args.format)
        dt = source_dtype(args.source)
        if args.level == "exhaustive" and dt.itemsize == 8:
            raise ValueError("level 'exhaustive' needs a 16- or 32-bit source (float64 has 2^64 patterns)")
        lo, hi = _pattern_range(args.range, dt.itemsize * 8) if args.range else (0, 1 << (dt.itemsize * 8))
        if args.range and args.level != "exhaustive":
            raise ValueError("--range goes with --level exhaustive")
        streamed = args.level == "exhaustive"
        if streamed and args.out != "-" and args.out.endswith(".npz") and hi - lo > 1 << 24:
            raise ValueError("more than 2^24 exhaustive vectors are streamed to text only (use a .txt file, or "
                             "--range for a slice)")
        import numpy as np
        vs = generate(fmt, dt, rounding=args.rounding, saturate=args.saturate, seed=args.seed, count=args.count,
                      tininess=args.tininess, level="1" if streamed else args.level,
                      inputs=np.zeros(0, dtype=np.uint64) if streamed else None)
        if streamed:
            vs.level = "exhaustive"
            chunks = exhaustive_chunks(dt, start=lo, stop=hi)
            if args.out != "-" and args.out.endswith(".npz"):  # small slices fit in memory
                vs = generate(fmt, dt, rounding=args.rounding, saturate=args.saturate, tininess=args.tininess,
                              inputs=np.concatenate(list(chunks)))
                vs.level, chunks = "exhaustive", None
        where = display_name(write_vectors(vs, args.out, stream_chunks=chunks if streamed else None,
                                           stream_cases=hi - lo if streamed and chunks is not None else None),
                             writing=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    n = hi - lo if streamed else len(vs)
    _status(f"fp8emu vectors: {n} cases ({dt.name} -> {fmt.name}, {vs.rounding.value}, "
            f"{'saturating' if args.saturate else 'non-saturating'}, level {args.level}) written to {where}")
    return 0


def _cmd_hash(args: argparse.Namespace) -> int:
    """``--level exhaustive --hash``: the chunk hash of each format x rounding mode (fp8emu.verify.digest)."""
    from ..formats import get_format
    from .digest import exhaustive_hashes
    from .textio import write_bytes

    if args.level != "exhaustive":
        raise argparse.ArgumentTypeError("--hash goes with --level exhaustive")
    if args.accumulator is not None or args.range:
        raise argparse.ArgumentTypeError("--hash covers every input of conversions: no --accumulator or --range")
    if args.tininess != "after":
        raise argparse.ArgumentTypeError("--hash covers the flags with tininess after rounding only")
    if args.source == "float64":
        raise argparse.ArgumentTypeError("--hash needs a 16- or 32-bit source (float64 has 2^64 patterns)")
    try:
        fmts = [get_format(f.strip()) for f in args.format.split(",") if f.strip()]
        modes = [m.strip() for m in args.rounding.split(",") if m.strip()]
        cases = [(f, m, args.saturate) for f in fmts for m in modes]
        if not cases:
            raise ValueError("--format and --rounding must name at least one format and mode")
        if args.scheduler == "none":
            if args.workers is not None:
                raise ValueError("--workers goes with --scheduler local")
            digests = exhaustive_hashes(cases, args.source)
        else:
            from ..cluster import connect
            with connect(args.scheduler, workers=args.workers, prog="fp8emu vectors") as client:
                digests = exhaustive_hashes(cases, args.source, client=client)
    except (ValueError, RuntimeError, KeyError) as exc:
        raise argparse.ArgumentTypeError(str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)) \
            from None
    lines = [f"{d}  source={args.source} format={f.name} rounding={m} saturate={int(args.saturate)}\n"
             for d, (f, m, _) in zip(digests, cases)]
    write_bytes(args.out or "-", ["".join(lines).encode("ascii")])
    if args.out and args.out != "-":
        _status(f"fp8emu vectors: {len(lines)} exhaustive hash(es) written to {args.out}")
    return 0


def _pattern_range(text: str, bits: int) -> tuple[int, int]:
    """``LO:HI`` (hex bit patterns, HI exclusive) -> ints, checked against the source width."""
    try:
        lo_s, hi_s = text.split(":")
        lo, hi = int(lo_s, 16), int(hi_s, 16)
    except ValueError:
        raise ValueError(f"--range {text!r}: expected LO:HI in hex, e.g. 3F800000:3F810000") from None
    if not 0 <= lo < hi <= 1 << bits:
        raise ValueError(f"--range {text!r}: need 0 <= LO < HI <= {1 << bits:X} for a {bits}-bit source")
    return lo, hi


def _cmd_check(args: argparse.Namespace) -> int:
    from .check import check_files

    try:
        report = check_files(args.vectors, args.results, max_failures=args.max_failures, z_max=args.z_max,
                             nan=args.nan, allow_partial=args.allow_partial, min_draws=args.min_draws,
                             allow_no_end_line=args.allow_no_end_line)
    except ValueError as exc:  # FileFormatError included: "file:line: message"
        print(f"fp8emu check: error: {exc}", file=sys.stderr)
        return 2
    _status(report.format(args.max_failures))
    return 0 if report.ok else 1


def _cmd_crosscheck(args: argparse.Namespace) -> int:
    from .crosscheck import crosscheck_report

    from .textio import write_bytes

    text = crosscheck_report(count=args.count, seed=args.seed)
    try:
        write_bytes(args.out or "-", [text.encode() + (b"" if text.endswith("\n") else b"\n")])
    except OSError as exc:
        raise argparse.ArgumentTypeError(_cannot_write(args.out, exc)) from None
    if args.out:
        _status(f"fp8emu crosscheck: report written to {args.out}")
    return 0


def _non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return v


def _positive_int(text: str) -> int:
    v = _non_negative_int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text} must be >= 1")
    return v


def _positive_finite(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"{text} must be finite and > 0")
    return v


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``vectors``, ``check`` and ``crosscheck``."""
    p = subparsers.add_parser("vectors", help="generate TestFloat-style conversion test vectors",
                              description="Write conversion (or, with --accumulator, dot-product) test vectors: "
                              "one case per line of fixed-width hex words (input expected flags), `//` comments, "
                              "readable by Verilog's $readmemh; fp8emu's results are the expected values. "
                              "See docs/verification.md.")
    p.add_argument("--source", default="float32", choices=["float16", "bfloat16", "float32", "float64"],
                   help="source dtype (default float32)")
    p.add_argument("--format", required=True, help="target format: a preset (e4m3fn) or a name like e4m3b11fnuz")
    p.add_argument("--rounding", default="nearest_even",
                   help="nearest_even, nearest_away, toward_zero, up, down or stochastic")
    p.add_argument("--saturate", action="store_true", help="saturating conversion (overflow -> +-max)")
    p.add_argument("--level", default="1", choices=["1", "2", "exhaustive"],
                   help="1: boundary cases; 2: level 1 + distinct seeded random inputs; exhaustive: every source "
                   "pattern")
    p.add_argument("--range", metavar="LO:HI", help="exhaustive level: only the bit patterns LO <= p < HI (hex)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the level-2 random fill (>= 0)")
    p.add_argument("--count", type=_non_negative_int, default=10000,
                   help="level-2 random cases (default 10000, none repeated)")
    p.add_argument("--tininess", default="after", choices=["after", "before"], help="underflow tininess rule")
    p.add_argument("--accumulator", metavar="SPEC",
                   help="write dot-product vectors for this accumulator instead: fp32_sequential, fp32_pairwise, "
                   "fp32_blocked:<block>, lowp:<format>[:<chunk>], nvidia_hopper_fp8[:fast]")
    p.add_argument("--b-format", help="dot products: the second operand's format (default: --format)")
    p.add_argument("--k", type=int, default=32, help="dot products: length K (default 32)")
    p.add_argument("--out", metavar="FILE", help="output file: text (format v2), .npz, or - for stdout "
                   "(required, except with --hash: stdout)")
    p.add_argument("--hash", action="store_true",
                   help="with --level exhaustive: instead of vectors, print the chunk hash (SHA-256 over the "
                   "SHA-256 of each input chunk's codes and flags, in input order; see docs/verification.md) of "
                   "each --format x --rounding, both of which may then be comma-separated lists")
    p.add_argument("--scheduler", default="none", metavar="ADDR",
                   help="--hash: 'none' (default: this process), 'local' (a Dask LocalCluster) or a Dask "
                   "scheduler address such as tcp://host:8786; the hash is the same on any")
    p.add_argument("--workers", type=_positive_int, metavar="N",
                   help="--hash --scheduler local: worker processes (default: the CPUs)")
    p.set_defaults(func=_cmd_vectors, _parser=p)

    p = subparsers.add_parser("check", help="check a device's results against test vectors",
                              description="Compare a device's results with test vectors. Exit status: 0 every case "
                              "has a result and all are correct; 1 mismatches or cases without a result; 2 an "
                              "unreadable or malformed file or bad usage (one line naming file and line). The report "
                              "goes to stderr.")
    p.add_argument("--vectors", required=True, metavar="FILE", help="vectors from `fp8emu vectors` (text or .npz; "
                   "- for stdin)")
    p.add_argument("--results", required=True, metavar="FILE", help="the device's results: `input code [flags]` per "
                   "line, or .npz (- for stdin)")
    p.add_argument("--max-failures", type=_non_negative_int, default=10, metavar="N",
                   help="failing cases to print (default 10)")
    p.add_argument("--z-max", type=_positive_finite, default=5.0,
                   help="stochastic rounding: bias z-score limit (default 5)")
    p.add_argument("--min-draws", type=_positive_int, default=20, metavar="N",
                   help="stochastic rounding: results needed per inexact input for the bias tests (default 20)")
    p.add_argument("--nan", choices=["exact", "any"], default="exact",
                   help="exact: a NaN result must be the expected code (default); any: any NaN code of the format "
                   "is accepted where a NaN is expected")
    p.add_argument("--allow-partial", action="store_true",
                   help="pass even when some cases have no result (coverage is still printed)")
    p.add_argument("--allow-no-end-line", action="store_true",
                   help="accept text vectors without the closing '// end: N cases' line (format v1 files, or v2 "
                   "files from an fp8emu that did not write it); without it a vectors file cut at a line boundary "
                   "passes unnoticed, so regenerate such files when you can")
    p.set_defaults(func=_cmd_check, _parser=p)

    p = subparsers.add_parser("crosscheck", help="report where ml_dtypes / PyTorch / gfloat disagree with fp8emu",
                              description="Run the same vectors through the installed peer libraries and write "
                              "a Markdown table of their disagreements with fp8emu, with the reason for each.")
    p.add_argument("--count", type=_non_negative_int, default=20000, help="random cases per source (default 20000)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the random cases (>= 0)")
    p.add_argument("--out", metavar="FILE", help="write the Markdown report here (default: print it)")
    p.set_defaults(func=_cmd_crosscheck, _parser=p)
