"""The engine: graph recording, gradient accumulation, no_grad, freed graphs, errors."""

import numpy as np
import pytest

from fp8emu.autograd import Function, Tensor, enable_grad, is_grad_enabled, no_grad, ops


def test_shared_input_gradients_add_up():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = x * x + x * 3.0        # dy/dx = 2x + 3
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 3)


def test_leaf_grad_accumulates_across_backward_calls():
    x = Tensor(np.ones(2), requires_grad=True)
    (x * 2.0).sum().backward()
    (x * 5.0).sum().backward()
    np.testing.assert_allclose(x.grad, [7.0, 7.0])


def test_aliased_gradients_are_not_corrupted():
    """Add returns grad_out itself for both inputs; accumulation must not write into it."""
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    a = x + 0.0
    b = a + a            # both inputs of b are a: the two contributions are one aliased buffer
    c = b + x
    c.backward(np.array([1.0, 10.0]))
    np.testing.assert_allclose(x.grad, [3.0, 30.0])


def test_constants_get_no_gradient_and_no_graph():
    x = Tensor(np.ones(3))
    y = x * 2.0
    assert not y.requires_grad and y._node is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_no_grad_records_nothing_and_restores():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2.0
        with enable_grad():
            z = x * 2.0
    assert is_grad_enabled()
    assert not y.requires_grad and z.requires_grad


def test_second_backward_through_a_freed_graph_raises():
    x = Tensor(np.ones(3), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_backward_needs_scalar_or_matching_grad():
    x = Tensor(np.ones(3), requires_grad=True)
    y = x * 2.0
    with pytest.raises(ValueError, match="one-element"):
        y.backward()
    with pytest.raises(ValueError, match="shape"):
        y.backward(np.ones(4))


def test_deep_chain_has_no_recursion_limit():
    x = Tensor(np.ones(1), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    y.backward(np.ones(1))
    np.testing.assert_allclose(x.grad, [1.0])


def test_intermediate_saved_arrays_are_freed_after_backward():
    x = Tensor(np.ones(3), requires_grad=True)
    y = x * x
    node = y._node
    y.sum().backward()
    assert node.ctx.saved == ()


def test_float32_stays_float32():
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    y = ops.relu(x * 2.0 + 1.0).mean()
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32


def test_custom_function_with_constant_input():
    class Scale(Function):
        @staticmethod
        def forward(ctx, factor, x):
            ctx.factor = factor
            return x * factor

        @staticmethod
        def backward(ctx, g):
            return None, g * ctx.factor

    x = Tensor(np.ones(2), requires_grad=True)
    Scale.apply(3.0, x).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 3.0])


def test_wrong_gradient_shape_from_backward_is_reported():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x):
            return x.copy()

        @staticmethod
        def backward(ctx, g):
            return (g[:1],)

    x = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="Bad.backward"):
        Bad.apply(x).sum().backward()


def test_bad_tensor_data():
    with pytest.raises(TypeError, match="numeric"):
        Tensor(np.array(["a"]))
