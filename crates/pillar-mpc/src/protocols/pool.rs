//! Sum- and average-pooling: local sums, then a public division.

use crate::error::MpcError;
use crate::protocols::truncation::truncate_words;
use crate::session::Session;
use crate::tensor::{RingTensor, Share};

/// A pooling window over NCHW tensors (no padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    /// Window height.
    pub kernel_h: usize,
    /// Window width.
    pub kernel_w: usize,
    /// Step in both directions.
    pub stride: usize,
}

impl Window {
    /// A square `k x k` window with stride `stride`.
    pub fn square(k: usize, stride: usize) -> Window {
        Window {
            kernel_h: k,
            kernel_w: k,
            stride,
        }
    }

    /// Output `(height, width)` for an input of `h x w`, or an error if the window does not fit.
    pub fn output(&self, h: usize, w: usize) -> Result<(usize, usize), MpcError> {
        if self.stride == 0 || self.kernel_h == 0 || self.kernel_w == 0 {
            return Err(MpcError::invalid("pool", "empty window or stride 0"));
        }
        if self.kernel_h > h || self.kernel_w > w {
            return Err(MpcError::invalid(
                "pool",
                format!(
                    "{}x{} window does not fit a {h}x{w} input",
                    self.kernel_h, self.kernel_w
                ),
            ));
        }
        Ok((
            (h - self.kernel_h) / self.stride + 1,
            (w - self.kernel_w) / self.stride + 1,
        ))
    }

    /// Elements in one window, if that fits a `usize`: a window comes from a peer's
    /// architecture, so its area is formed checked.
    pub fn size(&self) -> Option<usize> {
        self.kernel_h.checked_mul(self.kernel_w)
    }

    /// `[N, C, OH, OW]` for an NCHW `shape`, and the words of one gathered copy of every
    /// window (`N C OH OW kh kw`): computed without building the index lists, so that a
    /// hostile size is refused before anything is allocated.
    pub fn output_shape(&self, shape: &[usize]) -> Result<(Vec<usize>, usize), MpcError> {
        let &[n, c, h, w] = shape else {
            return Err(MpcError::invalid(
                "pool",
                format!("expected an NCHW tensor, got shape {shape:?}"),
            ));
        };
        let (oh, ow) = self.output(h, w)?;
        let out = vec![n, c, oh, ow];
        let gathered = out
            .iter()
            .chain([&self.kernel_h, &self.kernel_w])
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                MpcError::invalid(
                    "pool",
                    format!(
                        "{}x{} windows over {out:?} outputs overflow a word count",
                        self.kernel_h, self.kernel_w
                    ),
                )
            })?;
        Ok((out, gathered))
    }
}

/// For each output element of pooling an NCHW tensor, the flat input indices of its window:
/// `(output shape, windows)` with `windows[o * size + j]` the `j`-th index of output `o`.
pub(crate) fn windows(
    shape: &[usize],
    window: Window,
) -> Result<(Vec<usize>, Vec<usize>), MpcError> {
    let (out, gathered) = window.output_shape(shape)?;
    let (planes, (h, w), (oh, ow)) = (out[0] * out[1], (shape[2], shape[3]), (out[2], out[3]));
    // Counted before it is built: an architecture bounds `gathered` per image before any run.
    let mut idx = Vec::with_capacity(gathered);
    for plane in 0..planes {
        for y in 0..oh {
            for x in 0..ow {
                for ky in 0..window.kernel_h {
                    for kx in 0..window.kernel_w {
                        idx.push((plane * h + y * window.stride + ky) * w + x * window.stride + kx);
                    }
                }
            }
        }
    }
    Ok((out, idx))
}

/// The sum over each window. Local.
pub fn sum_pool(x: &Share, window: Window) -> Result<Share, MpcError> {
    let (shape, idx) = windows(x.shape(), window)?;
    let size = window.kernel_h * window.kernel_w;
    let data = idx
        .chunks(size)
        .map(|win| {
            win.iter()
                .fold(0u64, |acc, &i| acc.wrapping_add(x.data()[i]))
        })
        .collect();
    Ok(Share::new(RingTensor::new(shape, data)?))
}

/// How [`avg_pool`] divides a window sum by `size`: a truncation by `s = floor(log2 size)`,
/// then, unless `size = 2^s`, a product with `inv = round(2^(f+s) / size)` and a truncation
/// by `f`. Returns `(s, inv)`.
///
/// Why two steps: `inv` lies in `(2^(f-1), 2^f]` for every size, so it carries `f` bits and
/// the division is off by at most `2^-f` relatively (`round(2^f / size)` alone was 4.3% off
/// for a 112 x 112 window and 0 beyond `2^(f+1)`), while the product stays at `2^(2f)` like
/// any other, so its truncation fails no more often. The first truncation costs at most one
/// unit of the result. A window holds at least one element; a size of 0 is taken as 1.
pub fn reciprocal(size: u64, frac_bits: u32) -> (u32, Option<u64>) {
    let size = size.max(1);
    let s = size.ilog2();
    if size.is_power_of_two() {
        return (s, None);
    }
    // Exact rounding in integers: 2^(f+s) < 2^(20+64).
    let numerator = 1u128 << (frac_bits + s);
    let size = u128::from(size);
    let inv = (numerator + size / 2) / size;
    (s, Some(inv as u64))
}

/// The mean over each window. Local: truncations and a product by a public reciprocal, as
/// [`reciprocal`] says.
pub fn avg_pool(s: &Session, x: &Share, window: Window) -> Result<Share, MpcError> {
    let sum = sum_pool(x, window)?;
    let size = (window.kernel_h * window.kernel_w) as u64;
    let mut words = sum.data().to_vec();
    let (shift, inv) = reciprocal(size, s.fixed().frac_bits());
    truncate_words(s.party(), &mut words, shift);
    if let Some(inv) = inv {
        for w in &mut words {
            *w = w.wrapping_mul(inv);
        }
        truncate_words(s.party(), &mut words, s.fixed().frac_bits());
    }
    Ok(Share::new(RingTensor::new(sum.shape().to_vec(), words)?))
}

/// The mean over each whole `H x W` plane, as `[N, C, 1, 1]`.
pub fn global_avg_pool(s: &Session, x: &Share) -> Result<Share, MpcError> {
    let &[_, _, h, w] = x.shape() else {
        return Err(MpcError::invalid(
            "global_avg_pool",
            format!("expected an NCHW tensor, got shape {:?}", x.shape()),
        ));
    };
    avg_pool(
        s,
        x,
        Window {
            kernel_h: h,
            kernel_w: w,
            stride: 1,
        },
    )
}
