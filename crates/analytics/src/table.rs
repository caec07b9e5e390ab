//! Minimal typed access to a CSV table with row/column-precise errors.

use crate::error::{AnalyticsError, Result};
use std::io::Read;
use std::path::Path;

/// A CSV read fully into memory as strings.
#[derive(Debug, Clone)]
pub struct Table {
    /// Name used in error messages (the path as given, or a label).
    pub name: String,
    /// Header fields, trimmed.
    pub headers: Vec<String>,
    /// Data rows (each as long as `headers`).
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Reads a CSV file (first line is the header).
    pub fn read_path(path: &Path) -> Result<Table> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| AnalyticsError::io(format!("cannot open {name}"), e))?;
        Table::from_reader(&name, file)
    }

    /// Reads a CSV from any reader.
    pub fn from_reader<R: Read>(name: &str, reader: R) -> Result<Table> {
        let mut rdr = csv::ReaderBuilder::new().has_headers(true).trim(csv::Trim::All).from_reader(reader);
        let headers: Vec<String> = rdr
            .headers()
            .map_err(|e| AnalyticsError::Csv { path: name.to_string(), message: e.to_string() })?
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
            .collect();
        let mut rows = Vec::new();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| AnalyticsError::Csv { path: name.to_string(), message: e.to_string() })?;
            if rec.iter().all(|f| f.is_empty()) {
                continue;
            }
            rows.push(rec.iter().map(|f| f.to_string()).collect());
        }
        if rows.is_empty() {
            return Err(AnalyticsError::Empty { path: name.to_string() });
        }
        Ok(Table { name: name.to_string(), headers, rows })
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no data rows (never true for a table read from a file).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// File row number of data row `i` (header is row 1).
    pub fn file_row(i: usize) -> usize {
        i + 2
    }

    /// Index of a column, or a `MissingColumn` error listing the header.
    pub fn col(&self, name: &str) -> Result<usize> {
        self.headers.iter().position(|h| h == name).ok_or_else(|| AnalyticsError::MissingColumn {
            path: self.name.clone(),
            column: name.to_string(),
            available: self.headers.join(", "),
        })
    }

    /// A column as strings.
    pub fn strings(&self, name: &str) -> Result<Vec<String>> {
        let c = self.col(name)?;
        Ok(self.rows.iter().map(|r| r[c].clone()).collect())
    }

    /// A column parsed as finite numbers.
    pub fn numbers(&self, name: &str) -> Result<Vec<f64>> {
        let c = self.col(name)?;
        self.rows.iter().enumerate().map(|(i, r)| parse_number(&self.name, Table::file_row(i), name, &r[c])).collect()
    }
}

/// Parses one cell as a finite `f64`.
pub fn parse_number(path: &str, row: usize, column: &str, raw: &str) -> Result<f64> {
    let v: f64 = raw.trim().parse().map_err(|_| AnalyticsError::NonNumeric {
        path: path.to_string(),
        row,
        column: column.to_string(),
        value: raw.to_string(),
    })?;
    if !v.is_finite() {
        return Err(AnalyticsError::NotFinite {
            path: path.to_string(),
            row,
            column: column.to_string(),
            value: raw.trim().to_string(),
        });
    }
    Ok(v)
}

/// Splits a comma-separated list of column names (as given on the command line).
pub fn split_list(list: &str) -> Vec<String> {
    list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}
