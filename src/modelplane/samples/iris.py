"""Samples: train and save the iris classifiers KServe's examples use (sklearn SVC, xgboost, lightgbm)."""

from __future__ import annotations

from pathlib import Path


def _data() -> tuple[object, object]:
    from sklearn import datasets

    iris = datasets.load_iris()
    return iris.data, iris.target


def train_sklearn(out_dir: str | Path, probability: bool = False) -> Path:
    """An SVC like KServe's gs://kfserving-examples/models/sklearn/1.0/model, saved as model.joblib."""
    import joblib
    from sklearn import svm

    x, y = _data()
    model = svm.SVC(gamma="scale", random_state=0, **({"probability": True} if probability else {}))
    model.fit(x, y)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.joblib")
    return out


def train_xgboost(out_dir: str | Path, filename: str = "model.bst") -> Path:
    import xgboost as xgb

    x, y = _data()
    booster = xgb.train(
        {"objective": "multi:softprob", "num_class": 3, "nthread": 1, "max_depth": 3},
        xgb.DMatrix(x, label=y),
        num_boost_round=10,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(out / filename))
    return out


def train_lightgbm(out_dir: str | Path) -> Path:
    import lightgbm as lgb

    x, y = _data()
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
        lgb.Dataset(x, label=y),
        num_boost_round=10,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(out / "model.bst"))
    return out


def main() -> None:
    import sys

    kind, out = sys.argv[1], sys.argv[2]
    {"sklearn": train_sklearn, "xgboost": train_xgboost, "lightgbm": train_lightgbm}[kind](out)
    print(out)


if __name__ == "__main__":
    main()
