//! Pareto (dominance) filter: the exact first reduction of the reference set.
//!
//! DMU `k` weakly dominates `j` when `x_k ≤ x_j` and `y_k ≥ y_j` componentwise.
//! Replacing `λ_j` by `λ_k` in any envelopment solution keeps it feasible,
//! keeps `Σλ` (so it is valid under CRS, VRS and NIRS), and does not decrease
//! any slack; hence dominated DMUs (and all but one copy of duplicates) can
//! be dropped from the reference set without changing θ*, φ* or the maximal
//! slack sum. The filter returns the non-dominated set `P` and, for every
//! DMU, one member of `P` that dominates it (itself when it is in `P`).

use super::lp::Scaled;

#[inline]
fn dominates(sc: &Scaled, k: usize, j: usize) -> bool {
    sc.xr(k).iter().zip(sc.xr(j)).all(|(a, b)| a <= b) && sc.yr(k).iter().zip(sc.yr(j)).all(|(a, b)| a >= b)
}

/// Returns `(P, dominator)`.
pub(crate) fn pareto(sc: &Scaled) -> (Vec<usize>, Vec<usize>) {
    let n = sc.n;
    // Sorting by a strictly monotone score puts dominators first (up to ties),
    // so almost every dominated DMU is rejected on arrival.
    let score: Vec<f64> = (0..n).map(|j| sc.yr(j).iter().sum::<f64>() - sc.xr(j).iter().sum::<f64>()).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
    let mut front: Vec<usize> = Vec::new();
    for &j in &order {
        if front.iter().any(|&k| dominates(sc, k, j)) {
            continue;
        }
        front.retain(|&k| !dominates(sc, j, k));
        front.push(j);
    }
    front.sort_unstable();
    let mut dom = vec![usize::MAX; n];
    for &k in &front {
        dom[k] = k;
    }
    for j in 0..n {
        if dom[j] == usize::MAX {
            // Dominance is transitive, so some member of the final front
            // dominates j.
            dom[j] = front.iter().copied().find(|&k| dominates(sc, k, j)).unwrap_or(j);
        }
    }
    (front, dom)
}
