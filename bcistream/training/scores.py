"""Scores people read in BCI reports: accuracy, Cohen's kappa, chance level with its 95 % bound, ITR.

Sources: chance level as the 95 % quantile of the binomial distribution of a random classifier's
correct answers (Combrisson & Jerbi 2015, J Neurosci Methods 250:126); information-transfer rate
after Wolpaw et al. 2002 (Clin Neurophysiol 113:767), bits per selection times selections per minute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

__all__ = ["Scores", "chance_upper_bound", "scores_from_confusion", "wolpaw_bits", "wolpaw_itr"]


def chance_upper_bound(n_trials: int, n_classes: int, alpha: float = 0.05) -> float:
    """Accuracy a random classifier stays below with probability ``1 - alpha``.

    Parameters
    ----------
    n_trials : int
        Scored trials.
    n_classes : int
        Balanced chance is ``1 / n_classes``.
    alpha : float
        One-sided level (0.05: the 95 % bound).

    Returns
    -------
    float
        ``binom.ppf(1 - alpha, n, 1/k) / n``; ``nan`` without trials.
    """
    if n_trials <= 0 or n_classes < 2:
        return float("nan")
    return float(binom.ppf(1 - alpha, n_trials, 1.0 / n_classes) / n_trials)


def wolpaw_bits(accuracy: float, n_classes: int) -> float:
    """Bits per selection (Wolpaw): ``log2 N + P log2 P + (1-P) log2((1-P)/(N-1))``; 0 at or below chance."""
    n, p = int(n_classes), float(accuracy)
    if n < 2 or not math.isfinite(p) or p <= 1.0 / n:
        return 0.0
    bits = math.log2(n) + p * math.log2(p)
    if p < 1.0:
        bits += (1 - p) * math.log2((1 - p) / (n - 1))
    return bits


def wolpaw_itr(accuracy: float, n_classes: int, seconds_per_selection: float) -> float:
    """Information-transfer rate in bits per minute (`wolpaw_bits` x selections per minute)."""
    if not seconds_per_selection or not math.isfinite(seconds_per_selection) or seconds_per_selection <= 0:
        return float("nan")
    return wolpaw_bits(accuracy, n_classes) * 60.0 / seconds_per_selection


@dataclass(frozen=True)
class Scores:
    """Summary of a confusion matrix (rows true, columns predicted)."""

    n: int
    accuracy: float
    kappa: float
    chance: float
    chance_upper95: float
    per_class_recall: tuple[float, ...]

    def line(self) -> str:
        """One line for a title or table: ``acc 0.72 · κ 0.63 · chance 0.25 (95 % ≤ 0.36) · n 48``."""
        return (f"acc {self.accuracy:.2f} · κ {self.kappa:.2f} · chance {self.chance:.2f} "
                f"(95 % ≤ {self.chance_upper95:.2f}) · n {self.n}")


def scores_from_confusion(confusion: np.ndarray) -> Scores:
    """Accuracy, Cohen's kappa, balanced chance and its 95 % binomial bound, recall per true class.

    Parameters
    ----------
    confusion : ndarray, shape (k, k)
        Counts; rows are true classes, columns predicted ones.
    """
    conf = np.asarray(confusion, dtype=float)
    n = float(conf.sum())
    k = conf.shape[0]
    if n == 0:
        nan = float("nan")
        return Scores(0, nan, nan, 1.0 / k, nan, tuple([nan] * k))
    po = float(np.trace(conf) / n)
    pe = float((conf.sum(axis=0) * conf.sum(axis=1)).sum() / n**2)
    kappa = (po - pe) / (1 - pe) if pe < 1 else float("nan")
    rows = conf.sum(axis=1)
    recall = tuple(float(conf[i, i] / rows[i]) if rows[i] else float("nan") for i in range(k))
    return Scores(int(n), po, float(kappa), 1.0 / k, chance_upper_bound(int(n), k), recall)
