"""Modules: registration, traversal, modes, state dicts and the ResNet builders."""

import numpy as np
import pytest

from fp8emu import nn
from fp8emu.autograd import Tensor, no_grad


def test_parameters_and_children_are_registered_in_order():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    names = [n for n, _ in m.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"]
    assert [type(c).__name__ for c in m.children()] == ["Conv2d", "BatchNorm2d", "ReLU", "Flatten", "Linear"]
    assert [n for n, _ in m.named_buffers()] == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]


def test_reassigning_none_then_parameter_registers_it():
    lin = nn.Linear(2, 2, bias=False)
    assert lin.bias is None
    lin.bias = nn.Parameter(np.zeros(2))
    assert "bias" in dict(lin.named_parameters())
    assert lin.bias.shape == (2,)


def test_train_eval_propagate_and_bn_uses_running_stats_in_eval():
    bn = nn.BatchNorm2d(2)
    m = nn.Sequential(bn)
    x = Tensor(np.random.default_rng(0).standard_normal((4, 2, 3, 3)).astype(np.float32) * 3 + 5)
    m(x)
    assert bn.num_batches_tracked == 1
    m.eval()
    assert not bn.training
    y = m(x).data
    expected = (x.data - bn.running_mean[None, :, None, None]) / np.sqrt(bn.running_var[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert bn.num_batches_tracked == 1


def test_state_dict_round_trip_and_errors():
    nn.manual_seed(0)
    a = nn.resnet18(num_classes=5, width=4, cifar_stem=True)
    nn.manual_seed(1)
    b = nn.resnet18(num_classes=5, width=4, cifar_stem=True)
    sd = a.state_dict()
    assert "layer2.0.downsample.0.weight" in sd and "layer1.1.bn2.running_var" in sd
    b.load_state_dict(sd)
    for (k, v), (k2, v2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(v, v2)
    sd["fc.weight"] = sd["fc.weight"][:, :3]
    with pytest.raises(ValueError, match="fc.weight"):
        b.load_state_dict(sd)
    sd = a.state_dict()
    sd["extra"] = np.zeros(1)
    del sd["bn1.bias"]
    with pytest.raises(KeyError, match="bn1.bias.*extra|missing.*bn1.bias"):
        b.load_state_dict(sd)
    b.load_state_dict(sd, strict=False)  # non-strict ignores both


def test_state_dict_is_a_copy():
    lin = nn.Linear(2, 2)
    sd = lin.state_dict()
    sd["weight"][...] = 7
    assert not np.any(lin.weight.data == 7)


@pytest.mark.parametrize("builder,blocks,expansion", [(nn.resnet18, 8, 1), (nn.resnet34, 16, 1), (nn.resnet50, 16, 4)])
def test_resnet_shapes_and_parameter_counts(builder, blocks, expansion):
    m = builder(num_classes=7, in_channels=1, width=4)
    assert len([b for b in m.modules() if isinstance(b, nn.BasicBlock | nn.Bottleneck)]) == blocks
    assert m.fc.weight.shape == (7, 32 * expansion)
    assert m.conv1.weight.shape == (4, 1, 7, 7)
    with no_grad():
        y = m(Tensor(np.zeros((2, 1, 32, 32), np.float32)))
    assert y.shape == (2, 7)


def test_resnet18_parameter_count_matches_torchvision():
    # torchvision resnet18 (1000 classes) has 11,689,512 parameters
    m = nn.resnet18()
    assert sum(p.size for p in m.parameters()) == 11_689_512


def test_cifar_stem_and_errors():
    m = nn.resnet18(num_classes=10, width=8, cifar_stem=True)
    assert m.conv1.weight.shape == (8, 3, 3, 3) and isinstance(m.maxpool, nn.Identity)
    with pytest.raises(ValueError, match="width"):
        nn.resnet18(width=0)
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="output_size"):
        nn.AdaptiveAvgPool2d(2)


def test_dropout_module_draws_new_masks_and_is_identity_in_eval():
    d = nn.Dropout(0.5, seed=3)
    x = Tensor(np.ones((50, 50), np.float32))
    a, b = d(x).data, d(x).data
    assert not np.array_equal(a, b)
    d.eval()
    assert d(x) is x


def test_manual_seed_makes_init_reproducible():
    nn.manual_seed(42)
    a = nn.Linear(3, 3).weight.data
    nn.manual_seed(42)
    np.testing.assert_array_equal(a, nn.Linear(3, 3).weight.data)
