//! The A_t-against-step plot (PNG), one line per head.
//!
//! Drawn with plotters into an RGB buffer and encoded by the `image` crate (so no second image stack is
//! built). Text needs a TrueType font, read at run time: `$EDGECL_FONT`, else DejaVu Sans or Liberation
//! Sans where Debian, Fedora and Arch put them (Debian: `apt-get install fonts-dejavu-core`). Without a
//! font the plot is still drawn, lines and grid only, and [`draw`] says so in its result.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;

use super::run::HeadResult;
use crate::error::{Error, Result};

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];

/// Registers the first font found with plotters (once per process); the path, or `None` if none loads.
fn font() -> Option<&'static Path> {
    static FONT: OnceLock<Option<PathBuf>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates = std::env::var_os("EDGECL_FONT")
            .map(PathBuf::from)
            .into_iter()
            .chain(FONT_PATHS.iter().map(PathBuf::from));
        for p in candidates {
            if let Ok(bytes) = std::fs::read(&p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Some(p);
                }
            }
        }
        None
    })
    .as_deref()
}

/// What was drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Drawn {
    WithText(PathBuf),
    /// No font was found: lines and grid only.
    NoText,
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: cannot draw the plot: {e}", path.display()))
}

/// Draws A_t (percent) against the step for each head into a `width x height` PNG at `path`.
pub fn draw(
    path: &Path,
    title: &str,
    heads: &[HeadResult],
    width: u32,
    height: u32,
) -> Result<Drawn> {
    draw_with(path, title, heads, (width, height), font())
}

/// [`draw`] with the font decided by the caller (`None`: no text at all).
fn draw_with(
    path: &Path,
    title: &str,
    heads: &[HeadResult],
    (width, height): (u32, u32),
    font: Option<&Path>,
) -> Result<Drawn> {
    let steps = heads.iter().map(|h| h.a_t.len()).max().unwrap_or(1).max(1);
    let mut buf = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let mut builder = ChartBuilder::on(&root);
        builder.margin(16);
        if font.is_some() {
            builder
                .caption(title, ("sans-serif", 20))
                .x_label_area_size(40)
                .y_label_area_size(50);
        }
        let x_max = steps as f64 + 0.2;
        let mut chart = builder
            .build_cartesian_2d(0.8f64..x_max, 0f64..100f64)
            .map_err(|e| plot_err(path, e))?;
        let mut mesh = chart.configure_mesh();
        if font.is_some() {
            mesh.x_desc("step")
                .y_desc("A_t: accuracy on all classes seen (%)")
                .x_labels(steps)
                .x_label_formatter(&|v| format!("{v:.0}"));
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(|e| plot_err(path, e))?;
        for (i, h) in heads.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let points: Vec<(f64, f64)> = h
                .a_t
                .iter()
                .enumerate()
                .map(|(t, a)| ((t + 1) as f64, 100.0 * a.mean))
                .collect();
            let series = chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| plot_err(path, e))?;
            if font.is_some() {
                series.label(h.head.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| plot_err(path, e))?;
        }
        if font.is_some() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(|e| plot_err(path, e))?;
        }
        root.present().map_err(|e| plot_err(path, e))?;
    }
    let img = image::RgbImage::from_raw(width, height, buf).expect("buffer is width x height x 3");
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| plot_err(path, e))?;
    Ok(match font {
        Some(p) => Drawn::WithText(p.to_path_buf()),
        None => Drawn::NoText,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::MeanStd;

    #[test]
    fn writes_a_png_with_a_line_per_head() {
        let m = |v: f64| MeanStd { mean: v, std: 0.0 };
        let head = |name: &str, a: [f64; 3]| HeadResult {
            head: name.into(),
            runs: vec![],
            a_t: a.iter().map(|&v| m(v)).collect(),
            average_incremental: m(0.0),
            final_accuracy: m(0.0),
            forgetting: m(0.0),
            state_bytes: 0.0,
            learn_ms_per_step: 0.0,
            classify_us: 0.0,
        };
        let dir = tempfile::tempdir().unwrap();
        // Without a font: lines only, no text drawn, still a PNG.
        let bare = dir.path().join("bare.png");
        let drawn = draw_with(
            &bare,
            "toy",
            &[head("a", [0.9, 0.8, 0.7])],
            (320, 240),
            None,
        )
        .unwrap();
        assert_eq!(drawn, Drawn::NoText);
        assert_eq!(
            image::open(&bare).unwrap().to_rgb8().dimensions(),
            (320, 240)
        );
        let p = dir.path().join("a.png");
        draw(
            &p,
            "toy",
            &[head("a", [0.9, 0.8, 0.7]), head("b", [0.5, 0.4, 0.3])],
            320,
            240,
        )
        .unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (320, 240));
        // Two distinct line colours appear somewhere besides white, black and grey.
        let mut colours: Vec<[u8; 3]> = img
            .pixels()
            .map(|p| p.0)
            .filter(|c| !(c[0] == c[1] && c[1] == c[2]))
            .collect();
        colours.sort_unstable();
        colours.dedup();
        assert!(colours.len() >= 2, "{colours:?}");
    }
}
