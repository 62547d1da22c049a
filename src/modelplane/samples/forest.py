"""Samples: a random forest (100 trees) — batch-friendly: predicting 32 rows costs about what predicting 1 does."""

from __future__ import annotations

from pathlib import Path

FEATURES = 20


def train_forest(out_dir: str | Path, n_estimators: int = 100) -> Path:
    """A RandomForestClassifier on a synthetic 20-feature problem, saved as model.joblib (the sklearn runtime)."""
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(n_samples=5000, n_features=FEATURES, random_state=0)
    model = RandomForestClassifier(n_estimators=n_estimators, max_depth=12, random_state=0).fit(x, y)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.joblib")
    return out
