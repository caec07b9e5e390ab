//! KDE benchmark: 1,000,000 seeded points on a 512-point grid, exact and
//! binned, with the binned mode's error against the exact result.
//!
//! `cargo run --release -p medledger-analytics --bin kde-bench -- --n 1000000 --grid 512`

use medledger_analytics::kde::{self, Bandwidth};
use medledger_analytics::rng::SeededRng;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let n: usize = get("--n").map(|v| v.parse().expect("--n N")).unwrap_or(1_000_000);
    let grid_n: usize = get("--grid").map(|v| v.parse().expect("--grid G")).unwrap_or(512);
    let seed: u64 = get("--seed").map(|v| v.parse().expect("--seed S")).unwrap_or(11);
    if let Some(path) = get("--write-panel") {
        // Example panel: doctors per 10,000 people in 4 regions x 3 years.
        let mut rng = SeededRng::new(seed);
        let mut out = String::from("county,region,year,doctors_per_10k\n");
        for (r, (region, base)) in
            [("East", 28.0), ("Central", 21.0), ("West", 16.0), ("Northeast", 24.0)].iter().enumerate()
        {
            for (year, growth, spread) in [(2010, 1.0, 0.40), (2015, 1.18, 0.34), (2020, 1.35, 0.28)] {
                for c in 0..150 {
                    let v = base * growth * rng.lognormal(0.0, spread);
                    out.push_str(&format!("C{r}{c:03},{region},{year},{v:.2}\n"));
                }
            }
        }
        std::fs::write(&path, out).expect("write panel");
        eprintln!("wrote {path}");
        return;
    }
    // Doctors per 10,000 people: a right-skewed mixture of two regional regimes.
    let mut rng = SeededRng::new(seed);
    let x: Vec<f64> = (0..n)
        .map(|_| if rng.bernoulli(0.7) { rng.lognormal(3.0f64.ln(), 0.25) } else { rng.lognormal(5.0f64.ln(), 0.35) })
        .collect();
    let t = Instant::now();
    let h = match kde::bandwidth(&x, Bandwidth::ScipyScott) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("kde-bench: {e}");
            std::process::exit(2);
        }
    };
    let (lo, hi) = x.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let (a, b) = (lo - 3.0 * h, hi + 3.0 * h);
    let grid = kde::linspace(a, b, grid_n);
    let t_bw = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let exact = kde::density_exact(&x, h, &grid);
    let t_exact = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let binned = kde::density_binned(&x, h, a, b, grid_n);
    let t_binned = t.elapsed().as_secs_f64();
    let peak = exact.iter().cloned().fold(0.0, f64::max);
    let max_abs = exact.iter().zip(&binned).map(|(e, b)| (e - b).abs()).fold(0.0, f64::max);
    println!(
        "kde-bench n={n} grid={grid_n} threads={} h={h:.6} bandwidth={t_bw:.3}s exact={t_exact:.3}s binned={t_binned:.4}s max_abs_err={max_abs:.3e} max_err/peak={:.3e}",
        rayon::current_num_threads(),
        max_abs / peak
    );
}
