#!/usr/bin/env python3
"""Plain per-DMU DEA loop over scipy.optimize.linprog(method="highs").

The same pipeline as `dea-bench`: output orientation, CRS + VRS + NIRS radial
LPs over all DMUs, then the VRS two-stage slack LP (max sum of slacks with phi
fixed), for every DMU. No reductions, no parallelism: the baseline a
regulator would write in Python. Prints elapsed seconds and the mean VRS TE
(to check both implementations agree).

usage: bench-dea-scipy.py DATA.csv
"""
import csv
import sys
import time

import numpy as np
from scipy.optimize import linprog


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(r[c]) for c in ("X1", "X2", "X3")] for r in rows])
    y = np.array([[float(r[c]) for c in ("Y1", "Y2")] for r in rows])
    return x, y


def radial_output(x, y, o, rts):
    n, m = x.shape
    s = y.shape[1]
    # variables: phi, lambda_1..n ; maximise phi
    c = np.zeros(n + 1)
    c[0] = -1.0
    a_ub = np.zeros((m + s, n + 1))
    b_ub = np.zeros(m + s)
    a_ub[:m, 1:] = x.T          # X lambda <= x_o
    b_ub[:m] = x[o]
    a_ub[m:, 0] = y[o]          # phi y_o - Y lambda <= 0
    a_ub[m:, 1:] = -y.T
    a_eq = b_eq = None
    if rts == "vrs":
        a_eq = np.zeros((1, n + 1)); a_eq[0, 1:] = 1.0; b_eq = [1.0]
    elif rts == "nirs":
        a_ub = np.vstack([a_ub, np.r_[0.0, np.ones(n)]]); b_ub = np.r_[b_ub, 1.0]
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq,
                  bounds=[(None, None)] + [(0, None)] * n, method="highs")
    return -res.fun


def slacks_output_vrs(x, y, o, phi):
    n, m = x.shape
    s = y.shape[1]
    # variables: lambda (n), s_in (m), s_out (s); maximise sum of slacks
    c = np.r_[np.zeros(n), -np.ones(m + s)]
    a_eq = np.zeros((m + s + 1, n + m + s))
    a_eq[:m, :n] = x.T; a_eq[:m, n:n + m] = np.eye(m)
    a_eq[m:m + s, :n] = y.T; a_eq[m:m + s, n + m:] = -np.eye(s)
    a_eq[m + s, :n] = 1.0
    b_eq = np.r_[x[o], phi * (1 - 1e-9) * y[o], 1.0]
    res = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=[(0, None)] * (n + m + s), method="highs")
    return res.status


def main(path):
    x, y = load(path)
    n = x.shape[0]
    t0 = time.perf_counter()
    vrs = []
    failed = 0
    for o in range(n):
        radial_output(x, y, o, "crs")
        phi = radial_output(x, y, o, "vrs")
        radial_output(x, y, o, "nirs")
        failed += slacks_output_vrs(x, y, o, phi) != 0
        vrs.append(1.0 / phi)
    secs = time.perf_counter() - t0
    print(f"scipy-highs n={n} time={secs:.3f}s mean-vrste={np.mean(vrs):.6f} slack-lp-failures={failed}")


if __name__ == "__main__":
    main(sys.argv[1])
