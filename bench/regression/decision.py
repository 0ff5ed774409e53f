"""The regression check's decision per case, as asv decides: the ratio of the medians, a one-sided
Mann-Whitney U test, and a bootstrap interval of the ratio."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Verdict:
    ratio: float  # median(new) / median(base) seconds per step: above 1 is slower
    ci: tuple[float, float]  # 95% bootstrap interval of the ratio
    p_slower: float  # one-sided Mann-Whitney U: new samples larger than base samples
    p_faster: float
    status: str  # "regression", "faster" or "ok"


def decide(base: list[float], new: list[float], tolerance: float, alpha: float) -> Verdict:
    """Regression iff the new side is slower by more than `tolerance` and significantly so (p < alpha)."""
    import numpy as np
    from scipy.stats import mannwhitneyu

    ratio = statistics.median(new) / statistics.median(base)
    p_slower = float(mannwhitneyu(new, base, alternative="greater").pvalue)
    p_faster = float(mannwhitneyu(new, base, alternative="less").pvalue)
    if ratio > 1 + tolerance and p_slower < alpha:
        status = "regression"
    elif ratio < 1 / (1 + tolerance) and p_faster < alpha:
        status = "faster"
    else:
        status = "ok"
    rng = np.random.default_rng(0)  # a fixed seed: the same samples always give the same interval
    resampled = np.median(rng.choice(new, (BOOTSTRAP_RESAMPLES, len(new))), axis=1) / np.median(
        rng.choice(base, (BOOTSTRAP_RESAMPLES, len(base))), axis=1
    )
    low, high = np.percentile(resampled, [2.5, 97.5])
    return Verdict(ratio, (float(low), float(high)), p_slower, p_faster, status)
