#!/usr/bin/env python3
"""Generate crates/analytics/tests/fixtures/sklearn_logreg.json once.

Usage (from the repository root):

    python3 -m venv target/sk-venv
    target/sk-venv/bin/pip install scikit-learn numpy
    cargo run -p medledger-analytics --bin medledger-analytics -- \
        cohort --n 400 --seed 11 --out target/sk-cohort.csv
    target/sk-venv/bin/python scripts/analytics-sklearn-fixture.py \
        target/sk-cohort.csv crates/analytics/tests/fixtures/sklearn_logreg.json

The fixture stores the data itself (features and outcome), so the Rust test
does not depend on the cohort generator. Like the Rust model, scikit-learn is
fitted on features standardised by StandardScaler (population sd, ddof=0),
with LogisticRegression(C=1.0, solver="lbfgs") and a tight tolerance so that
its optimum is accurate to far better than the 1e-4 the test demands.
"""
import csv
import json
import sys

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

FEATURES = ["age", "sex", "hypertension", "diabetes", "copd", "cardiovascular",
            "obesity", "spo2", "resp_rate", "crp", "lymphocytes", "d_dimer"]


def main(src, dst):
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(r[c]) for c in FEATURES] for r in rows])
    y = np.array([int(r["severe"]) for r in rows])
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    model = LogisticRegression(C=1.0, solver="lbfgs", tol=1e-10, max_iter=100000).fit(z, y)
    proba = model.predict_proba(z)[:, 1]
    out = {
        "description": "scikit-learn LogisticRegression(C=1.0, solver='lbfgs', tol=1e-10, max_iter=100000) "
                       "on StandardScaler-standardised features (ddof=0); data = synthetic cohort "
                       "(medledger-analytics cohort --n 400 --seed 11)",
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "features": FEATURES,
        "x": x.tolist(),
        "y": y.tolist(),
        "scaler_mean": scaler.mean_.tolist(),
        "scaler_scale": scaler.scale_.tolist(),
        "coef": model.coef_[0].tolist(),
        "intercept": float(model.intercept_[0]),
        "n_iter": int(model.n_iter_[0]),
        "proba_first10": proba[:10].tolist(),
    }
    with open(dst, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {dst}: sklearn {sklearn.__version__}, {len(y)} rows, {y.sum()} severe, n_iter {out['n_iter']}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
