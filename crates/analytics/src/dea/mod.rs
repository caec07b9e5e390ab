//! Data Envelopment Analysis with DEAP 2.1 conventions.
//!
//! * Envelopment-form models CRS (CCR), VRS (BCC) and NIRS, input- or
//!   output-oriented; Farrell scores in [0, 1] (input TE = θ, output TE = 1/φ).
//! * VRS runs report CRSTE, VRSTE, SCALE = CRSTE/VRSTE and the returns-to-scale
//!   label (`-`, `drs`, `irs`) exactly as DEAP does.
//! * Slacks by the two-stage method: with θ*/φ* fixed, the unweighted sum of
//!   slacks (in the data's units) is maximised; targets and peers (λ) follow.
//!
//! See `docs/analytics-architecture.md` for the acceleration scheme (Pareto
//! filter, frontier reference sets, dual-certified constraint generation).

mod frontier;
mod lp;
pub mod report;
pub mod synthetic;

use crate::error::{AnalyticsError, Result};
use crate::table::Table;
use lp::{Dual, RadialModel, Scaled};
use rayon::prelude::*;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Orientation of the radial measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Orientation {
    /// Input-oriented: shrink inputs by θ.
    #[value(name = "input", alias = "in")]
    Input,
    /// Output-oriented: expand outputs by φ.
    #[value(name = "output", alias = "out")]
    Output,
}

/// Returns to scale of the reference technology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Rts {
    /// Constant returns to scale (CCR).
    Crs,
    /// Variable returns to scale (BCC).
    Vrs,
    /// Non-increasing returns to scale.
    Nirs,
}

impl Rts {
    pub fn as_str(self) -> &'static str {
        match self {
            Rts::Crs => "crs",
            Rts::Vrs => "vrs",
            Rts::Nirs => "nirs",
        }
    }
}

/// Options of a DEA run.
#[derive(Debug, Clone, Copy)]
pub struct DeaOptions {
    pub orientation: Orientation,
    pub rts: Rts,
    /// Run the second (slack) stage. On by default.
    pub slacks: bool,
    /// Use the reduced-reference-set accelerations (results are certified
    /// against the full set either way). On by default; off solves every LP
    /// over the full set of DMUs.
    pub accelerate: bool,
}

impl DeaOptions {
    pub fn new(orientation: Orientation, rts: Rts) -> Self {
        DeaOptions { orientation, rts, slacks: true, accelerate: true }
    }
}

/// Validated DEA data.
#[derive(Debug, Clone)]
pub struct DeaData {
    pub ids: Vec<String>,
    pub input_names: Vec<String>,
    pub output_names: Vec<String>,
    /// Inputs, one row per DMU.
    pub x: Vec<Vec<f64>>,
    /// Outputs, one row per DMU.
    pub y: Vec<Vec<f64>>,
    /// Optional group (e.g. region) per DMU.
    pub groups: Option<Vec<String>>,
    /// Warnings found while validating (e.g. too few DMUs).
    pub warnings: Vec<String>,
}

impl DeaData {
    /// Builds and validates DEA data from a CSV table.
    pub fn from_table(
        table: &Table,
        id_col: &str,
        inputs: &[String],
        outputs: &[String],
        group_col: Option<&str>,
    ) -> Result<DeaData> {
        if inputs.is_empty() {
            return Err(AnalyticsError::Usage("DEA needs at least one input column (--inputs)".into()));
        }
        if outputs.is_empty() {
            return Err(AnalyticsError::Usage("DEA needs at least one output column (--outputs)".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for c in inputs.iter().chain(outputs).map(String::as_str).chain(std::iter::once(id_col)) {
            if !seen.insert(c) {
                return Err(AnalyticsError::DuplicateColumn { column: c.to_string() });
            }
        }
        let ids = table.strings(id_col)?;
        let mut xc = Vec::new();
        for c in inputs {
            xc.push(table.numbers(c)?);
        }
        let mut yc = Vec::new();
        for c in outputs {
            yc.push(table.numbers(c)?);
        }
        let groups = match group_col {
            Some(g) => Some(table.strings(g)?),
            None => None,
        };
        let n = table.len();
        let x: Vec<Vec<f64>> = (0..n).map(|j| xc.iter().map(|c| c[j]).collect()).collect();
        let y: Vec<Vec<f64>> = (0..n).map(|j| yc.iter().map(|c| c[j]).collect()).collect();
        DeaData::validated(&table.name, ids, inputs.to_vec(), outputs.to_vec(), x, y, groups)
    }

    /// Builds and validates DEA data from memory. `source` names it in errors;
    /// rows are numbered as in a CSV file with a header (first DMU = row 2).
    pub fn validated(
        source: &str,
        ids: Vec<String>,
        input_names: Vec<String>,
        output_names: Vec<String>,
        x: Vec<Vec<f64>>,
        y: Vec<Vec<f64>>,
        groups: Option<Vec<String>>,
    ) -> Result<DeaData> {
        let n = ids.len();
        let (m, s) = (input_names.len(), output_names.len());
        if m == 0 || s == 0 {
            return Err(AnalyticsError::Usage("DEA needs at least one input and one output".into()));
        }
        if n == 0 {
            return Err(AnalyticsError::Empty { path: source.to_string() });
        }
        if x.len() != n || y.len() != n || groups.as_ref().is_some_and(|g| g.len() != n) {
            return Err(AnalyticsError::Usage("DEA data: ids, inputs, outputs and groups differ in length".into()));
        }
        for j in 0..n {
            let row = Table::file_row(j);
            if x[j].len() != m || y[j].len() != s {
                return Err(AnalyticsError::Usage(format!("DEA data: row {row} has the wrong number of values")));
            }
            let cells = x[j].iter().zip(&input_names).chain(y[j].iter().zip(&output_names));
            for (&v, name) in cells {
                if !v.is_finite() {
                    return Err(AnalyticsError::NotFinite {
                        path: source.to_string(),
                        row,
                        column: name.clone(),
                        value: v.to_string(),
                    });
                }
                if v < 0.0 {
                    return Err(AnalyticsError::Negative {
                        path: source.to_string(),
                        row,
                        column: name.clone(),
                        value: v,
                    });
                }
            }
            if x[j].iter().all(|&v| v == 0.0) {
                return Err(AnalyticsError::AllZeroInputs { path: source.to_string(), row, id: ids[j].clone() });
            }
        }
        for (i, name) in input_names.iter().enumerate() {
            if x.iter().all(|r| r[i] == 0.0) {
                return Err(AnalyticsError::ZeroColumn { path: source.to_string(), column: name.clone() });
            }
        }
        for (r, name) in output_names.iter().enumerate() {
            if y.iter().all(|row| row[r] == 0.0) {
                return Err(AnalyticsError::ZeroColumn { path: source.to_string(), column: name.clone() });
            }
        }
        let mut warnings = Vec::new();
        let need = (3 * (m + s)).max(m * s);
        if n < need {
            warnings.push(format!(
                "only {n} DMUs for {m} inputs and {s} outputs: the usual rule of thumb asks for at least max(3(m+s), m*s) = {need}; scores will be optimistic and many DMUs may look efficient"
            ));
        }
        Ok(DeaData { ids, input_names, output_names, x, y, groups, warnings })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Returns-to-scale label as DEAP prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RtsLabel {
    #[serde(rename = "-")]
    Constant,
    #[serde(rename = "drs")]
    Decreasing,
    #[serde(rename = "irs")]
    Increasing,
}

impl RtsLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            RtsLabel::Constant => "-",
            RtsLabel::Decreasing => "drs",
            RtsLabel::Increasing => "irs",
        }
    }
}

/// Results for one DMU.
#[derive(Debug, Clone, Serialize)]
pub struct DmuResult {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Farrell technical efficiency of the requested model, in [0, 1].
    pub te: f64,
    /// Raw radial factor of the requested model: θ (input) or φ (output);
    /// `None` when φ is unbounded.
    pub raw: Option<f64>,
    pub crste: Option<f64>,
    pub vrste: Option<f64>,
    pub nirste: Option<f64>,
    pub scale: Option<f64>,
    pub rts: Option<RtsLabel>,
    pub slack_in: Vec<f64>,
    pub slack_out: Vec<f64>,
    pub target_in: Vec<f64>,
    pub target_out: Vec<f64>,
    /// Peers as (DMU id, λ).
    pub peers: Vec<(String, f64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Mean scores of a group (regional efficiency table).
#[derive(Debug, Clone, Serialize)]
pub struct GroupMean {
    pub group: String,
    pub n: usize,
    pub te: f64,
    pub crste: Option<f64>,
    pub vrste: Option<f64>,
    pub scale: Option<f64>,
}

/// Counters describing how the accelerated solve went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SolveStats {
    /// Size of the non-dominated set.
    pub non_dominated: usize,
    /// Size of the shared frontier reference set at the end, per model.
    pub frontier: Vec<(String, usize)>,
    /// Radial LPs solved (first solves).
    pub radial_lps: usize,
    /// Warm-started re-solves after pricing found entering DMUs.
    pub pricing_rounds: usize,
    /// Radial solves that fell back to the whole non-dominated set.
    pub fallbacks: usize,
    /// Slack-stage LPs solved.
    pub slack_lps: usize,
    /// Slack-stage LPs retried on a wider reference set.
    pub slack_retries: usize,
    /// Wall-clock milliseconds per phase.
    pub phase_ms: Vec<(String, f64)>,
}

/// A full DEA report.
#[derive(Debug, Clone, Serialize)]
pub struct DeaReport {
    pub orientation: Orientation,
    pub rts: Rts,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub dmus: Vec<DmuResult>,
    pub group_means: Vec<GroupMean>,
    pub warnings: Vec<String>,
    pub stats: SolveStats,
}

/// Tolerance for comparing scores (RTS labels).
const SCORE_TOL: f64 = 1e-6;
/// A DMU is treated as on the frontier (a shared reference candidate) when its
/// score is within this of 1.
const EFF_TOL: f64 = 1e-7;
/// Pricing: a DMU outside the reference set "would enter" if its constraint is
/// violated by more than this (relative).
const PRICE_TOL: f64 = 1e-9;
/// Slack stage: DMUs whose dual constraint is tight within this (relative)
/// may carry λ > 0 and form the slack-stage reference set.
const TIGHT_TOL: f64 = 1e-6;
/// Violating DMUs added per pricing round.
const ENTER_PER_ROUND: usize = 8;
const MAX_ROUNDS: usize = 30;
/// Shared frontier DMUs used as the starting rows of each multiplier LP.
const NEAREST: usize = 64;

struct Radial {
    /// θ (input) or φ (output); +inf for unbounded φ.
    value: f64,
    dual: Option<Dual>,
}

struct Engine<'a> {
    sc: Scaled,
    pset: Vec<usize>,
    dom: Vec<usize>,
    orientation: Orientation,
    accelerate: bool,
    zero_out: Vec<bool>,
    ids: &'a [String],
    radial_lps: AtomicUsize,
    rounds: AtomicUsize,
    fallbacks: AtomicUsize,
}

impl Engine<'_> {
    fn solver_err(&self, o: usize, stage: &str, message: String) -> AnalyticsError {
        AnalyticsError::Solver { dmu: self.ids[o].clone(), stage: stage.to_string(), message }
    }

    /// Radial LP of DMU `o`, certified against the non-dominated set.
    fn radial(&self, o: usize, base: &[usize], rts: Rts, found: &mut Vec<usize>) -> Result<Radial> {
        if self.orientation == Orientation::Output && self.zero_out[o] {
            return Ok(Radial { value: f64::INFINITY, dual: None });
        }
        self.radial_lps.fetch_add(1, Ordering::Relaxed);
        let stage = format!("radial {}", rts.as_str());
        if !self.accelerate {
            let all: Vec<usize> = (0..self.sc.n).collect();
            let model = RadialModel::solve(&self.sc, o, &all, self.orientation, rts)
                .map_err(|e| self.solver_err(o, &stage, e))?;
            return Ok(Radial { value: model.objective(), dual: Some(model.dual()) });
        }
        let mut refs: Vec<usize> = base.to_vec();
        let d = self.dom[o];
        if !refs.contains(&d) {
            refs.push(d);
        }
        // Envelopment over the frontier DMUs nearest to `o`: cheap (a basis of
        // m + s + 1 rows), and its λ support is almost always the set of
        // binding rows of `o`'s multiplier LP. The multiplier LP is then solved
        // over that support only, and pricing against the whole non-dominated
        // set certifies the result (or brings in the DMUs that were missing).
        let mut cand = self.nearest(o, &refs, rts, NEAREST);
        if !cand.contains(&d) {
            cand.push(d);
        }
        if let Ok((_, support)) = lp::radial_envelopment(&self.sc, o, &cand, self.orientation, rts) {
            refs = support;
            if !refs.contains(&d) {
                refs.push(d);
            }
        }
        let mut model = RadialModel::solve(&self.sc, o, &refs, self.orientation, rts);
        for _round in 0..MAX_ROUNDS {
            let Ok(current) = model else { break };
            let dual = current.dual();
            let mut viol: Vec<(f64, usize)> = Vec::new();
            for &j in &self.pset {
                let (g, mag) = dual.gap(&self.sc, j);
                if g > PRICE_TOL * mag && !refs.contains(&j) {
                    viol.push((g / mag, j));
                }
            }
            if viol.is_empty() {
                return Ok(Radial { value: current.objective(), dual: Some(dual) });
            }
            viol.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            viol.truncate(ENTER_PER_ROUND);
            // The most violated DMU maximises u·y − v·x: an extreme point of
            // the technology, hence a good shared reference candidate.
            found.push(viol[0].1);
            let enter: Vec<usize> = viol.iter().map(|&(_, j)| j).collect();
            refs.extend(&enter);
            self.rounds.fetch_add(1, Ordering::Relaxed);
            // One entering row: warm-started re-solve from the current basis
            // (microlp's `Solution::add_constraint`). Several: a fresh solve of
            // the small LP is cheaper than one re-solve per row.
            model = if enter.len() == 1 {
                current.add_refs(&self.sc, &enter)
            } else {
                RadialModel::solve(&self.sc, o, &refs, self.orientation, rts)
            };
        }
        // Fallback: the whole non-dominated set is exact (see frontier.rs).
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        let model = RadialModel::solve(&self.sc, o, &self.pset, self.orientation, rts)
            .map_err(|e| self.solver_err(o, &stage, e))?;
        Ok(Radial { value: model.objective(), dual: Some(model.dual()) })
    }

    /// The `k` members of `cands` whose (x, y) profile is closest to DMU `o`'s:
    /// smallest angle, plus (VRS/NIRS) the log-ratio of the profile sizes.
    /// These usually contain the binding constraints of `o`'s multiplier LP,
    /// so pricing has little left to add.
    fn nearest(&self, o: usize, cands: &[usize], rts: Rts, k: usize) -> Vec<usize> {
        if cands.len() <= k {
            return cands.to_vec();
        }
        let prof = |j: usize| -> (f64, f64) {
            let mut dot = 0.0;
            let mut nn = 0.0;
            for (a, b) in self.sc.xr(j).iter().zip(self.sc.xr(o)) {
                dot += a * b;
                nn += a * a;
            }
            for (a, b) in self.sc.yr(j).iter().zip(self.sc.yr(o)) {
                dot += a * b;
                nn += a * a;
            }
            (dot, nn.sqrt())
        };
        let (_, no) = prof(o);
        let mut scored: Vec<(f64, usize)> = cands
            .iter()
            .map(|&j| {
                let (dot, nj) = prof(j);
                let cos = dot / (nj * no).max(1e-300);
                let mut d = 1.0 - cos;
                if rts != Rts::Crs {
                    d += 0.25 * (nj / no.max(1e-300)).max(1e-300).ln().abs();
                }
                (d, j)
            })
            .collect();
        scored.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut out: Vec<usize> = scored[..k].iter().map(|&(_, j)| j).collect();
        out.sort_unstable();
        out
    }

    /// Solves one model for every DMU, growing a shared frontier set.
    fn run_model(&self, rts: Rts) -> Result<(Vec<Radial>, usize)> {
        let n = self.sc.n;
        let mut in_base = vec![false; n];
        let mut base: Vec<usize> = Vec::new();
        if self.accelerate {
            // Seeds: for every (input, output) pair the best ratio, and the
            // extremes of each column, all members of the non-dominated set.
            let p = &self.pset;
            let mut seeds = Vec::new();
            for i in 0..self.sc.m {
                seeds.push(*p.iter().min_by(|&&a, &&b| self.sc.xr(a)[i].total_cmp(&self.sc.xr(b)[i])).unwrap_or(&p[0]));
                for r in 0..self.sc.s {
                    let ratio = |j: usize| self.sc.yr(j)[r] / self.sc.xr(j)[i].max(1e-300);
                    seeds.push(*p.iter().max_by(|&&a, &&b| ratio(a).total_cmp(&ratio(b))).unwrap_or(&p[0]));
                }
            }
            for r in 0..self.sc.s {
                seeds.push(*p.iter().max_by(|&&a, &&b| self.sc.yr(a)[r].total_cmp(&self.sc.yr(b)[r])).unwrap_or(&p[0]));
            }
            for sd in seeds {
                if !in_base[sd] {
                    in_base[sd] = true;
                    base.push(sd);
                }
            }
        }
        // Non-dominated DMUs first (they are the frontier candidates), then the rest.
        let mut in_p = vec![false; n];
        for &j in &self.pset {
            in_p[j] = true;
        }
        let order: Vec<usize> = self.pset.iter().copied().chain((0..n).filter(|&j| !in_p[j])).collect();
        let mut results: Vec<Option<Radial>> = (0..n).map(|_| None).collect();
        let mut start = 0;
        let mut chunk = 32usize;
        while start < order.len() {
            let end = (start + chunk).min(order.len());
            let batch: Vec<(usize, Result<Radial>, Vec<usize>)> = order[start..end]
                .par_iter()
                .map(|&o| {
                    let mut found = Vec::new();
                    let r = self.radial(o, &base, rts, &mut found);
                    (o, r, found)
                })
                .collect();
            for (o, r, found) in batch {
                let r = r?;
                if self.accelerate {
                    let efficient = match self.orientation {
                        Orientation::Input => r.value >= 1.0 - EFF_TOL,
                        Orientation::Output => r.value <= 1.0 + EFF_TOL,
                    };
                    if efficient && in_p[o] && !in_base[o] {
                        in_base[o] = true;
                        base.push(o);
                    }
                    for f in found {
                        if !in_base[f] {
                            in_base[f] = true;
                            base.push(f);
                        }
                    }
                }
                results[o] = Some(r);
            }
            start = end;
            chunk = (chunk * 2).min(1024);
        }
        let frontier = base.len();
        Ok((results.into_iter().map(|r| r.expect("every DMU solved")).collect(), frontier))
    }

    /// Slack stage for DMU `o` with the radial factor fixed.
    fn slacks(
        &self,
        o: usize,
        rts: Rts,
        radial: &Radial,
        wx: &[f64],
        wy: &[f64],
        retries: &AtomicUsize,
    ) -> Result<lp::SlackSolution> {
        let tight: Vec<usize> = match (&radial.dual, self.accelerate) {
            (Some(d), true) => {
                let mut t: Vec<usize> = self
                    .pset
                    .iter()
                    .copied()
                    .filter(|&j| {
                        let (g, mag) = d.gap(&self.sc, j);
                        g >= -TIGHT_TOL * mag
                    })
                    .collect();
                if t.is_empty() {
                    t.push(self.dom[o]);
                }
                t
            }
            _ => (0..self.sc.n).collect(),
        };
        // θ* is fixed with a tiny relative relaxation (growing on retry) so
        // that round-off in θ* can never make the stage infeasible.
        let mut last = String::new();
        let sets: [&[usize]; 2] = [&tight, &self.pset];
        for (k, refs) in sets.iter().enumerate() {
            if k == 1 && !self.accelerate {
                break;
            }
            for relax in [1e-10, 1e-8, 1e-6] {
                let fixed = match self.orientation {
                    Orientation::Input => radial.value * (1.0 + relax),
                    Orientation::Output => radial.value * (1.0 - relax),
                };
                match lp::slack_lp(&self.sc, o, refs, self.orientation, rts, fixed, wx, wy) {
                    Ok(mut sol) => {
                        // Remove the slack created by the relaxation itself.
                        if self.orientation == Orientation::Input {
                            for (i, s) in sol.s_in.iter_mut().enumerate() {
                                *s = (*s - radial.value * relax * self.sc.xr(o)[i]).max(0.0);
                            }
                        } else {
                            for (r, s) in sol.s_out.iter_mut().enumerate() {
                                *s = (*s - radial.value * relax * self.sc.yr(o)[r]).max(0.0);
                            }
                        }
                        return Ok(sol);
                    }
                    Err(e) => {
                        retries.fetch_add(1, Ordering::Relaxed);
                        last = e;
                    }
                }
            }
        }
        Err(self.solver_err(o, &format!("slacks {}", rts.as_str()), last))
    }
}

fn te_of(orientation: Orientation, value: f64) -> f64 {
    match orientation {
        Orientation::Input => value,
        Orientation::Output => {
            if value.is_infinite() {
                0.0
            } else {
                1.0 / value
            }
        }
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= SCORE_TOL * (1.0 + a.abs().max(b.abs()))
}

/// Runs DEA on validated data.
pub fn run(data: &DeaData, opts: &DeaOptions) -> Result<DeaReport> {
    let n = data.len();
    let (m, s) = (data.input_names.len(), data.output_names.len());
    // Column scaling: every column divided by its mean. Scores are invariant;
    // slacks and targets are scaled back. This keeps LP coefficients O(1)
    // whatever the units (1e8-scale data solves like 1-scale data).
    let mut sx = vec![0.0; m];
    let mut sy = vec![0.0; s];
    for j in 0..n {
        for i in 0..m {
            sx[i] += data.x[j][i] / n as f64;
        }
        for r in 0..s {
            sy[r] += data.y[j][r] / n as f64;
        }
    }
    let mut x = Vec::with_capacity(n * m);
    let mut y = Vec::with_capacity(n * s);
    for j in 0..n {
        x.extend((0..m).map(|i| data.x[j][i] / sx[i]));
        y.extend((0..s).map(|r| data.y[j][r] / sy[r]));
    }
    let sc = Scaled { n, m, s, x, y };
    let clock = std::time::Instant::now();
    let mut phase_ms: Vec<(String, f64)> = Vec::new();
    let mut lap = |name: &str| {
        phase_ms.push((name.to_string(), clock.elapsed().as_secs_f64() * 1e3));
    };
    let (pset, dom) = frontier::pareto(&sc);
    lap("pareto");
    let zero_out: Vec<bool> = (0..n).map(|j| sc.yr(j).iter().all(|&v| v == 0.0)).collect();
    let engine = Engine {
        sc,
        pset,
        dom,
        orientation: opts.orientation,
        accelerate: opts.accelerate,
        zero_out,
        ids: &data.ids,
        radial_lps: AtomicUsize::new(0),
        rounds: AtomicUsize::new(0),
        fallbacks: AtomicUsize::new(0),
    };
    let mut stats = SolveStats { non_dominated: engine.pset.len(), ..Default::default() };

    let (primary, f) = engine.run_model(opts.rts)?;
    lap(opts.rts.as_str());
    stats.frontier.push((opts.rts.as_str().to_string(), f));
    let (crs, nirs) = if opts.rts == Rts::Vrs {
        let (c, fc) = engine.run_model(Rts::Crs)?;
        lap("crs");
        let (nr, fnr) = engine.run_model(Rts::Nirs)?;
        lap("nirs");
        stats.frontier.push(("crs".into(), fc));
        stats.frontier.push(("nirs".into(), fnr));
        (Some(c), Some(nr))
    } else {
        (None, None)
    };

    // Slack weights: slacks summed in original units (DEAP's objective),
    // normalised so the largest weight is 1.
    let wmax = sx.iter().chain(&sy).cloned().fold(0.0f64, f64::max);
    let wx: Vec<f64> = sx.iter().map(|v| v / wmax).collect();
    let wy: Vec<f64> = sy.iter().map(|v| v / wmax).collect();
    let retries = AtomicUsize::new(0);
    let slack_lps = AtomicUsize::new(0);
    let slack_results: Vec<Option<lp::SlackSolution>> = if opts.slacks {
        (0..n)
            .into_par_iter()
            .map(|o| {
                if primary[o].value.is_infinite() {
                    return Ok(None);
                }
                slack_lps.fetch_add(1, Ordering::Relaxed);
                engine.slacks(o, opts.rts, &primary[o], &wx, &wy, &retries).map(Some)
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        (0..n).map(|_| None).collect()
    };

    lap("slacks");
    let mut dmus = Vec::with_capacity(n);
    for o in 0..n {
        let value = primary[o].value;
        let te = te_of(opts.orientation, value);
        let mut note = None;
        if value.is_infinite() {
            note = Some("all outputs are zero: the output-oriented LP is unbounded (phi = inf), TE reported as 0; no slacks or targets".to_string());
        }
        let (crste, vrste, nirste, scale, rts_label) = match (&crs, &nirs) {
            (Some(c), Some(nr)) => {
                let c = te_of(opts.orientation, c[o].value);
                let nv = te_of(opts.orientation, nr[o].value);
                let label = if close(c, te) {
                    RtsLabel::Constant
                } else if close(nv, te) {
                    RtsLabel::Decreasing
                } else {
                    RtsLabel::Increasing
                };
                let scale = if te > 0.0 { Some(c / te) } else { None };
                (Some(c), Some(te), Some(nv), scale, Some(label))
            }
            _ => match opts.rts {
                Rts::Crs => (Some(te), None, None, None, None),
                Rts::Nirs => (None, None, Some(te), None, None),
                Rts::Vrs => (None, Some(te), None, None, None),
            },
        };
        let (mut slack_in, mut slack_out, mut target_in, mut target_out, mut peers) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        if let Some(sol) = &slack_results[o] {
            slack_in = sol.s_in.iter().zip(&sx).map(|(a, b)| a * b).collect();
            slack_out = sol.s_out.iter().zip(&sy).map(|(a, b)| a * b).collect();
            let (fx, fy) = match opts.orientation {
                Orientation::Input => (value, 1.0),
                Orientation::Output => (1.0, value),
            };
            target_in = (0..m).map(|i| (fx * data.x[o][i] - slack_in[i]).max(0.0)).collect();
            target_out = (0..s).map(|r| fy * data.y[o][r] + slack_out[r]).collect();
            peers = sol.lambda.iter().map(|&(j, l)| (data.ids[j].clone(), l)).collect();
        }
        dmus.push(DmuResult {
            id: data.ids[o].clone(),
            group: data.groups.as_ref().map(|g| g[o].clone()),
            te,
            raw: if value.is_finite() { Some(value) } else { None },
            crste,
            vrste,
            nirste,
            scale,
            rts: rts_label,
            slack_in,
            slack_out,
            target_in,
            target_out,
            peers,
            note,
        });
    }
    stats.radial_lps = engine.radial_lps.load(Ordering::Relaxed);
    stats.pricing_rounds = engine.rounds.load(Ordering::Relaxed);
    stats.fallbacks = engine.fallbacks.load(Ordering::Relaxed);
    stats.slack_lps = slack_lps.load(Ordering::Relaxed);
    stats.slack_retries = retries.load(Ordering::Relaxed);
    let group_means = group_means(&dmus);
    lap("report");
    let mut prev = 0.0;
    stats.phase_ms = phase_ms
        .into_iter()
        .map(|(k, t)| {
            let d = t - prev;
            prev = t;
            (k, (d * 10.0).round() / 10.0)
        })
        .collect();
    Ok(DeaReport {
        orientation: opts.orientation,
        rts: opts.rts,
        inputs: data.input_names.clone(),
        outputs: data.output_names.clone(),
        dmus,
        group_means,
        warnings: data.warnings.clone(),
        stats,
    })
}

fn mean_opt(vals: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let mut sum = 0.0;
    let mut k = 0usize;
    for v in vals.flatten() {
        sum += v;
        k += 1;
    }
    if k == 0 {
        None
    } else {
        Some(sum / k as f64)
    }
}

/// Group means in first-appearance order of the groups, plus an "all" row.
fn group_means(dmus: &[DmuResult]) -> Vec<GroupMean> {
    let mut order: Vec<String> = Vec::new();
    for d in dmus {
        if let Some(g) = &d.group {
            if !order.contains(g) {
                order.push(g.clone());
            }
        }
    }
    if order.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mk = |name: String, members: Vec<&DmuResult>| GroupMean {
        group: name,
        n: members.len(),
        te: members.iter().map(|d| d.te).sum::<f64>() / members.len() as f64,
        crste: mean_opt(members.iter().map(|d| d.crste)),
        vrste: mean_opt(members.iter().map(|d| d.vrste)),
        scale: mean_opt(members.iter().map(|d| d.scale)),
    };
    for g in order {
        let members: Vec<&DmuResult> = dmus.iter().filter(|d| d.group.as_deref() == Some(g.as_str())).collect();
        out.push(mk(g, members));
    }
    out.push(mk("all".to_string(), dmus.iter().collect()));
    out
}
