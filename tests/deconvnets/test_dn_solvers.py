"""The numerical pieces: operators and gradients, CG, shrinkage, the paper's inference, and ADMM."""

from __future__ import annotations

import itertools

import pytest
import torch

from stylegram.deconvnets import AdmmOptions, ConvBPDN, InferenceOptions, LayerSpec, fourier, ops, sparse_code
from stylegram.deconvnets.inference import relaxed_objective, x_step, z_step
from stylegram.deconvnets.layer import connectivity_table, initial_layer
from stylegram.deconvnets.shrink import penalty, shrink


def _layer(maps: int, channels: int, size: int, seed: int = 0, dtype: torch.dtype = torch.float64):  # type: ignore[no-untyped-def]
    return initial_layer(LayerSpec(maps=maps, filter=size), channels, torch.Generator().manual_seed(seed)).to(
        "cpu", dtype)


def test_paper_connectivity_is_singles_then_pairs() -> None:
    g = connectivity_table(45, 9, "paper")
    assert g[:9].sum(1).eq(1).all() and g[9:].sum(1).eq(2).all()
    pairs = {tuple(row.nonzero().flatten().tolist()) for row in g[9:]}
    assert len(pairs) == 36  # every pair of the 9 layer-1 maps exactly once
    assert connectivity_table(9, 1, "paper").all()


@pytest.mark.parametrize(("maps", "channels"), [(3, 1), (5, 3)])
def test_gradients_match_autograd(maps: int, channels: int) -> None:
    layer = _layer(maps, channels, 3)
    g = torch.Generator().manual_seed(1)
    y = torch.randn(2, channels, 6, 7, dtype=torch.float64, generator=g)
    z = torch.randn(2, maps, 8, 9, dtype=torch.float64, generator=g, requires_grad=True)
    f = layer.filters.clone().requires_grad_(True)
    lam = 0.7
    rec = ops.objective(y, z, ops.weight(f, layer.connectivity), lam, 1.0)["reconstruction"].sum()
    gz, gf = torch.autograd.grad(rec, (z, f))
    r = ops.reconstruct(z.detach(), layer.weight()) - y
    torch.testing.assert_close(lam * ops.adjoint(r, layer.weight()), gz)
    torch.testing.assert_close(lam * ops.filter_gradient(z.detach(), r, layer.filters, layer.connectivity), gf)
    # The Fourier-domain operator of the z-step is the same F, and its adjoint the same Fᵀ.
    op = fourier.ValidConvolution(layer.filters, layer.connectivity, (6, 7))
    torch.testing.assert_close(op.forward(fourier.rfft(z.detach())), ops.reconstruct(z.detach(), layer.weight()))
    torch.testing.assert_close(fourier.irfft(op.adjoint(r), op.grid), ops.adjoint(r, layer.weight()))


def test_cg_z_step_matches_a_direct_solve() -> None:
    layer = _layer(2, 1, 3)
    g = torch.Generator().manual_seed(2)
    y = torch.randn(1, 1, 5, 5, dtype=torch.float64, generator=g)
    x = torch.randn(1, 2, 7, 7, dtype=torch.float64, generator=g)
    lam, beta, w = 3.0, 0.5, layer.weight()
    n = x.numel()
    basis = torch.eye(n, dtype=torch.float64).view(n, 2, 7, 7)
    a = (lam * ops.adjoint(ops.reconstruct(basis, w), w) + beta * basis).view(n, n).T
    b = (lam * ops.adjoint(y, w) + beta * x).flatten()
    direct = torch.linalg.solve(a, b).view(1, 2, 7, 7)
    op = fourier.ValidConvolution(layer.filters, layer.connectivity, (5, 5))
    solved = z_step(y, x, torch.zeros_like(x), op, lam, beta, iterations=n)
    torch.testing.assert_close(solved, direct, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("p", [1.0, 0.8, 0.5, 0.3, 0.0])
@pytest.mark.parametrize("beta", [0.5, 4.0, 50.0])
def test_shrinkage_is_the_brute_force_minimiser(p: float, beta: float) -> None:
    v = torch.linspace(-4, 4, 161, dtype=torch.float64)
    grid = torch.cat([torch.linspace(-5, 5, 200001, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])
    best = penalty(grid[None, :], beta, p, v[:, None]).min(1).values
    got = penalty(shrink(v, beta, p), beta, p, v)
    # Never worse than the best grid point (exact zero among them), and within the grid's resolution of it.
    assert (got <= best + 1e-9).all()
    assert (best - got < 1e-3 * (1 + best)).all()


def test_inference_objective_falls_at_fixed_beta() -> None:
    layer = _layer(4, 1, 5, dtype=torch.float32)
    y = torch.randn(2, 1, 20, 20, generator=torch.Generator().manual_seed(3))
    w, lam, p, beta = layer.weight(), 2.0, 1.0, 3.0
    op = fourier.ValidConvolution(layer.filters, layer.connectivity, (20, 20))
    z = torch.zeros(2, 4, 24, 24)
    x = x_step(z, beta, p)
    values = [relaxed_objective(y, z, x, w, lam, p, beta)]
    for _ in range(15):
        x = x_step(z, beta, p)
        values.append(relaxed_objective(y, z, x, w, lam, p, beta))
        z = z_step(y, x, z, op, lam, beta, iterations=3)
        values.append(relaxed_objective(y, z, x, w, lam, p, beta))
    assert all(b <= a * (1 + 1e-6) for a, b in itertools.pairwise(values))
    assert values[-1] < 0.9 * values[0]


def test_admm_and_the_paper_solver_agree_on_the_valid_problem() -> None:
    layer = _layer(3, 1, 5, seed=4)
    truth = torch.zeros(1, 3, 24, 24, dtype=torch.float64)
    truth[0, torch.tensor([0, 1, 2, 1]), torch.tensor([5, 9, 14, 18]), torch.tensor([7, 15, 4, 11])] = 2.0
    y = ops.reconstruct(truth, layer.weight()) + 0.02 * torch.randn(1, 1, 20, 20, dtype=torch.float64,
                                                                    generator=torch.Generator().manual_seed(5))
    lam = 20.0
    admm = sparse_code(layer.filters, y, lam, solver="admm", admm=AdmmOptions(iterations=3000, rel_tol=1e-7))
    slow = InferenceOptions(beta0=1.0, beta_inc=1.3, beta_max=1e4, alternations=6, cg_iterations=10)
    paper = sparse_code(layer.filters, y, lam, solver="zeiler", inference=slow)
    assert admm.maps.shape == paper.maps.shape == (1, 3, 24, 24)
    assert abs(paper.terms["total"] / admm.terms["total"] - 1) < 0.01
    assert admm.terms["total"] <= paper.terms["total"] * (1 + 1e-4)  # ADMM solves the convex problem exactly


def test_circular_admm_meets_the_optimality_conditions() -> None:
    layer = _layer(4, 1, 4, seed=6)
    s = torch.randn(2, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    l1 = 0.3
    # A fixed ρ: SPORCO's residual balancing (the default) drifts on a problem this small, SPORCO's own as well.
    solver = ConvBPDN(layer.filters, s, l1, AdmmOptions(iterations=3000, rel_tol=1e-9, auto_rho=False))
    result = solver.solve()
    x = result.maps
    spec = fourier.Spectrum(layer.filters, None, (16, 16))
    grad = fourier.irfft(spec.adjoint(fourier.rfft(solver.reconstruction(x) - s)), (16, 16))  # Dᵀ(Dx − s)
    on = x != 0
    assert on.any() and (~on).any()
    torch.testing.assert_close(grad[on], -l1 * torch.sign(x[on]), atol=1e-3, rtol=0)
    assert grad[~on].abs().max() <= l1 + 1e-3


def test_admm_step_can_be_stopped() -> None:
    layer = _layer(2, 1, 3, dtype=torch.float32)
    s = torch.randn(1, 1, 12, 12)
    seen: list[int] = []
    result = ConvBPDN(layer.filters, s, 0.1, AdmmOptions(iterations=50, rel_tol=0)).solve(
        lambda e: seen.append(e.iteration) or e.iteration >= 3)
    assert result.stopped and result.iterations == 3 and seen == [1, 2, 3]
    assert {"reconstruction", "sparsity", "total", "nonzero"} <= set(result.terms)


def test_pixel_filters_are_the_composition_of_both_layers() -> None:
    lower, upper = _layer(3, 1, 3, seed=8), _layer(4, 3, 3, seed=9)
    from stylegram.deconvnets.model import DeconvNet

    net = DeconvNet((lower, upper))
    pix = net.pixel_filters(1)  # (4, 1, 5, 5)
    delta = torch.zeros(1, 4, 9, 9, dtype=torch.float64)
    delta[0, 2, 4, 4] = 1.0  # one unit of upper map 2, projected down: its pixel-space filter, placed at (4, 4)
    image = net.project(delta, 1)[0, 0]  # (5, 5) valid output of a 9 → 7 → 5 chain
    torch.testing.assert_close(image, pix[2, 0])


def test_rank_one_solve_matches_a_direct_solve() -> None:
    g = torch.Generator().manual_seed(11)

    def c(*shape: int) -> torch.Tensor:
        return torch.complex(torch.randn(*shape, dtype=torch.float64, generator=g),
                             torch.randn(*shape, dtype=torch.float64, generator=g))

    b, k, f, sigma = 2, 4, 6, 0.7
    a, z, s = c(b, k, f), c(b, k, f), c(b, 1, f)
    inv = 1.0 / (sigma + a.abs().square().sum(1))
    got = fourier.rank_one_solve_(z.clone(), a, s, inv)
    for i, j in itertools.product(range(b), range(f)):
        row = a[i, :, j]
        m = torch.outer(row.conj(), row) + sigma * torch.eye(k, dtype=row.dtype)
        want = torch.linalg.solve(m, sigma * z[i, :, j] + row.conj() * s[i, 0, j])
        torch.testing.assert_close(got[i, :, j], want)


def test_grouped_admm_iterations_equal_the_whole_array_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    # On the CPU the one-channel iteration runs over groups of maps; force three groups and compare it with the
    # whole-array iteration step by step, ρ updates and over-relaxation included.
    layer = _layer(5, 1, 3, seed=12)
    s = torch.randn(2, 1, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(13))
    monkeypatch.setattr(fourier, "GROUP_BYTES", 2 * 2 * 12 * 12 * 8)
    grouped = ConvBPDN(layer.filters, s, 0.2, AdmmOptions(iterations=30, rel_tol=0))
    whole = ConvBPDN(layer.filters, s, 0.2, AdmmOptions(iterations=30, rel_tol=0))
    assert len(fourier.map_groups(grouped.y)) == 3
    monkeypatch.setattr(whole, "_step_plain", whole._step_plain_dense)
    for _ in range(30):
        torch.testing.assert_close(grouped.step(), whole.step(), rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(grouped.y, whole.y, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(grouped.u, whole.u, rtol=1e-9, atol=1e-12)
        assert grouped.rho == pytest.approx(whole.rho, rel=1e-9)
    assert grouped.rho != pytest.approx(0.2 * 50 + 1)  # the residual balancing did move ρ
