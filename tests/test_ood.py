"""AUROC, AUPRC, FPR at 95% TPR and thresholds against independent references."""

import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from sklearn.metrics import average_precision_score, roc_auc_score

from vaekit.errors import VaekitError
from vaekit.evaluation.ood import auprc, auroc, choose_threshold, fpr_at_tpr, ood_metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_matches_sklearn_and_mann_whitney_on_random_scores(seed):
    rng = np.random.default_rng(seed)
    s_in = rng.normal(0.0, 1.0, 300)
    s_out = rng.normal(0.7, 1.3, 200)
    s_in[:20] = np.round(s_in[:20])  # ties, which count one half
    s_out[:20] = np.round(s_out[:20])
    labels = np.r_[np.zeros(300), np.ones(200)]
    a = auroc(s_in, s_out)
    assert a == pytest.approx(roc_auc_score(labels, np.r_[s_in, s_out]), abs=1e-12)
    # AUROC = U / (n_in n_out): the Mann-Whitney statistic of the out sample
    u = mannwhitneyu(s_out, s_in).statistic
    assert a == pytest.approx(u / (300 * 200), abs=1e-12)
    assert 0.6 < a < 0.8  # the shift is real, so not chance
    assert auroc(-s_in, -s_out) == pytest.approx(1 - a, abs=1e-12)  # direction: higher = anomalous


def test_auprc_is_average_precision_with_out_as_positive():
    rng = np.random.default_rng(3)
    s_in, s_out = rng.normal(0, 1, 400), rng.normal(1, 1, 100)
    ref = average_precision_score(np.r_[np.zeros(400), np.ones(100)], np.r_[s_in, s_out])
    assert auprc(s_in, s_out) == pytest.approx(ref)
    # chance level is the fraction of positives; random scores stay near it
    assert auprc(rng.normal(size=4000), rng.normal(size=1000)) == pytest.approx(0.2, abs=0.03)


def _fpr95_reference(s_in, s_out, tpr=0.95):
    """Brute force: try every score as a threshold (flag >= t); among those flagging at least
    `tpr` of the out examples, the lowest fraction of in examples flagged."""
    best = 1.0
    for t in np.unique(np.r_[s_in, s_out]):
        if np.mean(s_out >= t) >= tpr:
            best = min(best, np.mean(s_in >= t))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fpr_at_95_tpr_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    s_in, s_out = rng.normal(0, 1, 250), rng.normal(1.5, 1, 170)
    assert fpr_at_tpr(s_in, s_out) == pytest.approx(_fpr95_reference(s_in, s_out))
    # Gaussians 1.5 sd apart: the 5% quantile of out sits at 1.5 - 1.645, flagging ~56% of in
    assert 0.4 < fpr_at_tpr(s_in, s_out) < 0.7


def test_perfect_and_reversed_separation():
    s_in, s_out = np.arange(10.0), np.arange(10.0) + 100
    m = ood_metrics(s_in, s_out)
    assert (m["auroc"], m["auprc"], m["fpr95"]) == pytest.approx((1.0, 1.0, 0.0))
    r = ood_metrics(s_out, s_in)
    assert r["auroc"] == 0.0 and r["fpr95"] == 1.0


def test_threshold_flags_the_asked_fraction_of_validation():
    val = np.random.default_rng(0).normal(size=10000)
    t = choose_threshold(val, fpr=0.05)
    assert np.mean(val > t) == pytest.approx(0.05, abs=0.002)
    fresh = np.random.default_rng(1).normal(size=20000)
    assert np.mean(fresh > t) == pytest.approx(0.05, abs=0.01)  # holds on new in-distribution data


def test_bad_inputs_are_clear_errors():
    with pytest.raises(VaekitError, match="at least one"):
        auroc([], [1.0])
    with pytest.raises(VaekitError, match="finite"):
        auroc([np.nan, 1.0], [2.0])
    with pytest.raises(VaekitError, match="between 0 and 1"):
        choose_threshold([1.0, 2.0], fpr=0.0)
