"""The explorer's library layer, checked against independent references (sklearn, torch.distributions, scipy)."""

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from sklearn.decomposition import PCA
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

import vaekit
from vaekit.core import sampling
from vaekit.data.images import ImageTooLarge
from vaekit.errors import DataError, VaekitError
from vaekit.evaluation.latent import ACTIVE_UNIT_THRESHOLD, unit_activity
from vaekit.serve import scoring
from vaekit.serve.explorer import Explorer, LatentPlane, image_from_bytes, latent_dims


@pytest.fixture(scope="module")
def explorer(digits_run):
    return Explorer.from_run(digits_run, score_reference=60)


def test_plane_matches_sklearn_pca():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(300, 5, generator=g) * torch.tensor([3.0, 2.0, 1.0, 0.5, 0.1]) + 1.5
    plane = LatentPlane.fit(mu)
    pca = PCA(n_components=2).fit(mu.double().numpy())
    uv = plane.project(mu).double().numpy()
    ref = pca.transform(mu.double().numpy())
    # principal axes are defined up to sign
    signs = np.sign((uv * ref).sum(0))
    np.testing.assert_allclose(uv * signs, ref, atol=1e-4)
    grid = torch.tensor([[0.0, 0.0], [1.0, -2.0], [-3.5, 0.25]])
    np.testing.assert_allclose(plane.lift(grid).numpy(), pca.inverse_transform(grid.numpy() * signs), atol=1e-4)
    # a map point lifted into the latent space projects back onto itself
    torch.testing.assert_close(plane.project(plane.lift(grid)), grid, atol=1e-5, rtol=0)
    assert plane.method == "pca" and "PC 1" in plane.axis_names[0]


def test_plane_is_the_latent_axes_in_two_and_one_dimensions():
    plane = LatentPlane.fit(torch.randn(50, 2))
    uv = torch.tensor([[0.3, -1.2]])
    torch.testing.assert_close(plane.lift(uv), uv)
    plane1 = LatentPlane.fit(torch.randn(50, 1))
    torch.testing.assert_close(plane1.lift(torch.tensor([[0.7, 5.0]])), torch.tensor([[0.7]]))
    torch.testing.assert_close(plane1.project(torch.tensor([[0.7]])), torch.tensor([[0.7, 0.0]]))


def test_latent_dims_kl_activity_and_order():
    g = torch.Generator().manual_seed(1)
    n = 400
    mu = torch.randn(n, 3, generator=g) * torch.tensor([0.05, 2.0, 0.8])
    logvar = torch.randn(n, 3, generator=g) * 0.1 + torch.tensor([0.0, -3.0, -1.0])
    dims = latent_dims(mu, logvar, stochastic=True)
    ref_kl = kl_divergence(Normal(mu.double(), (0.5 * logvar.double()).exp()), Normal(0.0, 1.0)).mean(0)
    by_index = {d.index: d for d in dims}
    for d in range(3):
        assert by_index[d].kl == pytest.approx(float(ref_kl[d]), rel=1e-9)
        # the active-unit statistic of the metrics (unbiased variance of the posterior means)
        assert by_index[d].activity == pytest.approx(float(np.var(mu[:, d].double().numpy(), ddof=1)), rel=1e-9)
        assert by_index[d].activity == pytest.approx(float(unit_activity(mu)[d]), rel=1e-12)
        assert by_index[d].active == (by_index[d].activity > ACTIVE_UNIT_THRESHOLD)
        assert by_index[d].low < float(mu[:, d].mean()) < by_index[d].high
    assert [d.kl for d in dims] == sorted((d.kl for d in dims), reverse=True)
    assert [d.index for d in dims] == [1, 2, 0] and not by_index[0].active
    # an AE has no KL: its dimensions are ordered by activity
    ae = latent_dims(mu, torch.full_like(mu, -math.inf), stochastic=False)
    assert [d.index for d in ae] == [1, 2, 0] and all(d.kl == 0 for d in ae)


def test_anomaly_score_is_recon_plus_kl(digits_run):
    model = vaekit.load(digits_run)
    x = vaekit.load_run(digits_run).data().test.x[:5]
    got = scoring.anomaly_score(model, x, samples=3, seed=7)
    # the same estimate written out with torch.distributions and the same noise
    q = model.encode(x)
    post = Normal(q.mu, q.std)
    gen = torch.Generator().manual_seed(7)
    recon = 0.0
    with torch.no_grad():
        for _ in range(3):
            z = q.mu + q.std * torch.randn(q.mu.shape, generator=gen)
            logits = model.decode_params(z)[:, 0]
            recon = recon - Independent(Bernoulli(logits=logits, validate_args=False), 3).log_prob(x)
        kl = kl_divergence(post, Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(got, (recon / 3 + kl).float(), rtol=1e-5, atol=1e-4)
    # seeded: the same image always gets the same score
    torch.testing.assert_close(got, scoring.anomaly_score(model, x, samples=3, seed=7))


def test_percentile_rank_matches_scipy():
    ref = torch.tensor([1.0, 2.0, 2.0, 3.0, 5.0, 8.0])
    for v in [0.5, 2.0, 4.0, 8.0, 9.0]:
        assert scoring.percentile_rank(v, ref) == pytest.approx(stats.percentileofscore(ref.numpy(), v, kind="mean"))


def test_explorer_decode_and_map_point(explorer):
    z = torch.tensor([0.5, -1.0, 0.0, 2.0])
    torch.testing.assert_close(explorer.decode(z.tolist()), sampling.decode(explorer.model, z[None])[0])
    zz, image = explorer.decode_map_point(1.0, -0.5)
    torch.testing.assert_close(zz, explorer.plane.lift(torch.tensor([[1.0, -0.5]]))[0])
    torch.testing.assert_close(image, explorer.decode(zz))
    # the map shows the test set's posterior means
    mu = sampling.encode_dataset(explorer.model, explorer.test.subset(explorer.map_index))["mu"]
    torch.testing.assert_close(explorer.map_xy, explorer.plane.project(mu))


def test_explorer_checks(explorer):
    with pytest.raises(VaekitError, match="has 3 numbers; .* 4 dimensions"):
        explorer.decode([0.0, 0.0, 0.0])
    with pytest.raises(VaekitError, match="non-finite"):
        explorer.decode([0.0, math.nan, 0.0, 0.0])
    with pytest.raises(VaekitError, match="within"):
        explorer.decode([0.0, 1e9, 0.0, 0.0])
    with pytest.raises(VaekitError, match="not conditional"):
        explorer.decode([0.0] * 4, label=1)
    with pytest.raises(VaekitError, match="out of range; the test split has 180"):
        explorer.example(180)
    with pytest.raises(VaekitError, match="steps"):
        explorer.interpolate(0, 1, steps=1)
    with pytest.raises(VaekitError, match="temperature"):
        explorer.samples(4, temperature=0.0)


def test_analyze_a_test_image(explorer):
    x, _ = explorer.example(3)
    a = explorer.analyze(x)
    q = explorer.model.encode(x[None])
    torch.testing.assert_close(a.mu, q.mu[0].detach())
    torch.testing.assert_close(a.std, q.std[0].detach())
    torch.testing.assert_close(a.reconstruction, sampling.reconstruct(explorer.model, x[None])[0])
    assert a.score == pytest.approx(float(explorer.scorer(x[None])[0]))
    assert a.flagged == (a.score > explorer.scorer.threshold)
    assert a.percentile == pytest.approx(scoring.percentile_rank(a.score, explorer.score_reference))


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_image_from_bytes_converts_and_resizes():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    x = image_from_bytes(_png(rgb), [1, 8, 8])
    ref = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255
    np.testing.assert_allclose(x[0].numpy(), ref)
    big = image_from_bytes(_png(np.full((40, 60), 255, np.uint8)), [1, 8, 8])
    assert big.shape == (1, 8, 8) and torch.allclose(big, torch.ones(1, 8, 8))
    assert image_from_bytes(_png(rgb), [3, 4, 4]).shape == (3, 4, 4)


def test_image_from_bytes_refuses_bad_uploads():
    with pytest.raises(DataError, match="not an image"):
        image_from_bytes(b"%PDF-1.4 not an image", [1, 8, 8])
    with pytest.raises(DataError, match="empty"):
        image_from_bytes(b"", [1, 8, 8])
    with pytest.raises(ImageTooLarge, match="3000 x 2000 pixels"):
        image_from_bytes(_png(np.zeros((2000, 3000), np.uint8)), [1, 8, 8], max_pixels=1_000_000)
    with pytest.raises(VaekitError, match="not on images"):
        image_from_bytes(_png(np.zeros((8, 8), np.uint8)), [6])
