//! The two LPs of DEA, built on `microlp` (a pure-Rust simplex).
//!
//! * Radial stage: the *multiplier* (dual) form over a reference set `R`.
//!   Its optimum is θ* (input) or φ* (output) and its optimal (v, u, ω) is a
//!   dual certificate: if no DMU outside `R` violates `u·y − v·x + ω' ≤ 0`,
//!   the reduced solution is optimal for the full set.
//! * Slack stage: the *envelopment* form with θ*/φ* fixed, maximising the
//!   sum of slacks (measured in the data's original units).

use super::{Orientation, Rts};
use microlp::{ComparisonOp, LinearExpr, OptimizationDirection, Problem, Solution, SolveOptions, Tolerances, Variable};

/// Column-scaled data (each column divided by its mean), row-major.
pub(crate) struct Scaled {
    pub n: usize,
    pub m: usize,
    pub s: usize,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

impl Scaled {
    #[inline]
    pub fn xr(&self, j: usize) -> &[f64] {
        &self.x[j * self.m..(j + 1) * self.m]
    }
    #[inline]
    pub fn yr(&self, j: usize) -> &[f64] {
        &self.y[j * self.s..(j + 1) * self.s]
    }
}

/// Optimal multipliers of the radial LP, written so that every reference DMU
/// satisfies `u·y_j − v·x_j + w ≤ 0` (for the output orientation `w = −ω`).
#[derive(Clone, Debug)]
pub(crate) struct Dual {
    pub v: Vec<f64>,
    pub u: Vec<f64>,
    pub w: f64,
}

impl Dual {
    /// `u·y_j − v·x_j + w` and the magnitude used to make tolerances relative.
    #[inline]
    pub fn gap(&self, sc: &Scaled, j: usize) -> (f64, f64) {
        let mut a = 0.0;
        let mut mag = 1.0;
        for (u, y) in self.u.iter().zip(sc.yr(j)) {
            a += u * y;
            mag += (u * y).abs();
        }
        for (v, x) in self.v.iter().zip(sc.xr(j)) {
            a -= v * x;
            mag += (v * x).abs();
        }
        (a + self.w, mag + self.w.abs())
    }
}

pub(crate) struct RadialModel {
    orientation: Orientation,
    v: Vec<Variable>,
    u: Vec<Variable>,
    w: Option<Variable>,
    sol: Solution,
}

/// Solve options: a feasibility tolerance of 1e-9 (microlp's default is
/// 1e-7) so that θ*, and the slacks computed with it fixed, are accurate to
/// ~1e-9 relative on column-scaled data.
fn options() -> SolveOptions {
    let mut tol = Tolerances::default();
    tol.feasibility = 1e-9;
    let mut o = SolveOptions::default();
    o.tolerances = tol;
    // The LPs are tiny; presolve costs more than it saves.
    o.presolve = false;
    o
}

fn err(e: microlp::Error) -> String {
    e.to_string()
}

fn ref_row(
    sc: &Scaled,
    j: usize,
    orientation: Orientation,
    v: &[Variable],
    u: &[Variable],
    w: Option<Variable>,
) -> (LinearExpr, ComparisonOp) {
    let mut e = LinearExpr::empty();
    // Input:  u·y_j − v·x_j + ω ≤ 0.   Output: v·x_j − u·y_j + ω ≥ 0.
    let sign = match orientation {
        Orientation::Input => 1.0,
        Orientation::Output => -1.0,
    };
    for (r, &yv) in sc.yr(j).iter().enumerate() {
        if yv != 0.0 {
            e.add(u[r], sign * yv);
        }
    }
    for (i, &xv) in sc.xr(j).iter().enumerate() {
        if xv != 0.0 {
            e.add(v[i], -sign * xv);
        }
    }
    if let Some(w) = w {
        e.add(w, 1.0);
    }
    let op = match orientation {
        Orientation::Input => ComparisonOp::Le,
        Orientation::Output => ComparisonOp::Ge,
    };
    (e, op)
}

impl RadialModel {
    /// Solves the multiplier LP of DMU `o` over `refs`.
    pub fn solve(
        sc: &Scaled,
        o: usize,
        refs: &[usize],
        orientation: Orientation,
        rts: Rts,
    ) -> Result<RadialModel, String> {
        let (dir, w_bounds) = match orientation {
            Orientation::Input => (
                OptimizationDirection::Maximize,
                match rts {
                    Rts::Vrs => Some((f64::NEG_INFINITY, f64::INFINITY)),
                    Rts::Nirs => Some((f64::NEG_INFINITY, 0.0)),
                    Rts::Crs => None,
                },
            ),
            Orientation::Output => (
                OptimizationDirection::Minimize,
                match rts {
                    Rts::Vrs => Some((f64::NEG_INFINITY, f64::INFINITY)),
                    Rts::Nirs => Some((0.0, f64::INFINITY)),
                    Rts::Crs => None,
                },
            ),
        };
        let mut p = Problem::new(dir);
        let xo = sc.xr(o);
        let yo = sc.yr(o);
        let (cv, cu) = match orientation {
            Orientation::Input => (0.0, 1.0),
            Orientation::Output => (1.0, 0.0),
        };
        let v: Vec<Variable> = (0..sc.m).map(|i| p.add_var(cv * xo[i], (0.0, f64::INFINITY))).collect();
        let u: Vec<Variable> = (0..sc.s).map(|r| p.add_var(cu * yo[r], (0.0, f64::INFINITY))).collect();
        let w = w_bounds.map(|b| p.add_var(1.0, b));
        // Normalisation: v·x_o = 1 (input) or u·y_o = 1 (output).
        let mut norm = LinearExpr::empty();
        match orientation {
            Orientation::Input => {
                for i in 0..sc.m {
                    if xo[i] != 0.0 {
                        norm.add(v[i], xo[i]);
                    }
                }
            }
            Orientation::Output => {
                for r in 0..sc.s {
                    if yo[r] != 0.0 {
                        norm.add(u[r], yo[r]);
                    }
                }
            }
        }
        p.add_constraint(norm, ComparisonOp::Eq, 1.0);
        for &j in refs {
            let (e, op) = ref_row(sc, j, orientation, &v, &u, w);
            p.add_constraint(e, op, 0.0);
        }
        let sol = p.solve_with(options()).map_err(err)?.into_solution().map_err(|_| "solve interrupted".to_string())?;
        Ok(RadialModel { orientation, v, u, w, sol })
    }

    /// Adds reference DMUs as new rows and re-optimises from the current
    /// basis (microlp's warm-started dual simplex).
    pub fn add_refs(self, sc: &Scaled, js: &[usize]) -> Result<RadialModel, String> {
        let RadialModel { orientation, v, u, w, mut sol } = self;
        for &j in js {
            let (e, op) = ref_row(sc, j, orientation, &v, &u, w);
            sol = sol
                .add_constraint(e, op, 0.0)
                .map_err(err)?
                .into_solution()
                .map_err(|_| "solve interrupted".to_string())?;
        }
        Ok(RadialModel { orientation, v, u, w, sol })
    }

    /// θ* (input) or φ* (output).
    pub fn objective(&self) -> f64 {
        self.sol.objective()
    }

    pub fn dual(&self) -> Dual {
        let wv = self.w.map(|w| self.sol.var_value(w)).unwrap_or(0.0);
        Dual {
            v: self.v.iter().map(|&v| self.sol.var_value(v).max(0.0)).collect(),
            u: self.u.iter().map(|&u| self.sol.var_value(u).max(0.0)).collect(),
            w: match self.orientation {
                Orientation::Input => wv,
                Orientation::Output => -wv,
            },
        }
    }
}

/// Radial envelopment LP of DMU `o` over `refs` (θ*/φ* and the λ support).
/// Its basis has only m + s (+1) rows, so it is far cheaper than the
/// multiplier form over the same set; the multiplier form is then solved over
/// the λ support alone to obtain the dual certificate.
pub(crate) fn radial_envelopment(
    sc: &Scaled,
    o: usize,
    refs: &[usize],
    orientation: Orientation,
    rts: Rts,
) -> Result<(f64, Vec<usize>), String> {
    let dir = match orientation {
        Orientation::Input => OptimizationDirection::Minimize,
        Orientation::Output => OptimizationDirection::Maximize,
    };
    let mut p = Problem::new(dir);
    let t = p.add_var(1.0, (0.0, f64::INFINITY));
    let lam: Vec<Variable> = refs.iter().map(|_| p.add_var(0.0, (0.0, f64::INFINITY))).collect();
    let xo = sc.xr(o);
    let yo = sc.yr(o);
    for i in 0..sc.m {
        let mut e = LinearExpr::empty();
        for (k, &j) in refs.iter().enumerate() {
            let xv = sc.xr(j)[i];
            if xv != 0.0 {
                e.add(lam[k], xv);
            }
        }
        match orientation {
            Orientation::Input => {
                e.add(t, -xo[i]);
                p.add_constraint(e, ComparisonOp::Le, 0.0);
            }
            Orientation::Output => p.add_constraint(e, ComparisonOp::Le, xo[i]),
        }
    }
    for r in 0..sc.s {
        let mut e = LinearExpr::empty();
        for (k, &j) in refs.iter().enumerate() {
            let yv = sc.yr(j)[r];
            if yv != 0.0 {
                e.add(lam[k], yv);
            }
        }
        match orientation {
            Orientation::Input => p.add_constraint(e, ComparisonOp::Ge, yo[r]),
            Orientation::Output => {
                if yo[r] != 0.0 {
                    e.add(t, -yo[r]);
                }
                p.add_constraint(e, ComparisonOp::Ge, 0.0);
            }
        }
    }
    if rts != Rts::Crs {
        let mut e = LinearExpr::empty();
        for &l in &lam {
            e.add(l, 1.0);
        }
        let op = if rts == Rts::Vrs { ComparisonOp::Eq } else { ComparisonOp::Le };
        p.add_constraint(e, op, 1.0);
    }
    let sol = p.solve_with(options()).map_err(err)?.into_solution().map_err(|_| "solve interrupted".to_string())?;
    let support = refs.iter().zip(&lam).filter(|&(_, &l)| sol.var_value(l) > 1e-9).map(|(&j, _)| j).collect();
    Ok((sol.var_value(t), support))
}

/// Result of the slack stage in scaled units.
pub(crate) struct SlackSolution {
    pub lambda: Vec<(usize, f64)>,
    pub s_in: Vec<f64>,
    pub s_out: Vec<f64>,
}

/// Envelopment LP with the radial factor fixed: maximise Σ wx·s⁻ + Σ wy·s⁺.
#[allow(clippy::too_many_arguments)]
pub(crate) fn slack_lp(
    sc: &Scaled,
    o: usize,
    refs: &[usize],
    orientation: Orientation,
    rts: Rts,
    radial: f64,
    wx: &[f64],
    wy: &[f64],
) -> Result<SlackSolution, String> {
    let mut p = Problem::new(OptimizationDirection::Maximize);
    let lam: Vec<Variable> = refs.iter().map(|_| p.add_var(0.0, (0.0, f64::INFINITY))).collect();
    let sin: Vec<Variable> = (0..sc.m).map(|i| p.add_var(wx[i], (0.0, f64::INFINITY))).collect();
    let sout: Vec<Variable> = (0..sc.s).map(|r| p.add_var(wy[r], (0.0, f64::INFINITY))).collect();
    let xo = sc.xr(o);
    let yo = sc.yr(o);
    let (fx, fy) = match orientation {
        Orientation::Input => (radial, 1.0),
        Orientation::Output => (1.0, radial),
    };
    for i in 0..sc.m {
        let mut e = LinearExpr::empty();
        for (k, &j) in refs.iter().enumerate() {
            let xv = sc.xr(j)[i];
            if xv != 0.0 {
                e.add(lam[k], xv);
            }
        }
        e.add(sin[i], 1.0);
        p.add_constraint(e, ComparisonOp::Eq, fx * xo[i]);
    }
    for r in 0..sc.s {
        let mut e = LinearExpr::empty();
        for (k, &j) in refs.iter().enumerate() {
            let yv = sc.yr(j)[r];
            if yv != 0.0 {
                e.add(lam[k], yv);
            }
        }
        e.add(sout[r], -1.0);
        p.add_constraint(e, ComparisonOp::Eq, fy * yo[r]);
    }
    match rts {
        Rts::Crs => {}
        Rts::Vrs | Rts::Nirs => {
            let mut e = LinearExpr::empty();
            for &l in &lam {
                e.add(l, 1.0);
            }
            let op = if rts == Rts::Vrs { ComparisonOp::Eq } else { ComparisonOp::Le };
            p.add_constraint(e, op, 1.0);
        }
    }
    let sol = p.solve_with(options()).map_err(err)?.into_solution().map_err(|_| "solve interrupted".to_string())?;
    Ok(SlackSolution {
        lambda: refs.iter().zip(&lam).map(|(&j, &l)| (j, sol.var_value(l))).filter(|&(_, l)| l > 1e-6).collect(),
        s_in: sin.iter().map(|&v| sol.var_value(v).max(0.0)).collect(),
        s_out: sout.iter().map(|&v| sol.var_value(v).max(0.0)).collect(),
    })
}
