//! Figures, drawn with plotters into PNG files. The font is compiled in (DejaVu Sans) so that
//! drawing needs no system fonts.

mod bench;
mod fit;
mod train;

pub(crate) use bench::{Timed, activations, time_against_rtt};
pub(crate) use fit::fit;
pub(crate) use train::training;

use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::coord::CoordTranslate;
use plotters::prelude::*;
use plotters::style::FontStyle;

const FONT: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TTF shipped by the `dejavu` crate; failure would be a build bug.
        if plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_err()
        {
            tracing::error!("the embedded DejaVu Sans font failed to load; text will be missing");
        }
    });
}

fn draw_error<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("{e}")
}

/// The legend box every figure uses, in the upper left corner.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(draw_error)
}
