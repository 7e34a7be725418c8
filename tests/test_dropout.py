"""convlab's dropout has nn.Dropout's distribution: each element kept with probability 1 - p,
independently, and scaled by 1 / (1 - p); seeded by torch's global RNG; identity in eval mode;
gradients pass through the kept elements only, with the same scale."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from convlab.dropout import Dropout, draw_keep_mask, dropout, keep_threshold


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_elements_are_kept_with_probability_one_minus_p_and_scaled(p: float) -> None:
    torch.manual_seed(0)
    x = torch.ones(50, 64, 14, 14)
    out = dropout(x, p, training=True)
    kept = out != 0
    n = kept.numel()
    share = kept.double().mean().item()
    assert abs(share - (1 - p)) < 4 * math.sqrt(p * (1 - p) / n), f"kept {share:.5f}, expected {1 - p}"
    assert torch.equal(out[kept], torch.full_like(out[kept], 1 / (1 - p)))


def test_keep_threshold_is_exact_to_32_bits() -> None:
    for p in (0.1, 0.2, 0.5, 0.0):
        assert abs(keep_threshold(p) / 2**32 - (1 - p)) <= 2**-33


@pytest.mark.parametrize("keep_256ths", [200.0, 200.5, 13.25])
def test_keep_rate_is_exact_where_the_top_byte_ties(keep_256ths: float) -> None:
    """A keep probability between two multiples of 1/256 is reached through the elements whose top
    byte ties the threshold's: without them the rate would be off by up to 1/256 (13 sigma here)."""
    p = 1 - keep_256ths / 256
    torch.manual_seed(5)
    mask = draw_keep_mask((4_000_000,), p)
    sigma = math.sqrt(p * (1 - p) / mask.size)
    assert abs(mask.mean() - (1 - p)) < 4 * sigma, f"kept {mask.mean():.6f}, expected {1 - p:.6f}"


def test_mask_elements_are_independent() -> None:
    torch.manual_seed(1)
    mask = draw_keep_mask((400, 32, 14, 14), 0.5).reshape(400, -1).astype(np.float64)
    # Neighbours in memory order and the same position in consecutive images are uncorrelated.
    flat = mask.reshape(-1)
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.01
    assert abs(np.corrcoef(mask[:-1].reshape(-1), mask[1:].reshape(-1))[0, 1]) < 0.01
    # Each position's keep rate is 1/2 across images (no position is favoured): chi-square.
    per_position = mask.sum(axis=0)
    expected, var = 400 * 0.5, 400 * 0.25
    chi2 = float(((per_position - expected) ** 2 / var).sum())
    dof = per_position.size
    assert abs(chi2 - dof) < 5 * math.sqrt(2 * dof), f"chi2 {chi2:.0f} for {dof} positions"


def test_same_distribution_as_torch_dropout() -> None:
    """Kept counts per image, ours and nn.Dropout's, have the same mean and spread."""
    x = torch.ones(2000, 512)
    torch.manual_seed(2)
    ours = (dropout(x, 0.5, training=True) != 0).sum(dim=1).double()
    theirs = (torch.nn.functional.dropout(x, 0.5, training=True) != 0).sum(dim=1).double()
    for stat in (torch.mean, torch.std):
        assert abs(stat(ours).item() - stat(theirs).item()) / stat(theirs).item() < 0.05


def test_seeded_by_torch_global_rng() -> None:
    x = torch.ones(8, 32, 14, 14)
    torch.manual_seed(3)
    a = dropout(x, 0.2, True)
    torch.manual_seed(3)
    b = dropout(x, 0.2, True)
    c = dropout(x, 0.2, True)
    assert torch.equal(a, b) and not torch.equal(b, c)


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format])
def test_values_rounding_layout_and_gradient(
    p: float, dtype: torch.dtype, memory_format: torch.memory_format
) -> None:
    torch.manual_seed(4)
    x = torch.randn(16, 32, 14, 14).to(dtype).contiguous(memory_format=memory_format)
    x.requires_grad_()
    out = dropout(x, p, True)
    assert out.dtype == dtype and out.is_contiguous(memory_format=memory_format)
    kept = out != 0
    # Kept elements are x * scale rounded as torch's dropout rounds it (fp32 product, one rounding
    # to x's dtype), dropped ones 0; the gradient is the same mask and scale.
    zero = torch.zeros((), dtype=dtype)
    assert torch.equal(out.detach(), torch.where(kept, x.detach() * (1 / (1 - p)), zero))
    grad = torch.randn_like(x)
    out.backward(grad)
    assert torch.equal(x.grad, torch.where(kept, grad * (1 / (1 - p)), zero))


def test_module_is_identity_in_eval_and_without_rate() -> None:
    x = torch.randn(4, 10)
    assert Dropout(0.5).eval()(x) is x
    assert dropout(x, 0.0, True) is x
