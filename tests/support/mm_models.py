"""Test support: repositories of small scikit-learn models whose answer names the model (for multi-model tests)."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LinearRegression


def regression(i: int) -> LinearRegression:
    """A regression whose answer at x = 0 is its own index: every reply says which model served it."""
    x = np.random.default_rng(i).random((20, 3))
    return LinearRegression().fit(x, x @ np.array([1.0, 2.0, 3.0]) + i)


def repository(root: Path, models: int, broken: bool = True) -> Path:
    """`root/m{i}/model.joblib` for i < models, and `root/broken` holding a file that is no model."""
    for i in range(models):
        (root / f"m{i}").mkdir(parents=True)
        joblib.dump(regression(i), root / f"m{i}" / "model.joblib")
    if broken:
        (root / "broken").mkdir()
        (root / "broken" / "model.joblib").write_bytes(b"not a pickle")
    return root


ZERO_V2 = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [0.0, 0.0, 0.0]}]}
