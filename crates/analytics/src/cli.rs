//! The `analytics` subcommands, ready to be mounted in the `medledger`
//! binary as `medledger analytics <AnalyticsCommand>`.

use crate::dea::{self, DeaData, DeaOptions, Orientation, Rts};
use crate::error::{AnalyticsError, Result};
use crate::kde::{self, Bandwidth, KdeOptions, Mode, Rescale};
use crate::severity::{self, cohort, model::SeverityModel};
use crate::table::Table;
use std::io::Write;
use std::path::PathBuf;

/// Output format of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned, human-readable text.
    Table,
    /// JSON document.
    Json,
    /// CSV, one row per record.
    Csv,
}

/// Regional-equity and clinical analytics.
#[derive(Debug, clap::Subcommand)]
pub enum AnalyticsCommand {
    /// Data Envelopment Analysis of DMUs (DEAP 2.1 conventions).
    Dea(DeaArgs),
    /// Gaussian kernel density curves of a per-capita resource.
    Kde(KdeArgs),
    /// Logistic-regression severity model.
    #[command(subcommand)]
    Severity(SeverityCommand),
    /// Write a seeded synthetic COVID-19 cohort as CSV.
    Cohort(CohortArgs),
}

/// `dea` arguments.
#[derive(Debug, clap::Args)]
pub struct DeaArgs {
    /// CSV file with one row per DMU.
    pub data: PathBuf,
    /// Column holding the DMU identifier.
    #[arg(long)]
    pub id: String,
    /// Input columns, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub inputs: Vec<String>,
    /// Output columns, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub outputs: Vec<String>,
    /// Orientation of the radial measure.
    #[arg(long, value_enum, default_value = "input")]
    pub orientation: Orientation,
    /// Returns to scale. `vrs` also reports CRSTE, SCALE and the RTS label.
    #[arg(long, value_enum, default_value = "vrs")]
    pub rts: Rts,
    /// Optional group column (e.g. region): prints group means.
    #[arg(long)]
    pub group: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Skip the slack stage (scores only).
    #[arg(long)]
    pub no_slacks: bool,
    /// Solve every LP over all DMUs instead of the certified reduced sets.
    #[arg(long)]
    pub no_accelerate: bool,
}

/// `kde` arguments.
#[derive(Debug, clap::Args)]
pub struct KdeArgs {
    /// CSV file.
    pub data: PathBuf,
    /// Column to estimate the density of.
    #[arg(long)]
    pub value: String,
    /// One panel per value of this column.
    #[arg(long)]
    pub group: Option<String>,
    /// One curve per value of this column.
    #[arg(long)]
    pub year: Option<String>,
    /// `mean`: divide values by the mean of their year first.
    #[arg(long, value_enum, default_value = "none")]
    pub rescale: Rescale,
    /// scott | silverman | nrd0 | sm-scott | sm-silverman | a fixed h.
    #[arg(long, default_value = "scott")]
    pub bandwidth: String,
    /// Number of grid points.
    #[arg(long, default_value_t = 512)]
    pub grid_points: usize,
    /// exact (direct sum) or binned (linear binning + FFT).
    #[arg(long, value_enum, default_value = "exact")]
    pub mode: Mode,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Also draw the curves to an .svg or .png file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// `severity` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SeverityCommand {
    /// Fit the model on a labelled cohort and write model.json.
    Train(TrainArgs),
    /// Score patients with a verified model.json.
    Predict(PredictArgs),
}

/// `severity train` arguments.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Cohort CSV (the columns written by `cohort`).
    pub cohort: PathBuf,
    /// Where to write model.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Inverse L2 regularisation strength (scikit-learn's C).
    #[arg(long, default_value_t = 1.0)]
    pub c: f64,
    /// Folds of cross-validation.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Seed of the cross-validation shuffle.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Output format of the training report.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// `severity predict` arguments.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// model.json written by `severity train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Patients CSV (the feature columns; `severe` optional).
    pub patients: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
}

/// `cohort` arguments.
#[derive(Debug, clap::Args)]
pub struct CohortArgs {
    /// Number of patients.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// RNG seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn wio(e: std::io::Error) -> AnalyticsError {
    AnalyticsError::io("writing output", e)
}

fn json_out<T: serde::Serialize>(v: &T, out: &mut dyn Write) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, v).map_err(|e| wio(std::io::Error::other(e.to_string())))?;
    writeln!(out).map_err(wio)
}

/// Runs one analytics command. Results go to `out`, warnings to `err`.
pub fn run(cmd: AnalyticsCommand, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    match cmd {
        AnalyticsCommand::Dea(a) => run_dea(a, out, err),
        AnalyticsCommand::Kde(a) => run_kde(a, out, err),
        AnalyticsCommand::Severity(SeverityCommand::Train(a)) => run_train(a, out, err),
        AnalyticsCommand::Severity(SeverityCommand::Predict(a)) => run_predict(a, out, err),
        AnalyticsCommand::Cohort(a) => run_cohort(a, out),
    }
}

fn run_dea(a: DeaArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let table = Table::read_path(&a.data)?;
    let data = DeaData::from_table(&table, &a.id, &a.inputs, &a.outputs, a.group.as_deref())?;
    for w in &data.warnings {
        writeln!(err, "warning: {w}").map_err(wio)?;
    }
    let mut opts = DeaOptions::new(a.orientation, a.rts);
    opts.slacks = !a.no_slacks;
    opts.accelerate = !a.no_accelerate;
    let rep = dea::run(&data, &opts)?;
    match a.format {
        Format::Table => dea::report::write_table(&rep, out),
        Format::Json => dea::report::write_json(&rep, out),
        Format::Csv => dea::report::write_csv(&rep, out),
    }
}

fn run_kde(a: KdeArgs, out: &mut dyn Write, _err: &mut dyn Write) -> Result<()> {
    let bandwidth: Bandwidth = a.bandwidth.parse()?;
    let table = Table::read_path(&a.data)?;
    let opts =
        KdeOptions { bandwidth, grid_points: a.grid_points, mode: a.mode, rescale: a.rescale, ..KdeOptions::default() };
    let rep = kde::run_table(&table, &a.value, a.group.as_deref(), a.year.as_deref(), &opts)?;
    if let Some(p) = &a.plot {
        crate::plot::write_plot(&rep, p)?;
    }
    match a.format {
        Format::Json => json_out(&rep, out),
        Format::Csv => {
            writeln!(out, "group,year,x,density").map_err(wio)?;
            for c in &rep.curves {
                for (x, d) in c.grid.iter().zip(&c.density) {
                    writeln!(out, "{},{},{x},{d}", c.group.as_deref().unwrap_or(""), c.year.as_deref().unwrap_or(""))
                        .map_err(wio)?;
                }
            }
            Ok(())
        }
        Format::Table => {
            let unit = if a.rescale == Rescale::Mean { " (multiple of the mean)" } else { "" };
            writeln!(
                out,
                "Gaussian KDE of {}{unit}: bandwidth rule {}, {} mode, {} grid points from {:.4} to {:.4}",
                rep.value,
                rep.rule,
                if a.mode == Mode::Exact { "exact" } else { "binned" },
                a.grid_points,
                rep.curves[0].grid[0],
                rep.curves[0].grid[a.grid_points - 1]
            )
            .map_err(wio)?;
            writeln!(
                out,
                "{:<12} {:<8} {:>7} {:>10} {:>10} {:>10} {:>10}",
                "group", "year", "n", "mean", "h", "mode at", "peak"
            )
            .map_err(wio)?;
            for c in &rep.curves {
                let peak = c.density.iter().cloned().fold(0.0, f64::max);
                writeln!(
                    out,
                    "{:<12} {:<8} {:>7} {:>10.4} {:>10.4} {:>10.4} {:>10.4}",
                    c.group.as_deref().unwrap_or("all"),
                    c.year.as_deref().unwrap_or("-"),
                    c.n,
                    c.mean,
                    c.bandwidth,
                    c.mode_location(),
                    peak
                )
                .map_err(wio)?;
            }
            if let Some(p) = &a.plot {
                writeln!(out, "plot written to {}", p.display()).map_err(wio)?;
            }
            Ok(())
        }
    }
}

fn features() -> Vec<String> {
    severity::FEATURES.iter().map(|s| s.to_string()).collect()
}

#[derive(serde::Serialize)]
struct TrainReport<'a> {
    model: &'a SeverityModel,
    sha256: String,
    training: severity::Metrics,
    cross_validation: Vec<severity::Fold>,
}

fn run_train(a: TrainArgs, out: &mut dyn Write, _err: &mut dyn Write) -> Result<()> {
    let table = Table::read_path(&a.cohort)?;
    let feats = features();
    let ds = severity::dataset(&table, &feats, true)?;
    let y = ds.y.expect("outcome required");
    let model = severity::train(&feats, &ds.x, &y, a.c)?;
    let metrics = severity::evaluate(&model, &ds.x, &y);
    let folds = severity::cross_validate(&feats, &ds.x, &y, a.c, a.folds, a.seed)?;
    model.save(&a.out)?;
    let digest = model.digest();
    if a.format == Format::Json {
        return json_out(
            &TrainReport { model: &model, sha256: digest, training: metrics, cross_validation: folds },
            out,
        );
    }
    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").map_err(wio);
    w(
        out,
        format!(
            "logistic severity model: {} patients, {} features, L2 C = {}, standardised (population sd)",
            metrics.n,
            feats.len(),
            a.c
        ),
    )?;
    w(out, format!("{:<16} {:>10} {:>12}", "feature", "coef (z)", "coef (raw)"))?;
    w(out, format!("{:<16} {:>10.4}", "(intercept)", model.intercept))?;
    for (i, f) in feats.iter().enumerate() {
        w(out, format!("{:<16} {:>10.4} {:>12.5}", f, model.coef[i], model.coef[i] / model.scale[i]))?;
    }
    w(
        out,
        format!(
            "training accuracy {:.4}, ROC AUC {}",
            metrics.accuracy,
            metrics.auc.map(|v| format!("{v:.4}")).unwrap_or_else(|| "n/a".into())
        ),
    )?;
    let c = metrics.confusion;
    w(
        out,
        format!(
            "confusion (rows = actual, cols = predicted at P>=0.5): [[tn {} fp {}] [fn {} tp {}]]",
            c[0][0], c[0][1], c[1][0], c[1][1]
        ),
    )?;
    w(
        out,
        format!(
            "levels (P<{} mild, P<{} moderate, else severe): mild {}, moderate {}, severe {}",
            model.thresholds.moderate, model.thresholds.severe, metrics.levels[0], metrics.levels[1], metrics.levels[2]
        ),
    )?;
    let accs: Vec<f64> = folds.iter().map(|f| f.accuracy).collect();
    let aucs: Vec<f64> = folds.iter().filter_map(|f| f.auc).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    w(
        out,
        format!(
            "{}-fold CV (seed {}): accuracy {:.4}, ROC AUC {:.4} (per fold: {})",
            a.folds,
            a.seed,
            mean(&accs),
            mean(&aucs),
            folds
                .iter()
                .map(|f| format!(
                    "{:.3}/{}",
                    f.accuracy,
                    f.auc.map(|v| format!("{v:.3}")).unwrap_or_else(|| "n/a".into())
                ))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    )?;
    w(out, format!("model written to {} (sha256 {digest})", a.out.display()))
}

#[derive(serde::Serialize)]
struct Prediction<'a> {
    patient_id: &'a str,
    probability: f64,
    level: &'static str,
}

fn run_predict(a: PredictArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let model = SeverityModel::load(&a.model)?;
    let table = Table::read_path(&a.patients)?;
    let ds = severity::dataset(&table, &model.features, false)?;
    let preds: Vec<Prediction> = ds
        .ids
        .iter()
        .zip(&ds.x)
        .map(|(id, x)| {
            let p = model.probability(x);
            Prediction { patient_id: id, probability: p, level: model.level(p) }
        })
        .collect();
    match a.format {
        Format::Json => json_out(&preds, out)?,
        Format::Csv => {
            writeln!(out, "patient_id,probability,level").map_err(wio)?;
            for p in &preds {
                writeln!(out, "{},{:.6},{}", p.patient_id, p.probability, p.level).map_err(wio)?;
            }
        }
        Format::Table => {
            writeln!(out, "{:<12} {:>11} {:<8}", "patient", "P(severe)", "level").map_err(wio)?;
            for p in &preds {
                writeln!(out, "{:<12} {:>11.4} {:<8}", p.patient_id, p.probability, p.level).map_err(wio)?;
            }
        }
    }
    writeln!(err, "note: model {} verified (sha256 {})", a.model.display(), model.digest()).map_err(wio)?;
    if let Some(y) = &ds.y {
        let m = severity::evaluate(&model, &ds.x, y);
        writeln!(
            err,
            "note: outcome column present: accuracy {:.4}, ROC AUC {}",
            m.accuracy,
            m.auc.map(|v| format!("{v:.4}")).unwrap_or_else(|| "n/a".into())
        )
        .map_err(wio)?;
    }
    Ok(())
}

fn run_cohort(a: CohortArgs, out: &mut dyn Write) -> Result<()> {
    if a.n == 0 {
        return Err(AnalyticsError::Usage("--n must be at least 1".into()));
    }
    let text = cohort::generate_csv(a.n, a.seed);
    match &a.out {
        Some(p) => std::fs::write(p, text).map_err(|e| AnalyticsError::io(format!("cannot write {}", p.display()), e)),
        None => out.write_all(text.as_bytes()).map_err(wio),
    }
}
