"""Hashes of exhaustive conversion sweeps, computed in one process or as Dask tasks over input chunks.

Two numbers identify an exhaustive sweep (every bit pattern of a 16- or 32-bit source converted
into a format with one rounding mode and saturation setting):

* the **single-pass SHA-256**: ``SHA-256(codes[0] || codes[1] || ... || codes[2^B - 1])``, the codes
  exactly as :func:`fp8emu.encode` returns them (one byte each for formats of up to 8 bits, else
  little-endian uint16; a NaN output is the format's NaN code, ``0x7E`` for ``e5m2``) in input
  order.  The hashes of the H200's hardware conversion (docs/results/cuda) were taken with
  every NaN output written as ``0x7F``: ``single_pass_sha256(fmt, "float32", nan_as=0x7F)`` is
  that hash (for ``e4m3fn``, whose NaN code is ``0x7F``, it changes nothing).  It cannot be split: SHA-256 is sequential.
* the **chunk hash** (:func:`exhaustive_hash`, ``fp8emu vectors --level exhaustive --hash``): the
  inputs are cut into chunks of ``C`` consecutive patterns (``C = 2^24`` for a 32-bit source,
  ``2^12`` for a 16-bit one); chunk ``i`` covers patterns ``i*C .. (i+1)*C - 1`` and hashes to
  ``h_i = SHA-256(codes_i || flags_i)`` (its codes as above, then its exception flags, one byte
  each, :mod:`fp8emu.verify.flags`' bits, tininess after rounding); the result is
  ``SHA-256(header || h_0 || h_1 || ...)`` in input order, where ``header`` is the ASCII line
  ``fp8emu-exhaustive-v1 source=<dtype> format=<name> exp_bits=<E> man_bits=<M> bias=<b>
  subnormals=<0|1> specials=<kind> signed=<0|1> has_zero=<0|1> tie_rule=<rule> rounding=<mode>
  saturate=<0|1> chunk=<C>\\n`` (the ``format=`` ... ``tie_rule=`` part is the vectors' header line).  The
  chunks are independent, so the result is the same whether they are hashed one after another
  or as Dask tasks on any cluster; it covers the flags too, so it differs from the single-pass
  SHA-256 even of the same codes.

Stochastic rounding has no single expected code per input and is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..format import Format, RoundMode
from ..quantize import decode, encode
from .flags import exception_flags
from .vectors import format_header, source_dtype

__all__ = ["chunk_size", "hash_header", "chunk_digest", "exhaustive_hash", "exhaustive_hashes", "single_pass_sha256"]

_UINT = {2: np.uint16, 4: np.uint32}


def chunk_size(source: str | np.dtype) -> int:
    """Patterns per chunk: 2^24 for a 32-bit source, 2^12 for a 16-bit one.

    Raises:
        ValueError: any other source.
    """
    dt = source_dtype(source)
    if dt.itemsize not in _UINT:
        raise ValueError(f"exhaustive hashes need a 16- or 32-bit source, got {dt.name}")
    return 1 << 24 if dt.itemsize == 4 else 1 << 12


def _mode(rounding: RoundMode | str) -> RoundMode:
    mode = RoundMode(rounding)
    if mode is RoundMode.STOCHASTIC:
        raise ValueError("stochastic rounding has no single expected code per input: no exhaustive hash")
    return mode


def hash_header(fmt: Format, source: str | np.dtype, rounding: RoundMode | str, saturate: bool) -> bytes:
    """The header line that starts the chunk hash's input (see the module docstring)."""
    dt = source_dtype(source)
    return (f"fp8emu-exhaustive-v1 source={dt.name} {format_header(fmt)} rounding={_mode(rounding).value} "
            f"saturate={int(bool(saturate))} chunk={chunk_size(dt)}\n").encode("ascii")


def _codes_bytes(codes: np.ndarray) -> bytes:
    return codes.astype(codes.dtype.newbyteorder("<"), copy=False).tobytes()


def chunk_digest(fmt: Format, source: str | np.dtype, rounding: RoundMode | str, saturate: bool, index: int) -> bytes:
    """``h_index``: SHA-256 of chunk ``index``'s codes, then its flags (32 bytes).

    Raises:
        ValueError: a chunk index outside the source's patterns, or stochastic rounding.
    """
    dt = source_dtype(source)
    c = chunk_size(dt)
    if not 0 <= index < (1 << (8 * dt.itemsize)) // c:
        raise ValueError(f"chunk {index} is outside the {dt.name} patterns")
    mode = _mode(rounding)
    x = (np.arange(c, dtype=np.uint64) + np.uint64(index * c)).astype(_UINT[dt.itemsize]).view(dt)
    h = hashlib.sha256(_codes_bytes(encode(x, fmt, rounding=mode, saturate=saturate)))
    h.update(exception_flags(x, fmt, rounding=mode).astype(np.uint8).tobytes())
    return h.digest()


def exhaustive_hash(fmt: Format, source: str | np.dtype = "float32", *, rounding: RoundMode | str = "nearest_even",
                    saturate: bool = False, client: Any = None) -> str:
    """The chunk hash of converting every ``source`` pattern into ``fmt`` (hex; see the module docstring).

    Args:
        fmt: target format.
        source: float16, bfloat16 or float32.
        rounding: any mode but stochastic.
        saturate: saturating conversion.
        client: a ``distributed.Client``: the chunks become Dask tasks; None: this process.

    Returns:
        64 hex digits, the same with or without ``client``.

    Raises:
        ValueError: a 64-bit source or stochastic rounding.
    """
    return exhaustive_hashes([(fmt, rounding, saturate)], source, client=client)[0]


def exhaustive_hashes(cases: Sequence[tuple[Format, RoundMode | str, bool]], source: str | np.dtype = "float32", *,
                      client: Any = None) -> list[str]:
    """:func:`exhaustive_hash` of several ``(format, rounding, saturate)`` cases; with a client all their
    chunks are in flight at once."""
    dt = source_dtype(source)
    n = (1 << (8 * dt.itemsize)) // chunk_size(dt)
    headers = [hash_header(fmt, dt, mode, sat) for fmt, mode, sat in cases]
    if client is None:
        digests = [[chunk_digest(fmt, dt, mode, sat, i) for i in range(n)] for fmt, mode, sat in cases]
    else:
        futures = [[client.submit(chunk_digest, fmt, dt.name, RoundMode(mode).value, sat, i, pure=False)
                    for i in range(n)] for fmt, mode, sat in cases]
        digests = [client.gather(fs) for fs in futures]
    return [hashlib.sha256(head + b"".join(ds)).hexdigest() for head, ds in zip(headers, digests)]


def single_pass_sha256(fmt: Format, source: str | np.dtype = "float32", *, rounding: RoundMode | str = "nearest_even",
                       saturate: bool = False, nan_as: int | None = None) -> str:
    """SHA-256 of every pattern's code in input order (one process; see the module docstring).

    Args:
        fmt: target format.
        source: float16, bfloat16 or float32.
        rounding: any mode but stochastic.
        saturate: saturating conversion.
        nan_as: None (default): the codes as :func:`fp8emu.encode` returns them; a code: every
            NaN output written as this code first (``0x7F``: how the H200 hardware conversion's hashes
            were taken).

    Returns:
        64 hex digits.

    Raises:
        ValueError: a 64-bit source, stochastic rounding, or ``nan_as`` that is not a code of ``fmt``.
    """
    dt = source_dtype(source)
    c, mode = chunk_size(dt), _mode(rounding)
    if nan_as is not None and (isinstance(nan_as, bool) or not isinstance(nan_as, (int, np.integer))
                               or not 0 <= nan_as < fmt.num_codes):
        raise ValueError(f"nan_as={nan_as!r} must be None or a code of {fmt.name} (0..{fmt.num_codes - 1})")
    h = hashlib.sha256()
    for i in range((1 << (8 * dt.itemsize)) // c):
        x = (np.arange(c, dtype=np.uint64) + np.uint64(i * c)).astype(_UINT[dt.itemsize]).view(dt)
        codes = encode(x, fmt, rounding=mode, saturate=saturate)
        if nan_as is not None:
            codes[np.isnan(decode(codes, fmt, dtype=np.float32))] = nan_as
        h.update(_codes_bytes(codes))
    return h.hexdigest()
