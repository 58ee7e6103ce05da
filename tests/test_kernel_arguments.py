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


def test_kernel_arguments_pick_the_kernel_and_codes_only_take_any_format():
    from fp8emu.formats import get_format
    wide = get_format("e8m0fnu")     # float16 cannot hold its values: refused for values, fine for codes
    with pytest.raises(ValueError, match="cannot hold"):
        kernel_arguments(wide, np.float16)
    codes_only = kernel_arguments(wide, np.float16, values=False)
    assert codes_only.values.size == 0 and codes_only.value_params == () and codes_only.params_f32 is None
    f32 = kernel_arguments(e4m3fn, np.float32, rounding="stochastic", seed=1)
    assert f32.kernel == "f32" and len(f32.params_f32) == len(_kernels.PARAMS_F32) and f32.deep_limit > 0
    assert kernel_arguments(e4m3fn, np.float64).kernel in ("fast", "generic")
    assert kernel_arguments(e4m3fn, np.float64).params_f32 is None
