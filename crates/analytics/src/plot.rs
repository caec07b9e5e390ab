//! SVG and PNG plots of KDE curves: one panel per group, one curve per year,
//! a legend and axis labels. Text is drawn with an embedded ASCII subset of
//! DejaVu Sans (`assets/`), so no system font is needed.

use crate::error::{AnalyticsError, Result};
use crate::kde::{KdeReport, Rescale};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-ascii.ttf");
static REGISTER: Once = Once::new();

fn register_font() -> Result<()> {
    let mut ok = true;
    REGISTER.call_once(|| {
        ok = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok();
    });
    if ok {
        Ok(())
    } else {
        Err(AnalyticsError::Plot("embedded font could not be loaded".into()))
    }
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn perr<E: std::fmt::Display>(e: E) -> AnalyticsError {
    AnalyticsError::Plot(e.to_string())
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, rep: &KdeReport) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(perr)?;
    let mut groups: Vec<Option<String>> = Vec::new();
    let mut years: Vec<Option<String>> = Vec::new();
    for c in &rep.curves {
        if !groups.contains(&c.group) {
            groups.push(c.group.clone());
        }
        if !years.contains(&c.year) {
            years.push(c.year.clone());
        }
    }
    let cols = if groups.len() == 1 {
        1
    } else if groups.len() <= 4 {
        2
    } else {
        3
    };
    let rows = groups.len().div_ceil(cols);
    let title = format!(
        "Gaussian KDE of {} (bandwidth {}, {} mode)",
        rep.value,
        rep.rule,
        match rep.mode {
            crate::kde::Mode::Exact => "exact",
            crate::kde::Mode::Binned => "binned",
        }
    );
    let root = root.titled(&title, ("sans-serif", 22)).map_err(perr)?;
    let panels = root.split_evenly((rows, cols));
    let xmin = rep.curves.iter().map(|c| c.grid[0]).fold(f64::INFINITY, f64::min);
    let xmax = rep.curves.iter().map(|c| *c.grid.last().unwrap_or(&1.0)).fold(f64::NEG_INFINITY, f64::max);
    let ymax = rep.curves.iter().flat_map(|c| c.density.iter().cloned()).fold(0.0, f64::max) * 1.08;
    let ymax = if ymax > 0.0 { ymax } else { 1.0 };
    let xlabel = match rep.rescale {
        Rescale::Mean => format!("{} (multiple of the mean)", rep.value),
        Rescale::None => rep.value.clone(),
    };
    for (panel, g) in panels.iter().zip(&groups) {
        let caption = g.clone().map(|g| format!("group {g}")).unwrap_or_else(|| "all".into());
        let mut chart = ChartBuilder::on(panel)
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(xmin..xmax, 0.0..ymax)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .x_desc(xlabel.as_str())
            .y_desc("density")
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .x_labels(6)
            .y_labels(6)
            .draw()
            .map_err(perr)?;
        for c in rep.curves.iter().filter(|c| &c.group == g) {
            let k = years.iter().position(|y| y == &c.year).unwrap_or(0);
            let color = PALETTE[k % PALETTE.len()];
            let label = c.year.clone().map(|y| format!("{y} (n={})", c.n)).unwrap_or_else(|| format!("n={}", c.n));
            chart
                .draw_series(LineSeries::new(
                    c.grid.iter().cloned().zip(c.density.iter().cloned()),
                    color.stroke_width(2),
                ))
                .map_err(perr)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(perr)?;
    }
    root.present().map_err(perr)?;
    Ok(())
}

fn size_for(rep: &KdeReport) -> (u32, u32) {
    let mut groups: Vec<&Option<String>> = Vec::new();
    for c in &rep.curves {
        if !groups.contains(&&c.group) {
            groups.push(&c.group);
        }
    }
    let cols = if groups.len() == 1 {
        1
    } else if groups.len() <= 4 {
        2
    } else {
        3
    };
    let rows = groups.len().div_ceil(cols) as u32;
    (cols as u32 * 520, rows * 380 + 40)
}

/// SVG document of the report.
pub fn svg_string(rep: &KdeReport) -> Result<String> {
    register_font()?;
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, size_for(rep)).into_drawing_area();
        draw(root, rep)?;
    }
    Ok(s)
}

/// PNG bytes of the report.
pub fn png_bytes(rep: &KdeReport) -> Result<Vec<u8>> {
    register_font()?;
    let (w, h) = size_for(rep);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw(root, rep)?;
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(perr)?;
        writer.write_image_data(&buf).map_err(perr)?;
    }
    Ok(out)
}

/// Writes an SVG or PNG depending on the extension of `path`.
pub fn write_plot(rep: &KdeReport, path: &Path) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
    let bytes = match ext.as_deref() {
        Some("svg") => svg_string(rep)?.into_bytes(),
        Some("png") => png_bytes(rep)?,
        _ => {
            return Err(AnalyticsError::Usage(format!(
                "--plot {}: the file name must end in .svg or .png",
                path.display()
            )))
        }
    };
    std::fs::write(path, bytes).map_err(|e| AnalyticsError::io(format!("cannot write {}", path.display()), e))
}
