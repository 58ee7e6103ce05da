"""quantize.kernel_arguments: what other kernels (accumulators, GPU) give the rounding kernels."""

import numpy as np
import pytest

from fp8emu import _kernels, encode
from fp8emu.formats import e4m3fn, e5m2
from fp8emu.quantize import kernel_arguments


@pytest.mark.parametrize("rounding", ["nearest_even", "stochastic"])
def test_kernel_arguments_reproduce_encode(rounding):
    x = np.random.default_rng(5).standard_normal(200) * 100
    args = kernel_arguments(e5m2, np.float64, rounding=rounding, seed=11, stream=3)
    bits = x.view(np.uint64)
    codes = [_kernels._round_bits(bits[i], i, args.params, args.keys.base, args.keys.key0) for i in range(x.size)]
    np.testing.assert_array_equal(codes, encode(x, e5m2, rounding=rounding, seed=11, stream=3))
    assert args.values[0x3C] == 1.0 and args.values.dtype == np.float64


def test_kernel_arguments_validate():
    with pytest.raises(TypeError, match="dtype"):
        kernel_arguments(e4m3fn, np.int32)
    with pytest.raises(ValueError, match="sr_bits"):
        kernel_arguments(e4m3fn, np.float32, sr_bits=4)
