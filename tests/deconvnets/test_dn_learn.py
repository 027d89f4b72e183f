"""Learning: unit-norm filters, dictionary recovery, checkpoints and resume, the model file, stopping."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylegram.deconvnets import (
    ConvBPDNDictLearn,
    DeconvModelError,
    DictLearnOptions,
    InferenceOptions,
    LayerSpec,
    LearnOptions,
    learn,
    load_model,
    ops,
)
from stylegram.deconvnets.filters import update_filters
from stylegram.deconvnets.layer import Layer, initial_layer
from stylegram.deconvnets.learn import Checkpointing, learn_from, load_checkpoint, state_identity

FAST = InferenceOptions(beta0=1.0, beta_inc=4.0, beta_max=256.0, alternations=2, cg_iterations=3)


def _pictures(n: int, size: int = 24, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, size, size, generator=g) for _ in range(n)]


def test_filter_update_keeps_unit_norm_and_lowers_the_error() -> None:
    layer = initial_layer(LayerSpec(maps=5, filter=5), 3, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    maps = torch.randn(2, 5, 20, 20, generator=g) * (torch.rand(2, 5, 20, 20, generator=g) < 0.1)
    y = torch.randn(2, 3, 16, 16, generator=g)
    new = update_filters(y, maps, layer, iterations=10)
    norms = new.filters.flatten(2).norm(dim=2)
    torch.testing.assert_close(norms[new.connectivity], torch.ones(int(new.connectivity.sum())))
    assert (new.filters[~new.connectivity] == 0).all()

    def error(lay: Layer) -> float:
        return float((ops.reconstruct(maps, lay.weight()) - y).square().sum())

    assert error(new) < error(layer)


def test_learning_recovers_a_known_dictionary() -> None:
    # Generated images: sparse spikes (1 % of positions, |amplitude| 1–2) convolved with 3 known unit-norm 5×5
    # filters: a horizontal ramp, a vertical ramp and a saddle. Six maps are learned (dictionary learning with
    # exactly as many atoms as the truth has local minima that duplicate one); each true filter must be found.
    a = torch.linspace(-1, 1, 5)
    truth = torch.stack([a[None, :].expand(5, 5), a[:, None].expand(5, 5), a[:, None] * a[None, :]])
    truth = ops.project_filters(truth[:, None], torch.ones(3, 1, dtype=torch.bool))
    g = torch.Generator().manual_seed(3)
    shape = (16, 3, 44, 44)
    spikes = torch.randn(shape, generator=g).sign() * (1 + torch.rand(shape, generator=g))
    maps = spikes * (torch.rand(shape, generator=g) < 0.01)
    y = ops.reconstruct(maps, ops.weight(truth, torch.ones(3, 1, dtype=torch.bool)))  # (16, 1, 40, 40)
    model = learn_from(y, [LayerSpec(maps=6, filter=5, lam=5.0)], LearnOptions(iterations=20, seed=3), FAST)
    cos = (model.layers[0].filters.flatten(1) @ truth.flatten(1).T).abs()  # |cosine|: sign and order are free
    assert (cos.max(0).values > 0.95).all(), cos


def test_resumed_learning_ends_with_the_same_filters(tmp_path: Path) -> None:
    pics, specs = _pictures(2), [LayerSpec(maps=3, filter=3), LayerSpec(maps=4, filter=3, lam=10.0)]
    lo = LearnOptions(iterations=2, size=16)
    straight = learn(pics, specs, lo, FAST)
    ck = tmp_path / "ck.pt"
    stops = iter([False, False, True])  # stop after layer 2's first epoch, its checkpoint written
    part = learn(pics, specs, lo, FAST, checkpointing=Checkpointing(ck, 1), on_step=lambda e: next(stops))
    assert part.record["stopped"] and ck.is_file()
    state = load_checkpoint(ck, state_identity(specs, lo, FAST, []))
    resumed = learn(pics, specs, lo, FAST, resume=state)
    for a, b in zip(straight.layers, resumed.layers, strict=True):
        torch.testing.assert_close(a.filters, b.filters, rtol=0, atol=0)
    with pytest.raises(Exception, match="other options"):
        load_checkpoint(ck, state_identity(specs, lo.replace(seed=5), FAST, []))


def test_model_file_round_trip_and_encoding(tmp_path: Path) -> None:
    specs = [LayerSpec(maps=3, filter=3), LayerSpec(maps=4, filter=3, lam=10.0)]
    model = learn(_pictures(2), specs, LearnOptions(iterations=1, size=16), FAST)
    path = model.save(tmp_path / "m.safetensors")
    back = load_model(path)
    assert [s.spec for s in back.layers] == [s.spec for s in model.layers]
    for a, b in zip(model.layers, back.layers, strict=True):
        torch.testing.assert_close(a.filters, b.filters)
        assert torch.equal(a.connectivity, b.connectivity)
    code = back.encode(torch.rand(1, 3, 20, 22))
    assert code.input.shape == (1, 1, 20, 22)
    assert code.layers[0].maps.shape == (1, 3, 22, 24) and code.layers[1].maps.shape == (1, 4, 24, 26)
    assert all(c.reconstruction.shape == (1, 1, 20, 22) for c in code.layers)
    assert 0 <= code.layers[0].terms["nonzero"] <= 1
    assert back.pixel_filters(1).shape == (4, 1, 5, 5)


@pytest.mark.parametrize("damage", ["truncate", "foreign", "missing"])
def test_bad_model_files_are_one_line_errors(tmp_path: Path, damage: str) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    if damage == "truncate":
        model = learn(_pictures(1), [LayerSpec(maps=2, filter=3)], LearnOptions(iterations=1, size=12), FAST)
        model.save(path)
        path.write_bytes(path.read_bytes()[:50])
    elif damage == "foreign":
        save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(DeconvModelError) as err:
        load_model(path)
    assert "\n" not in str(err.value)


def test_sporco_style_dictionary_learning_lowers_the_objective() -> None:
    g = torch.Generator().manual_seed(4)
    s = torch.randn(3, 24, 24, generator=g)
    dl = ConvBPDNDictLearn(torch.randn(6, 4, 4, generator=g), s, 0.2, DictLearnOptions(iterations=30))
    first = None
    for _ in range(30):
        dl.step()
        first = first or dl.objective()["total"]
    assert dl.objective()["total"] < first
    d = dl.dictionary
    torch.testing.assert_close(d.flatten(1).norm(dim=1), torch.ones(6))
    torch.testing.assert_close(d.mean(dim=(1, 2)), torch.zeros(6), atol=1e-6, rtol=0)


def test_dictionary_learning_is_the_same_in_groups_of_maps(monkeypatch: pytest.MonkeyPatch) -> None:
    from stylegram.deconvnets import fourier

    g = torch.Generator().manual_seed(5)
    s = torch.randn(2, 16, 16, generator=g, dtype=torch.float64)
    d0 = torch.randn(5, 3, 3, generator=g, dtype=torch.float64)
    runs = []
    for group_bytes in (1, 1 << 40):  # one map per group, and all maps in one
        monkeypatch.setattr(fourier, "GROUP_BYTES", group_bytes)
        dl = ConvBPDNDictLearn(d0, s, 0.2, DictLearnOptions(iterations=25))
        for _ in range(25):  # ρ of the dictionary step is updated at iterations 10 and 20
            dl.step()
        runs.append((dl.dictionary, dl.coefficients, dl.rho, dl.coding.rho))
    torch.testing.assert_close(runs[0][0], runs[1][0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(runs[0][1], runs[1][1], rtol=1e-9, atol=1e-12)
    assert runs[0][2:] == pytest.approx(runs[1][2:], rel=1e-9)
