"""Exhaustive conversion hashes (fp8emu.verify.digest): the chunk hash follows its documented
definition (rebuilt here from one whole-domain conversion), equals on a Dask cluster what one
process computes, and differs from the single-pass SHA-256."""

import hashlib
import pathlib
import re

import numpy as np
import pytest

from fp8emu import encode
from fp8emu.formats import e4m3fn, e5m2
from fp8emu.verify.digest import chunk_digest, exhaustive_hash, exhaustive_hashes, hash_header, single_pass_sha256
from fp8emu.verify.flags import exception_flags

ROOT = pathlib.Path(__file__).resolve().parents[1]


def by_definition(fmt, rounding, saturate):
    """The docstring's recipe, from all 2^16 float16 codes and flags converted at once."""
    x = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    codes, flags = encode(x, fmt, rounding=rounding, saturate=saturate), exception_flags(x, fmt, rounding=rounding)
    assert codes.dtype == np.uint8
    header = (f"fp8emu-exhaustive-v1 source=float16 format={fmt.name} exp_bits={fmt.exp_bits} "
              f"man_bits={fmt.man_bits} bias={fmt.bias} subnormals={int(fmt.subnormals)} "
              f"specials={fmt.specials.value} signed={int(fmt.signed)} has_zero={int(fmt.has_zero)} "
              f"tie_rule={fmt.tie_rule.value} rounding={rounding} saturate={int(saturate)} chunk=4096\n")
    chunks = [hashlib.sha256(codes[i:i + 4096].tobytes() + flags[i:i + 4096].tobytes()).digest()
              for i in range(0, 1 << 16, 4096)]
    return hashlib.sha256(header.encode() + b"".join(chunks)).hexdigest()


@pytest.mark.parametrize("fmt, rounding, saturate", [(e5m2, "nearest_even", False), (e4m3fn, "toward_zero", True)],
                         ids=str)
def test_chunk_hash_follows_its_definition(fmt, rounding, saturate):
    assert exhaustive_hash(fmt, "float16", rounding=rounding, saturate=saturate) == by_definition(fmt, rounding,
                                                                                                    saturate)


def test_single_pass_sha256_is_the_codes_in_input_order():
    x = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    expected = hashlib.sha256(encode(x, e5m2).tobytes()).hexdigest()
    assert single_pass_sha256(e5m2, "float16") == expected != exhaustive_hash(e5m2, "float16")


def test_single_pass_sha256_nan_as_rewrites_nan_outputs_only():
    """``nan_as=0x7F`` is how the H200 hashes were taken: e5m2's NaN outputs (0x7E) become 0x7F,
    nothing else changes; without it the hash is of the codes as encode returns them."""
    x = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    codes = encode(x, e5m2)
    nan = codes == e5m2.nan_code
    assert e5m2.nan_code == 0x7E and nan.any() and not (codes == 0x7F).any()
    rewritten = np.where(nan, np.uint8(0x7F), codes)
    assert single_pass_sha256(e5m2, "float16", nan_as=0x7F) == hashlib.sha256(rewritten.tobytes()).hexdigest()
    assert single_pass_sha256(e5m2, "float16") == hashlib.sha256(codes.tobytes()).hexdigest()
    assert single_pass_sha256(e4m3fn, "float16", nan_as=0x7F) == single_pass_sha256(e4m3fn, "float16")
    for bad in (256, -1, True, 1.0):
        with pytest.raises(ValueError, match=r"nan_as=.* must be None or a code of e5m2 \(0\.\.255\)"):
            single_pass_sha256(e5m2, "float16", nan_as=bad)


def _documented_header_line() -> str:
    """The chunk hash's header line as docs/verification.md spells it (one line, wrapped there)."""
    doc = (ROOT / "docs" / "verification.md").read_text()
    m = re.search(r"where the header is the ASCII line\s+`([^`]+)`", doc)
    assert m, "docs/verification.md no longer shows the chunk hash's header line"
    return " ".join(m.group(1).split())


def test_documented_hash_header_is_the_code_header():
    """The doc's header (e4m3fn, float32) is byte for byte the one hashed, and with its fields
    filled in for e5m2 from float16 it rebuilds exhaustive_hash."""
    line = _documented_header_line()
    assert (line + "\n").encode() == hash_header(e4m3fn, "float32", "nearest_even", False)
    head, *fields = line.split()
    keys = [f.split("=", 1)[0] for f in fields]
    values = {"source": "float16", "format": e5m2.name, "exp_bits": e5m2.exp_bits, "man_bits": e5m2.man_bits,
              "bias": e5m2.bias, "subnormals": int(e5m2.subnormals), "specials": e5m2.specials.value,
              "signed": int(e5m2.signed), "has_zero": int(e5m2.has_zero), "tie_rule": e5m2.tie_rule.value,
              "rounding": "nearest_even", "saturate": 0, "chunk": 4096}
    header = " ".join([head] + [f"{k}={values[k]}" for k in keys]) + "\n"
    x = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    codes, flags = encode(x, e5m2), exception_flags(x, e5m2)
    chunks = b"".join(hashlib.sha256(codes[i:i + 4096].tobytes() + flags[i:i + 4096].tobytes()).digest()
                      for i in range(0, 1 << 16, 4096))
    assert hashlib.sha256(header.encode() + chunks).hexdigest() == exhaustive_hash(e5m2, "float16")


def test_hash_on_the_cluster_equals_one_process(dask_client):
    cases = [(e5m2, "nearest_even", False), (e4m3fn, "nearest_even", True)]
    assert exhaustive_hashes(cases, "bfloat16", client=dask_client) == exhaustive_hashes(cases, "bfloat16")


def test_refusals():
    with pytest.raises(ValueError, match="stochastic"):
        exhaustive_hash(e5m2, "float16", rounding="stochastic")
    with pytest.raises(ValueError, match="16- or 32-bit"):
        exhaustive_hash(e5m2, "float64")
    with pytest.raises(ValueError, match="outside"):
        chunk_digest(e5m2, "float16", "nearest_even", False, 16)


def test_cli_hash_lines(capsys):
    from fp8emu.cli import main
    assert main(["vectors", "--source", "float16", "--format", "e5m2,e4m3fn", "--rounding", "nearest_even",
                 "--level", "exhaustive", "--hash"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{exhaustive_hash(e5m2, 'float16')}  source=float16 format=e5m2 rounding=nearest_even saturate=0",
                     f"{exhaustive_hash(e4m3fn, 'float16')}  source=float16 format=e4m3fn rounding=nearest_even "
                     "saturate=0"]
    with pytest.raises(SystemExit):
        main(["vectors", "--source", "float16", "--format", "e5m2", "--level", "1", "--hash"])
    assert "--hash goes with --level exhaustive" in capsys.readouterr().err


@pytest.mark.slow
def test_float32_hash_on_the_cluster_equals_one_process(dask_client):
    """All 2^32 float32 inputs (256 chunks of 2^24): about 4 minutes of one core per pass here."""
    assert exhaustive_hash(e4m3fn, "float32", client=dask_client) == exhaustive_hash(e4m3fn, "float32")


@pytest.mark.slow
def test_single_pass_sha256_with_nan_as_0x7f_is_the_h200_hash():
    """What docs/verification.md says: the H200 hash of e5m2 (NaN code 0x7E) is the single-pass
    hash with NaN outputs written as 0x7F, not the plain one (about 1.5 minutes here)."""
    from test_sweep_2pow32 import H200_SHA256
    assert single_pass_sha256(e5m2, "float32", nan_as=0x7F) == H200_SHA256["e5m2"]
