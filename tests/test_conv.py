"""conv2d and both backward convolutions vs direct-loop oracles (tests/oracles_gemm.py)."""

import numpy as np
import pytest

from fp8emu.accumulators import fp32_blas, fp32_sequential
from fp8emu.conv import conv2d, conv2d_grad_input, conv2d_grad_weight, conv2d_output_shape, im2col

from oracles_gemm import (conv2d_direct, conv2d_grad_input_direct, conv2d_grad_weight_direct, conv_abs_bound,
                           gamma, im2col_loops)

# (x shape, w shape, stride, padding, dilation, groups)
CASES = [
    ((2, 3, 6, 5), (4, 3, 3, 3), 1, 1, 1, 1),
    ((2, 4, 7, 7), (6, 2, 3, 3), 2, 1, 1, 2),
    ((1, 3, 8, 9), (2, 3, 3, 2), (2, 1), (0, 1), (2, 1), 1),
    ((2, 6, 5, 5), (6, 1, 3, 3), 1, 2, 2, 6),   # depthwise, padding > kernel reach
    ((3, 2, 4, 4), (5, 2, 1, 1), 2, 0, 1, 1),   # 1x1 stride-2 shortcut
    ((1, 2, 3, 3), (3, 2, 3, 3), 1, 0, 1, 1),   # one output pixel
]


def _data(case, seed=0):
    x_shape, w_shape, stride, padding, dilation, groups = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    gy = rng.standard_normal(conv2d_output_shape(x_shape, w_shape, **kw)).astype(np.float32)
    return x, w, gy, kw


@pytest.mark.parametrize("case", CASES)
def test_forward_sequential_bit_equal_to_direct_loop(case):
    x, w, _, kw = _data(case)
    got = conv2d(x, w, accumulator=fp32_sequential, **kw)
    np.testing.assert_array_equal(got, conv2d_direct(x, w, **kw))


@pytest.mark.parametrize("case", CASES)
def test_grad_weight_sequential_bit_equal_to_direct_loop(case):
    x, w, gy, kw = _data(case)
    got = conv2d_grad_weight(x, gy, w.shape, accumulator=fp32_sequential, **kw)
    np.testing.assert_array_equal(got, conv2d_grad_weight_direct(x, gy, w.shape, **kw))


@pytest.mark.parametrize("case", CASES)
def test_grad_input_sequential_bit_equal_to_direct_loop(case):
    x, w, gy, kw = _data(case)
    got = conv2d_grad_input(gy, w, x.shape, accumulator=fp32_sequential, **kw)
    np.testing.assert_array_equal(got, conv2d_grad_input_direct(gy, w, x.shape, **kw))


@pytest.mark.parametrize("case", CASES)
def test_blas_within_float32_bound_of_exact(case):
    """fp32_blas vs the float64 direct loop: |err| <= gamma_K * sum|x||w| (+ the float64 error)."""
    x, w, gy, kw = _data(case)
    exact = conv2d_direct(x.astype(np.float64), w.astype(np.float64), dtype=np.float64, **kw)
    k = w.shape[1] * w.shape[2] * w.shape[3]
    bound = gamma(k) * conv_abs_bound(x, w, **kw)
    assert np.all(np.abs(conv2d(x, w, accumulator=fp32_blas, **kw) - exact) <= bound * 1.0001)
    gx = conv2d_grad_input_direct(gy.astype(np.float64), w.astype(np.float64), x.shape, dtype=np.float64, **kw)
    assert np.allclose(conv2d_grad_input(gy, w, x.shape, **kw), gx, rtol=1e-5, atol=1e-5)
    gw = conv2d_grad_weight_direct(x.astype(np.float64), gy.astype(np.float64), w.shape, dtype=np.float64, **kw)
    assert np.allclose(conv2d_grad_weight(x, gy, w.shape, **kw), gw, rtol=1e-5, atol=1e-5)


def test_adjoint_identity():
    """<conv(x, w), gy> = <x, grad_input(gy)> = <w, grad_weight(x, gy)> (float64 sums of float32 results)."""
    x, w, gy, kw = _data(CASES[1], seed=3)
    y = conv2d(x, w, **kw).astype(np.float64)
    lhs = np.sum(y * gy)
    assert np.isclose(lhs, np.sum(conv2d_grad_input(gy, w, x.shape, **kw) * x), rtol=1e-5)
    assert np.isclose(lhs, np.sum(conv2d_grad_weight(x, gy, w.shape, **kw) * w), rtol=1e-5)


def test_torch_agrees():
    torch = pytest.importorskip("torch")
    x, w, gy, kw = _data(CASES[2], seed=5)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, **kw)
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(conv2d(x, w, **kw), yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(conv2d_grad_input(gy, w, x.shape, **kw), xt.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(conv2d_grad_weight(x, gy, w.shape, **kw), wt.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_im2col_kernel_equals_readable_twin(case):
    x, w, _, kw = _data(case)
    if kw["groups"] != 1:
        x = x[:, :w.shape[1]]
    args = dict(stride=kw["stride"], padding=kw["padding"], dilation=kw["dilation"])
    np.testing.assert_array_equal(im2col(x, w.shape[2:], **args), im2col_loops(x, *w.shape[2:], **args))


def test_im2col_matches_forward():
    x, w, _, kw = _data(CASES[0])
    cols = im2col(x, w.shape[2:], stride=1, padding=1)
    y = (cols @ w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0])).reshape(2, 6, 5, 4).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(conv2d(x, w, accumulator=fp32_blas, **kw), y)


def test_non_contiguous_and_float64_inputs():
    x, w, _, kw = _data(CASES[0])
    xf = np.asfortranarray(x.astype(np.float64))
    np.testing.assert_array_equal(conv2d(xf, w, accumulator=fp32_sequential, **kw),
                                  conv2d(x, w, accumulator=fp32_sequential, **kw))


def test_nan_and_inf_propagate():
    x, w, _, kw = _data(CASES[0])
    x[0, 0, 2, 2] = np.nan
    x[1, 1, 0, 0] = np.inf
    y = conv2d(x, w, accumulator=fp32_sequential, **kw)
    ref = conv2d_direct(x, w, **kw)
    np.testing.assert_array_equal(y, ref)  # NaNs in the same places, the rest bit-equal
    assert np.isnan(y[0]).sum() == 9 * w.shape[0]  # every window that sees the NaN, every channel


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(x=np.zeros((2, 3, 4)), w=np.zeros((1, 3, 1, 1))), ValueError, "4-D NCHW"),
    (dict(x=np.zeros((1, 3, 4, 4)), w=np.zeros((1, 2, 1, 1))), ValueError, "channels"),
    (dict(x=np.zeros((1, 4, 4, 4)), w=np.zeros((3, 2, 1, 1)), groups=2), ValueError, "divisible"),
    (dict(x=np.zeros((1, 1, 2, 2)), w=np.zeros((1, 1, 3, 3))), ValueError, "does not fit"),
    (dict(x=np.zeros((1, 1, 4, 4)), w=np.zeros((1, 1, 3, 3)), stride=0), ValueError, "stride"),
    (dict(x=np.zeros((1, 1, 4, 4)), w=np.zeros((1, 1, 3, 3)), padding=-1), ValueError, "padding"),
    (dict(x=np.zeros((1, 1, 4, 4)), w=np.zeros((1, 1, 3, 3)), stride=1.5), TypeError, "stride"),
    (dict(x=np.zeros((1, 1, 4, 4), dtype=np.int32), w=np.zeros((1, 1, 3, 3))), TypeError, "float"),
    (dict(x=np.zeros((1, 1, 4, 4)), w=np.zeros((1, 1, 3, 3)), accumulator="fp32"), TypeError, "Accumulator"),
])
def test_bad_input(kwargs, err, match):
    with pytest.raises(err, match=match):
        conv2d(**kwargs)


@pytest.mark.parametrize("acc", [fp32_blas, fp32_sequential])
def test_empty_batch(acc):
    """N = 0: empty forward output and input gradient, and a zero weight gradient (a sum over no
    positions), as torch gives."""
    w = np.ones((3, 2, 3, 3), np.float32)
    x, gy = np.zeros((0, 2, 4, 4), np.float32), np.zeros((0, 3, 2, 2), np.float32)
    assert conv2d(x, w, accumulator=acc).shape == (0, 3, 2, 2)
    assert conv2d_grad_input(gy, w, x.shape, accumulator=acc).shape == (0, 2, 4, 4)
    dw = conv2d_grad_weight(x, gy, w.shape, accumulator=acc)
    np.testing.assert_array_equal(dw, np.zeros(w.shape, np.float32))
    assert not np.signbit(dw).any()


def test_backward_shape_mismatch():
    x, w, gy, kw = _data(CASES[0])
    with pytest.raises(ValueError, match="forward output shape"):
        conv2d_grad_input(gy[:, :, 1:], w, x.shape, **kw)
    with pytest.raises(ValueError, match="forward output shape"):
        conv2d_grad_weight(x, gy[:1], w.shape, **kw)


@pytest.mark.parametrize("acc", [fp32_sequential, fp32_blas])
def test_image_chunking_changes_nothing(monkeypatch, acc):
    """The convs run the GEMM rows in whole-image chunks; one image per chunk must give the same bits
    as one chunk (fp32_blas: the grad_weight reduction is split, so only close)."""
    import fp8emu.conv as conv
    x, w, gy, kw = _data(CASES[1], seed=4)
    x = np.concatenate([x, x[::-1]])
    gy = np.concatenate([gy, gy[::-1]])
    whole = (conv2d(x, w, accumulator=acc, **kw), conv2d_grad_input(gy, w, x.shape, accumulator=acc, **kw),
             conv2d_grad_weight(x, gy, w.shape, accumulator=acc, **kw))
    monkeypatch.setattr(conv, "_CHUNK_BYTES", 1)
    assert len(conv._image_chunks(conv._Geometry(x.shape, w.shape, groups=kw["groups"], stride=kw["stride"],
                                                 padding=kw["padding"], dilation=kw["dilation"]))) == x.shape[0]
    split = (conv2d(x, w, accumulator=acc, **kw), conv2d_grad_input(gy, w, x.shape, accumulator=acc, **kw),
             conv2d_grad_weight(x, gy, w.shape, accumulator=acc, **kw))
    for a, b in zip(whole[:2], split[:2]):
        np.testing.assert_array_equal(a, b)
    if acc is fp32_sequential:
        np.testing.assert_array_equal(whole[2], split[2])
    else:
        np.testing.assert_allclose(whole[2], split[2], rtol=1e-5, atol=1e-5)


def test_quantized_operands_and_codes():
    from fp8emu import encode, quantize
    from fp8emu.formats import e4m3fn, e5m2
    x, w, gy, kw = _data(CASES[0], seed=6)
    x *= 100
    got = conv2d(x, w, x_fmt=e4m3fn, w_fmt=e5m2, saturate=True, accumulator=fp32_sequential, **kw)
    qx, qw = quantize(x, e4m3fn, saturate=True), quantize(w, e5m2, saturate=True)
    np.testing.assert_array_equal(got, conv2d_direct(qx, qw, **kw))
    np.testing.assert_array_equal(
        conv2d(encode(x, e4m3fn, saturate=True), encode(w, e5m2), x_fmt=e4m3fn, w_fmt=e5m2,
               accumulator=fp32_sequential, **kw), got)
    qgy = quantize(gy, e5m2)
    np.testing.assert_array_equal(
        conv2d_grad_input(gy, w, x.shape, gy_fmt=e5m2, w_fmt=e5m2, accumulator=fp32_sequential, **kw),
        conv2d_grad_input_direct(qgy, qw, x.shape, **kw))
    np.testing.assert_array_equal(
        conv2d_grad_weight(x, gy, w.shape, x_fmt=e4m3fn, gy_fmt=e5m2, saturate=True, accumulator=fp32_sequential,
                           **kw),
        conv2d_grad_weight_direct(qx, qgy, w.shape, **kw))


def test_low_precision_accumulator_is_the_same_gemm():
    """conv2d with lowp == lowp.matmul_2d on the im2col matrix (one GEMM path)."""
    from fp8emu.accumulators import lowp
    x, w, _, _ = _data(CASES[0], seed=7)
    acc = lowp("bfloat16", 4)
    got = conv2d(x, w, padding=1, accumulator=acc)
    cols = im2col(x, 3, padding=1)
    want = acc.matmul_2d(cols, w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0]))
    np.testing.assert_array_equal(got, want.reshape(2, 6, 5, 4).transpose(0, 3, 1, 2))
    assert not np.array_equal(got, conv2d(x, w, padding=1, accumulator=fp32_sequential))


def test_quantized_flag_matches_quantizing():
    from fp8emu import quantize
    from fp8emu.formats import e5m2
    x, w, gy, kw = _data(CASES[1], seed=8)
    qx, qw, qgy = quantize(x, e5m2), quantize(w, e5m2), quantize(gy, e5m2)
    f = dict(accumulator=fp32_sequential, **kw)
    np.testing.assert_array_equal(conv2d(qx, qw, x_fmt=e5m2, w_fmt=e5m2, quantized=True, **f),
                                  conv2d(x, w, x_fmt=e5m2, w_fmt=e5m2, **f))
    np.testing.assert_array_equal(conv2d_grad_input(qgy, qw, x.shape, gy_fmt=e5m2, w_fmt=e5m2, quantized=True, **f),
                                  conv2d_grad_input(gy, w, x.shape, gy_fmt=e5m2, w_fmt=e5m2, **f))
    np.testing.assert_array_equal(conv2d_grad_weight(qx, qgy, w.shape, x_fmt=e5m2, gy_fmt=e5m2, quantized=True, **f),
                                  conv2d_grad_weight(x, gy, w.shape, x_fmt=e5m2, gy_fmt=e5m2, **f))


def test_all_three_passes_lower_to_one_matmul_2d_call_per_group():
    """A recording accumulator sees the im2col GEMMs: forward (M, K) @ (K, Og), grad_input (M, Og) @ (Og, K),
    grad_weight (K, M) @ (M, Og), with M = N*OH*OW and K = KH*KW*C/groups, once per group."""
    from dataclasses import dataclass, field

    from fp8emu.accumulators import Accumulator

    @dataclass(frozen=True)
    class Recorder(Accumulator):
        calls: list = field(default_factory=list, compare=False)

        def matmul_2d(self, a, b, *, a_fmt=None, b_fmt=None):
            self.calls.append((a.shape, b.shape, a_fmt, b_fmt))
            return fp32_sequential.matmul_2d(a, b)

    x, w, gy, kw = _data(CASES[1])       # groups 2, stride 2
    rec = Recorder()
    m = gy.shape[0] * gy.shape[2] * gy.shape[3]
    k, og = w.shape[1] * w.shape[2] * w.shape[3], w.shape[0] // 2
    np.testing.assert_array_equal(conv2d(x, w, accumulator=rec, **kw), conv2d(x, w, accumulator=fp32_sequential, **kw))
    conv2d_grad_input(gy, w, x.shape, accumulator=rec, **kw)
    conv2d_grad_weight(x, gy, w.shape, accumulator=rec, x_fmt="e5m2", gy_fmt="e5m2", **kw)
    shapes = [c[:2] for c in rec.calls]
    assert shapes == [((m, k), (k, og))] * 2 + [((m, og), (og, k))] * 2 + [((k, m), (m, og))] * 2
    assert [c[2].name for c in rec.calls[4:]] == ["e5m2", "e5m2"]


def test_stochastic_accumulator_plumbing():
    """conv2d hands a stochastic accumulator its seed, stream + 3 and GEMM element indices."""
    from fp8emu.accumulators import lowp
    x, w, _, _ = _data(CASES[0], seed=9)
    acc = lowp("bfloat16", 4, "stochastic")
    got = conv2d(x, w, padding=1, accumulator=acc, seed=21, stream=4)
    np.testing.assert_array_equal(got, conv2d(x, w, padding=1, accumulator=acc, seed=21, stream=4))
    cols = im2col(x, 3, padding=1)
    want = acc.matmul_2d(cols, w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0]), seed=21, stream=7)
    np.testing.assert_array_equal(got, want.reshape(2, 6, 5, 4).transpose(0, 3, 1, 2))
    assert not np.array_equal(got, conv2d(x, w, padding=1, accumulator=acc, seed=22, stream=4))


def test_stochastic_accumulator_with_its_own_seed_numbers_elements_across_groups():
    """Two groups with identical inputs and weights: the accumulator's own seed must still see the
    second group's GEMM element indices (not restart at 0), in all three passes."""
    from fp8emu.accumulators import lowp
    x1, w1, gy1, _ = _data(CASES[0], seed=10)
    x, w, gy = np.concatenate([x1, x1], axis=1), np.concatenate([w1, w1]), np.concatenate([gy1, gy1], axis=1)
    kw = dict(padding=1, groups=2, accumulator=lowp("bfloat16", 4, "stochastic", seed=7))
    og, cg = w1.shape[0], w1.shape[1]
    y = conv2d(x, w, **kw)
    dx = conv2d_grad_input(gy, w, x.shape, **kw)
    dw = conv2d_grad_weight(x, gy, w.shape, **kw)
    assert not np.array_equal(y[:, :og], y[:, og:])
    assert not np.array_equal(dx[:, :cg], dx[:, cg:])
    assert not np.array_equal(dw[:og], dw[og:])
    np.testing.assert_array_equal(y, conv2d(x, w, **kw))             # still reproducible


def test_row_independent_convs_take_the_gemm_row_blocks(monkeypatch):
    """The forward and grad_input run in image chunks of the GEMM path's row blocks
    (``gemm.block_rows``), with the bits of one chunk; grad_weight, which sums its chunks'
    partial products, keeps ``_CHUNK_BYTES`` (one reduction for every ResNet-18 CIFAR layer)."""
    import fp8emu.conv as conv
    x, w, gy, kw = _data(CASES[1], seed=5)
    x, gy = np.concatenate([x, x[::-1], x]), np.concatenate([gy, gy[::-1], gy])
    calls = (lambda: conv2d(x, w, accumulator=fp32_sequential, **kw),
             lambda: conv2d_grad_input(gy, w, x.shape, accumulator=fp32_sequential, **kw),
             lambda: conv2d_grad_weight(x, gy, w.shape, **kw))
    whole = [f() for f in calls]
    seen = []
    real = conv._image_chunks
    monkeypatch.setattr(conv, "_image_chunks", lambda geo, row_blocks=False: seen.append(row_blocks) or
                        real(geo, row_blocks))
    monkeypatch.setattr(conv, "block_rows", lambda m, k: 1)          # one image per chunk
    split = [f() for f in calls]
    assert seen == [True] * (2 * kw["groups"]) + [False]              # once per group; grad_weight once
    for a, b in zip(whole[:2], split[:2]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(whole[2], split[2])          # grad_weight: the same single reduction


def test_conv_row_chunks_at_the_resnet18_shapes(monkeypatch):
    """With a 15 MiB cache block (the Intel CI host's): the first layer in 19 even chunks of at
    most 7 images (6554-row blocks), the last in one (at least 2048 rows per block); the whole
    batch is covered in order."""
    import fp8emu.conv as conv
    import fp8emu.gemm as gemm
    monkeypatch.setattr(gemm, "CACHE_BLOCK_BYTES", 15 << 20)
    for x_shape, w_shape, count, most in [((128, 64, 32, 32), (64, 64, 3, 3), 19, 7),
                                          ((128, 512, 4, 4), (512, 512, 3, 3), 1, 128)]:
        geo = conv._Geometry(x_shape, w_shape, 1, 1, 1, 1)
        chunks = conv._image_chunks(geo, row_blocks=True)
        sizes = [n1 - n0 for n0, n1, _, _ in chunks]
        assert len(chunks) == count and max(sizes) == most and max(sizes) - min(sizes) <= most - 1
        assert [c[0] for c in chunks[1:]] == [c[1] for c in chunks[:-1]] and chunks[-1][1] == 128
        assert chunks[-1][3] == geo.m and all(r0 == n0 * geo.oh * geo.ow for n0, _, r0, _ in chunks)
        assert conv._image_chunks(geo) == [(0, 128, 0, geo.m)]        # grad_weight: one call


@pytest.mark.parametrize("o, cg, kh, kw, groups", [(12, 5, 2, 3, 3), (37, 3, 3, 3, 1), (40, 17, 1, 1, 2),
                                                   (64, 64, 3, 3, 1)])
def test_weight_layout_kernels_equal_numpy_transposes(o, cg, kh, kw, groups):
    """The forward's weight matrix, grad_input's transposed one and grad_weight's way back equal
    NumPy's transposes exactly (data movement only), for every group, ragged 16-channel blocks
    and non-square kernels."""
    import fp8emu.conv as conv
    w = np.random.default_rng(o).standard_normal((o, cg, kh, kw), dtype=np.float32)
    og = o // groups
    for g in range(groups):
        wg = w[g * og:(g + 1) * og]
        twin = wg.transpose(2, 3, 1, 0).reshape(-1, og)
        np.testing.assert_array_equal(conv._weight_matrix(w, g, og), twin)
        np.testing.assert_array_equal(conv._weight_matrix_t(w, g, og), twin.T)
        dw = np.full_like(w, np.nan)
        conv._rows_to_weight(np.ascontiguousarray(twin), g * og, dw)
        np.testing.assert_array_equal(dw[g * og:(g + 1) * og], wg)
        assert np.isnan(np.delete(dw, np.s_[g * og:(g + 1) * og], axis=0)).all()   # other groups untouched


@pytest.mark.parametrize("n, c, h, w, groups, ph, pw", [(3, 13, 7, 11, 1, 1, 2), (2, 16, 8, 8, 2, 1, 1),
                                                        (1, 64, 32, 32, 4, 0, 0), (2, 9, 1, 17, 3, 2, 0),
                                                        (2, 24, 9, 16, 1, 1, 1)])
def test_activation_layout_kernels_equal_numpy_transposes(n, c, h, w, groups, ph, pw):
    """The padded NHWC copy, its crop back to NCHW, and the GEMM rows to and from NCHW equal
    NumPy's transposes exactly (data movement only), for every group, with 8 x 8 tiles and
    ragged edges (channels and widths not multiples of 8), and leave other groups untouched."""
    import fp8emu.conv as conv
    x = np.random.default_rng(c * h + w).standard_normal((n, c, h, w), dtype=np.float32)
    cg = c // groups
    for g in range(groups):
        xg = x[:, g * cg:(g + 1) * cg]
        padded = np.pad(xg.transpose(0, 2, 3, 1), ((0, 0), (ph, ph), (pw, pw), (0, 0)))
        xp = np.full(padded.shape, np.nan, dtype=np.float32)
        np.testing.assert_array_equal(conv._pad_nhwc(x, g * cg, cg, ph, pw, xp), padded)
        dx = np.full_like(x, np.nan)
        conv._crop_nchw(np.ascontiguousarray(padded), g * cg, ph, pw, dx)
        np.testing.assert_array_equal(dx[:, g * cg:(g + 1) * cg], xg)
        assert np.isnan(np.delete(dx, np.s_[g * cg:(g + 1) * cg], axis=1)).all()
        rows = xg.transpose(0, 2, 3, 1).reshape(-1, cg)
        mat = np.full(rows.shape, np.nan, dtype=np.float32)
        np.testing.assert_array_equal(conv._nchw_to_rows(x, g * cg, mat), rows)
        out = np.full_like(x, np.nan)
        conv._rows_to_nchw(np.ascontiguousarray(rows), g * cg, out)
        np.testing.assert_array_equal(out[:, g * cg:(g + 1) * cg], xg)
        assert np.isnan(np.delete(out, np.s_[g * cg:(g + 1) * cg], axis=1)).all()
