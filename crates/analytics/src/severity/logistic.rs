//! L2-penalised binary logistic regression fitted by Newton's method.
//!
//! Objective (scikit-learn's, with `C` the inverse regularisation strength
//! and the intercept not penalised):
//!
//! `min_w,b  ½‖w‖² + C Σ_i [log(1 + e^{z_i}) − y_i z_i]`, `z_i = x_i·w + b`.
//!
//! The objective is strictly convex, so Newton's method with a backtracking
//! line search converges quadratically to the unique optimum; with a dozen
//! features each step is a tiny Cholesky solve.

use crate::error::{AnalyticsError, Result};

/// Numerically stable `log(1 + e^z)`.
fn log1pexp(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// Logistic function.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

fn objective(x: &[Vec<f64>], y: &[f64], w: &[f64], b: f64, c: f64) -> f64 {
    let reg: f64 = 0.5 * w.iter().map(|v| v * v).sum::<f64>();
    let loss: f64 = x
        .iter()
        .zip(y)
        .map(|(xi, &yi)| {
            let z = dot(xi, w) + b;
            log1pexp(z) - yi * z
        })
        .sum();
    reg + c * loss
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solves `A x = r` for symmetric positive definite `A` (Cholesky).
fn cholesky_solve(a: &[Vec<f64>], r: &[f64]) -> Option<Vec<f64>> {
    let n = r.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i][j];
            for k in 0..j {
                s -= l[i][k] * l[j][k];
            }
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i][i] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    let mut z = vec![0.0; n];
    for i in 0..n {
        let mut s = r[i];
        for k in 0..i {
            s -= l[i][k] * z[k];
        }
        z[i] = s / l[i][i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let mut s = z[i];
        for k in i + 1..n {
            s -= l[k][i] * x[k];
        }
        x[i] = s / l[i][i];
    }
    Some(x)
}

/// Fitted weights (on whatever feature scale they were given).
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub coef: Vec<f64>,
    pub intercept: f64,
    pub iterations: usize,
}

/// Fits the model; `y` must be 0/1.
pub fn fit(x: &[Vec<f64>], y: &[f64], c: f64) -> Result<Fit> {
    let n = x.len();
    if n == 0 {
        return Err(AnalyticsError::InsufficientData("no training rows".into()));
    }
    if !(c.is_finite() && c > 0.0) {
        return Err(AnalyticsError::Usage(format!("C must be a positive number, got {c}")));
    }
    let d = x[0].len();
    let mut w = vec![0.0; d];
    let mut b = 0.0;
    let mut f = objective(x, y, &w, b, c);
    for it in 0..200 {
        // Gradient and Hessian over (w, b), b last.
        let mut g = vec![0.0; d + 1];
        let mut h = vec![vec![0.0; d + 1]; d + 1];
        for (xi, &yi) in x.iter().zip(y) {
            let p = sigmoid(dot(xi, &w) + b);
            let r = c * (p - yi);
            let s = c * p * (1.0 - p);
            for j in 0..d {
                g[j] += r * xi[j];
                for k in 0..=j {
                    h[j][k] += s * xi[j] * xi[k];
                }
                h[d][j] += s * xi[j];
            }
            g[d] += r;
            h[d][d] += s;
        }
        for j in 0..d {
            g[j] += w[j];
            h[j][j] += 1.0;
        }
        for j in 0..=d {
            for k in j + 1..=d {
                h[j][k] = h[k][j];
            }
        }
        let step = cholesky_solve(&h, &g).ok_or_else(|| {
            AnalyticsError::InsufficientData(
                "the Newton system is singular (perfectly separated or degenerate data)".into(),
            )
        })?;
        // Backtracking line search on the convex objective.
        let mut t = 1.0;
        let (mut nw, mut nb, mut nf);
        loop {
            nw = w.iter().zip(&step).map(|(a, s)| a - t * s).collect::<Vec<_>>();
            nb = b - t * step[d];
            nf = objective(x, y, &nw, nb, c);
            if nf <= f + 1e-12 * f.abs().max(1.0) || t < 1e-10 {
                break;
            }
            t *= 0.5;
        }
        let size = step.iter().map(|s| s.abs()).fold(0.0, f64::max) * t;
        w = nw;
        b = nb;
        f = nf;
        if size < 1e-13 * (1.0 + w.iter().map(|v| v.abs()).fold(b.abs(), f64::max)) {
            return Ok(Fit { coef: w, intercept: b, iterations: it + 1 });
        }
    }
    Ok(Fit { coef: w, intercept: b, iterations: 200 })
}

/// Area under the ROC curve (Mann–Whitney, ties counted one half).
pub fn roc_auc(y: &[f64], score: &[f64]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..y.len()).collect();
    idx.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    let mut ranks = vec![0.0; y.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && score[idx[j + 1]] == score[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[idx[k]] = avg;
        }
        i = j + 1;
    }
    let pos = y.iter().filter(|&&v| v > 0.5).count() as f64;
    let neg = y.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    let rank_sum: f64 = y.iter().zip(&ranks).filter(|(v, _)| **v > 0.5).map(|(_, r)| r).sum();
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Confusion matrix at threshold 0.5: `[[tn, fp], [fn, tp]]`.
pub fn confusion(y: &[f64], p: &[f64]) -> [[usize; 2]; 2] {
    let mut m = [[0usize; 2]; 2];
    for (&yi, &pi) in y.iter().zip(p) {
        m[(yi > 0.5) as usize][(pi >= 0.5) as usize] += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_handles_ties_and_perfect_ranking() {
        assert_eq!(roc_auc(&[0.0, 0.0, 1.0, 1.0], &[0.1, 0.2, 0.8, 0.9]), Some(1.0));
        assert_eq!(roc_auc(&[0.0, 1.0], &[0.5, 0.5]), Some(0.5));
        assert_eq!(roc_auc(&[1.0, 1.0], &[0.5, 0.6]), None);
        // 1 of 4 (pos, neg) pairs misordered.
        assert_eq!(roc_auc(&[0.0, 1.0, 0.0, 1.0], &[0.1, 0.2, 0.3, 0.4]), Some(0.75));
    }

    #[test]
    fn gradient_is_zero_at_the_fit() {
        let x: Vec<Vec<f64>> = (0..50).map(|i| vec![(i as f64 / 10.0).sin(), (i % 7) as f64 - 3.0]).collect();
        let y: Vec<f64> = (0..50).map(|i| ((i * 37) % 11 < 5) as u8 as f64).collect();
        let f = fit(&x, &y, 1.0).unwrap();
        let mut g = f.coef.clone();
        let mut gb = 0.0;
        for (xi, yi) in x.iter().zip(&y) {
            let p = sigmoid(dot(xi, &f.coef) + f.intercept);
            for j in 0..2 {
                g[j] += (p - yi) * xi[j];
            }
            gb += p - yi;
        }
        assert!(g.iter().all(|v| v.abs() < 1e-9) && gb.abs() < 1e-9, "{g:?} {gb}");
    }
}
