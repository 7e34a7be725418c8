"""The ConvNet is exactly the study's: layer shapes, 890,410 parameters, dropout where asked."""

from __future__ import annotations

import torch
from torch import nn

from convlab.model import ConvNet, count_parameters


def test_parameter_count_is_the_studys() -> None:
    assert count_parameters(ConvNet()) == 890_410
    # Dropout adds no parameters, so every variant's checkpoint has the same shapes.
    assert count_parameters(ConvNet(0.1, 0.2, 0.5)) == 890_410


def test_layer_shapes() -> None:
    model = ConvNet()
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters() if name.endswith("weight")}
    assert shapes == {
        "conv1.weight": (32, 3, 3, 3),
        "conv2.weight": (32, 32, 3, 3),
        "conv3.weight": (64, 32, 3, 3),
        "conv4.weight": (64, 64, 3, 3),
        "fc1.weight": (512, 1600),
        "fc2.weight": (10, 512),
    }


def test_logits_for_a_batch() -> None:
    out = ConvNet()(torch.zeros(4, 3, 32, 32))
    assert out.shape == (4, 10)


def test_dropout_sits_where_the_rates_say() -> None:
    model = ConvNet(0.1, 0.2, 0.5)
    assert [m.p for m in (model.drop_pool1, model.drop_pool2, model.drop_fc)] == [0.1, 0.2, 0.5]
    plain = ConvNet()
    assert all(isinstance(m, nn.Identity) for m in (plain.drop_pool1, plain.drop_pool2, plain.drop_fc))


def test_dropout_is_off_in_eval_mode() -> None:
    torch.manual_seed(0)
    model = ConvNet(0.5, 0.5, 0.5).eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), model(x))
