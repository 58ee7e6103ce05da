"""Public names kept for old callers: they still work and warn."""

import importlib

import pytest

from fp8emu import Format
from fp8emu.formats import e8m0fnu, make_format


def test_make_format_keeps_every_field_and_warns():
    with pytest.warns(DeprecationWarning, match="Format"):
        fmt = make_format(8, 0, bias=127, subnormals=False, specials="fn", signed=False, has_zero=False)
    assert fmt == e8m0fnu == Format(8, 0, bias=127, subnormals=False, specials="fn", signed=False, has_zero=False)


def test_encode_scalar_warns():
    spec = importlib.import_module("fp8emu.spec")
    with pytest.warns(DeprecationWarning, match="round_scalar"):
        assert spec.encode_scalar is spec.round_scalar
    with pytest.raises(AttributeError):
        spec.no_such_name


def test_supported_dtypes_warns_and_keeps_its_value():
    quantize = importlib.import_module("fp8emu.quantize")
    with pytest.warns(DeprecationWarning, match="INPUT_LAYOUTS"):
        names = quantize.SUPPORTED_DTYPES
    assert names == ("float16", "bfloat16", "float32", "float64") == tuple(quantize.INPUT_LAYOUTS)
    with pytest.raises(AttributeError):
        quantize.no_such_name
