//! SVG bar charts with plotters: one row per workload, one bar per runtime, each bar the runtime's
//! median divided by gort's (so gort's bar is 1 and shorter is faster). Drawn in pixel
//! coordinates with plain rectangles and text, which the SVG backend renders without font files.

use std::path::Path;

use plotters::prelude::*;

/// One row of a chart: a label and `(runtime, time relative to gort)` bars.
pub struct Row {
    pub label: String,
    pub bars: Vec<(&'static str, f64)>,
}

const LABEL_W: i32 = 260;
const BAR_H: i32 = 14;
const ROW_GAP: i32 = 10;
const PLOT_W: i32 = 520;
/// Bars longer than this ratio are cut and marked.
const MAX_RATIO: f64 = 5.0;

fn colour(runtime: &str) -> RGBColor {
    match runtime {
        "gort" => RGBColor(31, 119, 180),
        "tokio" => RGBColor(255, 127, 14),
        "Go" => RGBColor(44, 160, 44),
        "crossbeam" => RGBColor(127, 127, 127),
        "flume" => RGBColor(148, 103, 189),
        _ => RGBColor(140, 86, 75),
    }
}

/// Writes the chart to `path`.
pub fn write(path: &Path, title: &str, rows: &[Row]) -> Result<(), String> {
    let bars: i32 = rows.iter().map(|r| r.bars.len().max(1) as i32).sum();
    let height = 70 + bars * BAR_H + rows.len() as i32 * ROW_GAP + 40;
    let width = LABEL_W + PLOT_W + 190;
    let root = SVGBackend::new(path, (width as u32, height as u32)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<_>| format!("xtask: drawing {}: {e:?}", path.display());
    root.fill(&WHITE).map_err(err)?;
    let font = |size: u32| ("sans-serif", size).into_font().color(&BLACK);
    root.draw(&Text::new(title.to_string(), (10, 10), font(16)))
        .map_err(err)?;
    root.draw(&Text::new(
        format!("median time relative to gort (gort = 1; shorter is faster; cut at {MAX_RATIO}x)"),
        (10, 32),
        font(12),
    ))
    .map_err(err)?;
    let x_of = |ratio: f64| LABEL_W + (ratio.min(MAX_RATIO) / MAX_RATIO * f64::from(PLOT_W)) as i32;
    let top = 56;
    // The 1x line.
    let bottom = height - 30;
    root.draw(&PathElement::new(
        vec![(x_of(1.0), top), (x_of(1.0), bottom)],
        BLACK.mix(0.4).stroke_width(1),
    ))
    .map_err(err)?;
    let mut y = top;
    for row in rows {
        root.draw(&Text::new(row.label.clone(), (10, y), font(12)))
            .map_err(err)?;
        for &(runtime, ratio) in &row.bars {
            let x1 = x_of(ratio).max(LABEL_W + 1);
            root.draw(&Rectangle::new(
                [(LABEL_W, y), (x1, y + BAR_H - 2)],
                colour(runtime).filled(),
            ))
            .map_err(err)?;
            let cut = if ratio > MAX_RATIO { " (cut)" } else { "" };
            root.draw(&Text::new(
                format!("{runtime} {ratio:.2}x{cut}"),
                (x1 + 4, y),
                font(11),
            ))
            .map_err(err)?;
            y += BAR_H;
        }
        y += ROW_GAP;
    }
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_every_label() {
        let dir = std::env::temp_dir().join(format!("xtask-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.svg");
        write(
            &path,
            "test",
            &[Row {
                label: "spawn_1m".into(),
                bars: vec![("gort", 1.0), ("tokio", 5.5), ("Go", 2.3)],
            }],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("<svg"));
        for text in ["spawn_1m", "gort 1.00x", "tokio 5.50x (cut)", "Go 2.30x"] {
            assert!(svg.contains(text), "{text} missing from {svg}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
