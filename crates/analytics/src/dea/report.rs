//! Human-readable table, CSV and JSON renderings of a [`DeaReport`].

use super::{DeaReport, Orientation, Rts};
use crate::error::{AnalyticsError, Result};
use std::io::Write;

fn f3(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.3}"),
        Some(_) => "inf".into(),
        None => "".into(),
    }
}

fn io(e: std::io::Error) -> AnalyticsError {
    AnalyticsError::io("writing DEA output", e)
}

fn pad(rows: &[Vec<String>], out: &mut dyn Write) -> std::io::Result<()> {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut w = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0
                    || (i + 1 == r.len() && c.contains('('))
                    || (i + 1 == cols && i > 0 && r[i].starts_with("peers"))
                {
                    format!("{c:<width$}", width = w[i])
                } else {
                    format!("{c:>width$}", width = w[i])
                }
            })
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

/// Readable report in the spirit of DEAP's output file.
pub fn write_table(rep: &DeaReport, out: &mut dyn Write) -> Result<()> {
    let orient = match rep.orientation {
        Orientation::Input => "input-oriented (TE = theta)",
        Orientation::Output => "output-oriented (TE = 1/phi)",
    };
    writeln!(out, "DEA {} {}, {} DMUs, two-stage slacks", rep.rts.as_str().to_uppercase(), orient, rep.dmus.len())
        .map_err(io)?;
    writeln!(out).map_err(io)?;
    let has_group = rep.dmus.iter().any(|d| d.group.is_some());
    let mut rows = Vec::new();
    let mut head = vec!["dmu".to_string()];
    if has_group {
        head.push("group".into());
    }
    if rep.rts == Rts::Vrs {
        head.extend(["crste", "vrste", "scale", "rts"].map(String::from));
    } else {
        head.push(format!("{}te", rep.rts.as_str()));
    }
    for c in &rep.inputs {
        head.push(format!("slack {c}"));
    }
    for c in &rep.outputs {
        head.push(format!("slack {c}"));
    }
    for c in &rep.inputs {
        head.push(format!("target {c}"));
    }
    for c in &rep.outputs {
        head.push(format!("target {c}"));
    }
    head.push("peers (lambda)".into());
    rows.push(head);
    for d in &rep.dmus {
        let mut r = vec![d.id.clone()];
        if has_group {
            r.push(d.group.clone().unwrap_or_default());
        }
        if rep.rts == Rts::Vrs {
            r.push(f3(d.crste));
            r.push(f3(d.vrste));
            r.push(f3(d.scale));
            r.push(d.rts.map(|l| l.as_str().to_string()).unwrap_or_default());
        } else {
            r.push(f3(Some(d.te)));
        }
        for v in d.slack_in.iter().chain(&d.slack_out).chain(&d.target_in).chain(&d.target_out) {
            r.push(f3(Some(*v)));
        }
        if d.slack_in.is_empty() {
            for _ in 0..2 * (rep.inputs.len() + rep.outputs.len()) {
                r.push(String::new());
            }
        }
        let peers: Vec<String> = d.peers.iter().map(|(id, l)| format!("{id}({l:.3})")).collect();
        r.push(peers.join(" "));
        rows.push(r);
    }
    pad(&rows, out).map_err(io)?;
    let notes: Vec<_> = rep.dmus.iter().filter_map(|d| d.note.as_ref().map(|n| (d.id.clone(), n))).collect();
    if !notes.is_empty() {
        writeln!(out).map_err(io)?;
        for (id, n) in notes {
            writeln!(out, "note: DMU {id}: {n}").map_err(io)?;
        }
    }
    if !rep.group_means.is_empty() {
        writeln!(out).map_err(io)?;
        writeln!(out, "group means").map_err(io)?;
        let mut rows = vec![];
        let mut head = vec!["group".to_string(), "n".to_string()];
        if rep.rts == Rts::Vrs {
            head.extend(["crste", "vrste", "scale"].map(String::from));
        } else {
            head.push(format!("{}te", rep.rts.as_str()));
        }
        rows.push(head);
        for g in &rep.group_means {
            let mut r = vec![g.group.clone(), g.n.to_string()];
            if rep.rts == Rts::Vrs {
                r.extend([f3(g.crste), f3(g.vrste), f3(g.scale)]);
            } else {
                r.push(f3(Some(g.te)));
            }
            rows.push(r);
        }
        pad(&rows, out).map_err(io)?;
    }
    Ok(())
}

/// One CSV row per DMU (full precision).
pub fn write_csv(rep: &DeaReport, out: &mut dyn Write) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let mut head: Vec<String> =
        ["dmu", "group", "te", "raw", "crste", "vrste", "nirste", "scale", "rts"].map(String::from).to_vec();
    for c in &rep.inputs {
        head.push(format!("slack_in.{c}"));
    }
    for c in &rep.outputs {
        head.push(format!("slack_out.{c}"));
    }
    for c in &rep.inputs {
        head.push(format!("target_in.{c}"));
    }
    for c in &rep.outputs {
        head.push(format!("target_out.{c}"));
    }
    head.push("peers".into());
    head.push("note".into());
    let csv_err = |e: csv::Error| AnalyticsError::io("writing DEA CSV", std::io::Error::other(e.to_string()));
    w.write_record(&head).map_err(csv_err)?;
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for d in &rep.dmus {
        let mut r = vec![
            d.id.clone(),
            d.group.clone().unwrap_or_default(),
            d.te.to_string(),
            d.raw.map(|v| v.to_string()).unwrap_or_else(|| "inf".into()),
            opt(d.crste),
            opt(d.vrste),
            opt(d.nirste),
            opt(d.scale),
            d.rts.map(|l| l.as_str().to_string()).unwrap_or_default(),
        ];
        let k = 2 * (rep.inputs.len() + rep.outputs.len());
        if d.slack_in.is_empty() {
            r.extend(std::iter::repeat_n(String::new(), k));
        } else {
            for v in d.slack_in.iter().chain(&d.slack_out).chain(&d.target_in).chain(&d.target_out) {
                r.push(v.to_string());
            }
        }
        r.push(d.peers.iter().map(|(id, l)| format!("{id}:{l}")).collect::<Vec<_>>().join(";"));
        r.push(d.note.clone().unwrap_or_default());
        w.write_record(&r).map_err(csv_err)?;
    }
    w.flush().map_err(io)?;
    Ok(())
}

/// The whole report as JSON.
pub fn write_json(rep: &DeaReport, out: &mut dyn Write) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, rep)
        .map_err(|e| AnalyticsError::io("writing DEA JSON", std::io::Error::other(e.to_string())))?;
    writeln!(out).map_err(io)
}
