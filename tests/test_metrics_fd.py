"""The Frechet distance against scipy's matrix square root and closed forms."""

import numpy as np
import pytest
import scipy.linalg

from vaekit.errors import VaekitError
from vaekit.evaluation import sample_quality as metrics


def scipy_reference(mu1, cov1, mu2, cov2):
    """The textbook formula with scipy.linalg.sqrtm (as pytorch-fid computes FID)."""
    covmean = scipy.linalg.sqrtm(cov1 @ cov2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1 + cov2 - 2 * np.real(covmean)))


def random_gaussian(rng, d):
    a = rng.normal(size=(d, d))
    return rng.normal(size=d), a @ a.T / d + 0.1 * np.eye(d)


@pytest.mark.parametrize("d", [1, 3, 16, 64])
def test_matches_scipy_reference(d):
    rng = np.random.default_rng(d)
    (m1, c1), (m2, c2) = random_gaussian(rng, d), random_gaussian(rng, d)
    assert metrics.frechet_distance(m1, c1, m2, c2) == pytest.approx(
        scipy_reference(m1, c1, m2, c2), rel=1e-7, abs=1e-9
    )


def test_closed_form_for_diagonal_covariances():
    m1, m2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = ((m1 - m2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()  # = 5 + 4 + 1 + 0
    assert metrics.frechet_distance(m1, np.diag(v1), m2, np.diag(v2)) == pytest.approx(expected) == pytest.approx(10.0)


def test_identical_gaussians_are_at_distance_zero_and_it_is_symmetric():
    rng = np.random.default_rng(0)
    (m1, c1), (m2, c2) = random_gaussian(rng, 8), random_gaussian(rng, 8)
    assert metrics.frechet_distance(m1, c1, m1, c1) == pytest.approx(0.0, abs=1e-9)
    assert metrics.frechet_distance(m1, c1, m2, c2) == pytest.approx(metrics.frechet_distance(m2, c2, m1, c1))
    # a singular covariance (fewer samples than dimensions) still gives a finite, non-negative value
    f = rng.normal(size=(5, 8))
    mu, cov = metrics.gaussian_stats(f)
    assert np.linalg.matrix_rank(cov) < 8
    assert 0 <= metrics.frechet_distance(mu, cov, m2, c2) < np.inf


def test_sample_statistics_converge_to_the_known_distance():
    rng = np.random.default_rng(1)
    (m1, c1), (m2, c2) = random_gaussian(rng, 4), random_gaussian(rng, 4)
    a = rng.multivariate_normal(m1, c1, size=200_000)
    b = rng.multivariate_normal(m2, c2, size=200_000)
    est = metrics.frechet_distance(*metrics.gaussian_stats(a), *metrics.gaussian_stats(b))
    assert est == pytest.approx(scipy_reference(m1, c1, m2, c2), rel=0.02)


def test_bad_shapes_are_refused():
    with pytest.raises(VaekitError):
        metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(VaekitError):
        metrics.gaussian_stats(np.zeros((1, 3)))
