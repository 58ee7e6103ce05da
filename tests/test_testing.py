"""The public hypothesis strategies: they produce what they promise, and they find a wrong kernel."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fp8emu import encode
from fp8emu.format import Format
from fp8emu.formats import ALL_FORMATS, e4m3fn, e5m2
from fp8emu.testing import (arrays, codes, formats, rounding_boundaries, source_dtype, source_values,
                            values_near_rounding_boundaries)


@given(formats())
def test_formats_are_valid(fmt):
    assert isinstance(fmt, Format) and fmt.bits <= 16 and fmt.max > 0


@given(formats(presets=False, max_bits=8))
def test_custom_formats_respect_max_bits(fmt):
    assert fmt.bits <= 8


@given(st.data())
def test_codes_are_in_range(data):
    fmt = data.draw(st.sampled_from(ALL_FORMATS))
    c = data.draw(codes(fmt, allow_nan=False))
    assert 0 <= c < fmt.num_codes and not fmt.is_nan_code(c)


@pytest.mark.parametrize("source", ["float16", "bfloat16", "float32", "float64"])
@settings(max_examples=50)
@given(data=st.data())
def test_values_near_boundaries_are_close_to_one(source, data):
    x = data.draw(values_near_rounding_boundaries(e5m2, source, max_ulps=2))
    assert x.dtype == source_dtype(source)
    b = rounding_boundaries(e5m2, source).view({2: np.uint16, 4: np.uint32, 8: np.uint64}[x.dtype.itemsize])
    bits = int(np.abs(np.array([x]))[0:1].view(b.dtype)[0])
    assert np.min(np.abs(b.astype(np.int64) - bits)) <= 2


@given(arrays(e4m3fn, "float32"))
def test_arrays(a):
    assert a.dtype == np.float32 and a.ndim <= 3


@given(source_values("float16"))
def test_source_values_cover_nan(x):
    assert x.dtype == np.float16


def _ties_away_kernel(x):
    """A deliberately wrong e4m3fn kernel: rounds ties away from zero."""
    return encode(x, e4m3fn, rounding="nearest_away")


def test_strategies_find_a_wrong_kernel_and_shrink_to_a_tie():
    found = []

    @settings(max_examples=500, database=None)
    @given(values_near_rounding_boundaries(e4m3fn, "float32"))
    def prop(x):
        if _ties_away_kernel(np.array([x]))[0] != encode(np.array([x]), e4m3fn)[0]:
            found.append(float(x))
            raise AssertionError(x)

    with pytest.raises(AssertionError):
        prop()
    # the shrunk counterexample is an exact tie between two e4m3fn values (the smallest one: 2^-10)
    x = found[-1]
    lo = encode(np.array([x]), e4m3fn, rounding="toward_zero")
    assert x == 2.0 ** -10, x
    assert lo[0] == 0


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_bad_arguments():
    with pytest.raises(ValueError, match="source"):
        source_dtype("int32")
    with pytest.raises(ValueError, match="at least one"):
        formats(presets=False, custom=False).example()


def test_hypothesis_is_imported_only_by_fp8emu_testing():
    import subprocess
    import sys
    code = ("import sys, fp8emu, fp8emu.verify, fp8emu.verify.cli; assert 'hypothesis' not in sys.modules; "
            "import fp8emu.testing; assert 'hypothesis' in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert proc.returncode == 0, proc.stderr
