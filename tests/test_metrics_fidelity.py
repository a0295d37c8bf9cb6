"""Precision / recall (k-NN manifolds, Kynkaanniemi et al. 2019) and the sharpness ratio, on cases
with a known answer and against independent references (scipy's distances, scikit-learn's
nearest neighbours, scipy.ndimage's Laplacian)."""

import numpy as np
import pytest
import scipy.ndimage
import scipy.spatial
import torch
from sklearn.neighbors import NearestNeighbors

from vaekit.errors import VaekitError
from vaekit.evaluation import precision_recall as pr
from vaekit.evaluation import sharpness


def blobs(n: int, centres, *, spread: float = 0.3, seed: int = 0) -> torch.Tensor:
    """n points around the given centres (equal shares), (n, F)."""
    g = torch.Generator().manual_seed(seed)
    c = torch.as_tensor(centres, dtype=torch.float64)
    k = torch.arange(n) % len(c)
    return c[k] + spread * torch.randn(n, c.shape[1], generator=g, dtype=torch.float64)


def brute_force(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """The definition, written out with scipy's distances and scikit-learn's neighbours."""

    def radii(x):  # k-th neighbour other than the point itself: the (k+1)-th including it
        return NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)[0][:, k]

    d = scipy.spatial.distance.cdist(fake, real)  # (M, N)
    precision = (d <= radii(real)[None, :]).any(1).mean()
    recall = (d.T <= radii(fake)[None, :]).any(1).mean()
    return float(precision), float(recall)


def test_identical_sets_have_precision_and_recall_one():
    x = blobs(500, [[0.0] * 8, [3.0] * 8])
    assert pr.precision_recall(x, x.clone()) == {"precision": 1.0, "recall": 1.0}


def test_a_far_away_set_has_precision_and_recall_zero():
    x = blobs(400, [[0.0] * 8])
    assert pr.precision_recall(x, blobs(400, [[50.0] * 8], seed=1)) == {"precision": 0.0, "recall": 0.0}


def test_a_subset_keeps_its_precision_and_loses_recall():
    """Samples from one of two equally likely modes: every sample is realistic (precision 1: they
    are points of the real set), half the real data is not covered (recall about 0.5)."""
    real = blobs(1000, [[0.0] * 4, [10.0] * 4])
    half = real[::2]  # the points of the first mode
    res = pr.precision_recall(real, half)
    assert res["precision"] == 1.0
    assert 0.45 < res["recall"] < 0.55
    # and the same mode drawn afresh (not the same points): precision stays high, recall halves
    fresh = pr.precision_recall(real, blobs(500, [[0.0] * 4], seed=3))
    assert fresh["precision"] > 0.9 and 0.4 < fresh["recall"] < 0.55


@pytest.mark.parametrize("k", [1, 3, 5])
def test_matches_the_definition_computed_independently(k):
    real = blobs(700, [[0.0] * 6, [2.0] * 6], seed=4).numpy()
    fake = blobs(600, [[0.5] * 6, [1.0, 4.0, 0, 0, 0, 0]], spread=0.6, seed=5).numpy()
    res = pr.precision_recall(torch.from_numpy(real), torch.from_numpy(fake), k=k)
    p, r = brute_force(real, fake, k)
    assert 0 < p < 1 and 0 < r < 1  # a case that tests something
    assert (res["precision"], res["recall"]) == (p, r)


def test_radii_are_the_kth_neighbour_distance_across_blocks(monkeypatch):
    monkeypatch.setattr(pr, "BLOCK", 64)  # several row blocks
    x = blobs(300, [[0.0] * 5], seed=6)
    ref = NearestNeighbors(n_neighbors=4).fit(x.numpy()).kneighbors(x.numpy())[0][:, 3]
    np.testing.assert_allclose(pr.knn_radii(x, 3).numpy(), ref, rtol=1e-9, atol=1e-9)


def test_bad_input_is_refused():
    with pytest.raises(VaekitError, match="1 <= k"):
        pr.knn_radii(torch.zeros(3, 2), 3)
    with pytest.raises(VaekitError, match="differ in size"):
        pr.precision_recall(torch.zeros(5, 2), torch.zeros(5, 3))


def images(n: int = 64, seed: int = 0) -> torch.Tensor:
    """Random smooth-ish images with edges: (n, 2, 20, 24)."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 2, 5, 6, generator=g) > 0.5).double()
    return torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")


def test_laplacian_energy_matches_scipy_and_a_closed_form():
    x = images(8)
    # scipy.ndimage.laplace is the same 5-point stencil; compare where the stencil fits
    ref = np.stack([[scipy.ndimage.laplace(c.numpy())[1:-1, 1:-1] for c in img] for img in x])
    assert sharpness.laplacian_energy(x) == pytest.approx(float((ref**2).mean()), rel=1e-12)
    # a +-1 checkerboard: every interior response is -8 times the pixel, energy 64
    i, j = torch.meshgrid(torch.arange(9), torch.arange(7), indexing="ij")
    board = ((-1.0) ** (i + j))[None, None].double()
    assert sharpness.laplacian_energy(board) == pytest.approx(64.0)
    assert sharpness.laplacian_energy(torch.full((3, 1, 5, 5), 0.7)) == 0.0


def test_blurred_copies_are_less_sharp_the_more_they_are_blurred():
    x = images(64)
    assert sharpness.sharpness_ratio(x.clone(), x) == pytest.approx(1.0)
    ratios = []
    for sigma in (0.5, 1.0, 2.0):
        blurred = torch.from_numpy(scipy.ndimage.gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma)))
        ratios.append(sharpness.sharpness_ratio(blurred, x))
    assert 1.0 > ratios[0] > ratios[1] > ratios[2] > 0.0, ratios
    noisy = x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    assert sharpness.sharpness_ratio(noisy, x) > 1.0


def test_sharpness_needs_images_and_an_unflat_reference():
    with pytest.raises(VaekitError, match="at least 3x3"):
        sharpness.laplacian_energy(torch.zeros(4, 1, 2, 8))
    with pytest.raises(VaekitError, match="flat"):
        sharpness.sharpness_ratio(images(2), torch.zeros(2, 2, 20, 24))
    assert sharpness.is_measurable([3, 32, 32]) and not sharpness.is_measurable([64])
