"""Losses against hand-computed values, the paper's formulas, and numerical gradients."""

import pytest
import torch
from torch.autograd import gradcheck

from stylegram.losses import functional as losses


def test_gram_matrix_by_hand() -> None:
    # Two channels over M = 2 positions: F = [[1, 2], [3, 4]]; F Fᵀ = [[5, 11], [11, 25]], divided by M.
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    g = losses.gram_matrix(f)
    assert g.shape == (1, 2, 2)
    assert torch.allclose(g[0], torch.tensor([[2.5, 5.5], [5.5, 12.5]]))


def test_gram_matrix_is_per_image_in_a_batch() -> None:
    f = torch.randn(3, 4, 5, 6)
    g = losses.gram_matrix(f)
    for b in range(3):
        flat = f[b].reshape(4, 30)
        assert torch.allclose(g[b], flat @ flat.T / 30, atol=1e-5)


def test_content_loss_by_hand() -> None:
    f = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    p = torch.zeros(1, 3, 1, 1)
    assert losses.content_loss(f, p).item() == pytest.approx(7.0)  # ½(1 + 4 + 9)


def test_content_loss_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        losses.content_loss(torch.zeros(1, 3, 2, 2), torch.zeros(1, 4, 2, 2))


def test_style_layer_loss_equals_the_papers_formula() -> None:
    # E_l = 1/(4 N² M²) Σ (G − A)² with the paper's unnormalised Gram matrices.
    torch.manual_seed(0)
    x, s = torch.randn(1, 6, 4, 5, dtype=torch.float64), torch.randn(1, 6, 4, 5, dtype=torch.float64)
    n, m = 6, 20
    g_raw = x.reshape(n, m) @ x.reshape(n, m).T
    a_raw = s.reshape(n, m) @ s.reshape(n, m).T
    expected = ((g_raw - a_raw) ** 2).sum() / (4 * n**2 * m**2)
    got = losses.style_layer_loss(losses.gram_matrix(x), losses.gram_matrix(s))
    assert got.item() == pytest.approx(expected.item(), rel=1e-10)


def test_style_loss_weights_layers() -> None:
    torch.manual_seed(1)
    feats = {"a": torch.randn(1, 3, 4, 4), "b": torch.randn(1, 5, 2, 2)}
    targets = {k: losses.gram_matrix(torch.randn_like(v)) for k, v in feats.items()}
    ea = losses.style_layer_loss(losses.gram_matrix(feats["a"]), targets["a"])
    eb = losses.style_layer_loss(losses.gram_matrix(feats["b"]), targets["b"])
    total = losses.style_loss(feats, targets, {"a": 0.25, "b": 2.0})
    assert total.item() == pytest.approx((0.25 * ea + 2.0 * eb).item(), rel=1e-6)
    with pytest.raises(ValueError):
        losses.style_loss(feats, targets, {})


def test_total_variation_by_hand() -> None:
    x = torch.tensor([[0.0, 1.0], [2.0, 4.0]]).view(1, 1, 2, 2)
    # vertical: (2-0)² + (4-1)² = 13; horizontal: (1-0)² + (4-2)² = 5
    assert losses.total_variation(x).item() == pytest.approx(18.0)
    assert losses.total_variation(torch.full((1, 3, 5, 5), 0.3)).item() == 0.0
    # l1: |2| + |3| + |1| + |2| = 8, less what the smoothing at zero takes off (√(d² + ε²) − ε per pair).
    eps = losses.TV_EPS
    by_hand = sum((d * d + eps * eps) ** 0.5 - eps for d in (2.0, 3.0, 1.0, 2.0))
    assert losses.total_variation(x, "l1").item() == pytest.approx(by_hand, rel=1e-6)
    assert by_hand == pytest.approx(8.0, abs=4 * eps)
    assert losses.total_variation(torch.full((1, 3, 5, 5), 0.3), "l1").item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="norm"):
        losses.total_variation(x, "l3")


def test_l1_chroma_total_variation_charges_colour_specks_by_their_square() -> None:
    flat = torch.full((1, 3, 5, 5), 0.5)
    assert losses.total_variation(flat, "l1-chroma").item() == pytest.approx(0.0, abs=1e-6)
    grey, red, red2 = flat.clone(), flat.clone(), flat.clone()
    grey[0, :, 2, 2] += 0.1  # a brighter grey pixel: no chroma, so exactly the l1 form
    red[0, 0, 2, 2] += 0.1  # the same in red alone: Cb −0.0169, Cr 0.05 against its four neighbours
    red2[0, 0, 2, 2] += 0.2
    assert losses.total_variation(grey, "l1-chroma").item() == pytest.approx(losses.total_variation(grey, "l1").item())
    tau, cb, cr = losses.TV_CHROMA_SCALE, -0.0168736, 0.05
    chroma = 4 * (cb**2 + cr**2) / (2 * tau)
    extra = losses.total_variation(red, "l1-chroma").item() - losses.total_variation(red, "l1").item()
    assert extra == pytest.approx(chroma, rel=1e-4)
    # Twice the colour contrast: the l1 part doubles, the chroma part quadruples.
    extra2 = losses.total_variation(red2, "l1-chroma").item() - losses.total_variation(red2, "l1").item()
    assert extra2 == pytest.approx(4 * chroma, rel=1e-4)
    with pytest.raises(ValueError, match="RGB"):
        losses.total_variation(torch.rand(1, 1, 4, 4), "l1-chroma")


def test_blend_grams_normalises_weights() -> None:
    a, b = torch.ones(2, 2), torch.zeros(2, 2)
    assert torch.allclose(losses.blend_grams([a, b], [2.0, 1.0]), torch.full((2, 2), 2 / 3))
    with pytest.raises(ValueError):
        losses.blend_grams([a, b], [1.0])
    with pytest.raises(ValueError):
        losses.blend_grams([a, b], [0.0, 0.0])


def test_gradients_match_finite_differences() -> None:
    torch.manual_seed(2)
    x = torch.randn(1, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    p = torch.randn(1, 3, 3, 4, dtype=torch.float64)
    a = losses.gram_matrix(torch.randn(1, 3, 3, 4, dtype=torch.float64))
    assert gradcheck(losses.gram_matrix, (x,))
    assert gradcheck(lambda t: losses.content_loss(t, p), (x,))
    assert gradcheck(lambda t: losses.style_layer_loss(losses.gram_matrix(t), a), (x,))
    assert gradcheck(losses.total_variation, (x,))
    assert gradcheck(lambda t: losses.total_variation(t, "l1"), (x,))
    assert gradcheck(lambda t: losses.total_variation(t, "l1-chroma"), (x,))
