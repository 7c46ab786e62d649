//! Sum- and average-pooling: local sums, then a public division.

use crate::error::MpcError;
use crate::protocols::truncation::truncate_words;
use crate::session::Session;
use crate::tensor::{RingTensor, Share};

/// A pooling window over NCHW tensors, with symmetric padding `pad` on every side (PyTorch's
/// `padding`, outputs in floor mode). The padding is at most half the window, as PyTorch
/// requires, so every window holds at least one element of the input: [`sum_pool`] adds
/// zero for a padded position (average pooling divides by the whole window, PyTorch's
/// `count_include_pad=True`), and max pooling reads a padded position as the nearest
/// element of the input, which lies in the same window (see [`windows`]), so the padding
/// never wins a maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    /// Window height.
    pub kernel_h: usize,
    /// Window width.
    pub kernel_w: usize,
    /// Step in both directions.
    pub stride: usize,
    /// Padding on every side (absent in an older peer's architecture: none).
    #[serde(default)]
    pub pad: usize,
}

impl Window {
    /// A square `k x k` window with stride `stride`, unpadded.
    pub fn square(k: usize, stride: usize) -> Window {
        Window::padded(k, stride, 0)
    }

    /// A square `k x k` window with stride `stride` and padding `pad` on every side.
    pub fn padded(k: usize, stride: usize, pad: usize) -> Window {
        Window {
            kernel_h: k,
            kernel_w: k,
            stride,
            pad,
        }
    }

    /// Output `(height, width)` for an input of `h x w`, or an error if the window does not
    /// fit or its padding is more than half of it. Formed checked: a window comes from a
    /// peer's architecture.
    pub fn output(&self, h: usize, w: usize) -> Result<(usize, usize), MpcError> {
        if self.stride == 0 || self.kernel_h == 0 || self.kernel_w == 0 {
            return Err(MpcError::invalid("pool", "empty window or stride 0"));
        }
        if h == 0 || w == 0 {
            return Err(MpcError::invalid("pool", format!("empty {h}x{w} input")));
        }
        if self.pad > self.kernel_h / 2 || self.pad > self.kernel_w / 2 {
            return Err(MpcError::invalid(
                "pool",
                format!(
                    "padding {} is more than half the {}x{} window",
                    self.pad, self.kernel_h, self.kernel_w
                ),
            ));
        }
        // pad <= kernel / 2, which is at most a window side: no overflow below.
        let (ph, pw) = (h.checked_add(2 * self.pad), w.checked_add(2 * self.pad));
        let (Some(ph), Some(pw)) = (ph, pw) else {
            return Err(MpcError::invalid("pool", "the padded input overflows"));
        };
        if self.kernel_h > ph || self.kernel_w > pw {
            return Err(MpcError::invalid(
                "pool",
                format!(
                    "{}x{} window does not fit a {h}x{w} input padded by {}",
                    self.kernel_h, self.kernel_w, self.pad
                ),
            ));
        }
        Ok((
            (ph - self.kernel_h) / self.stride + 1,
            (pw - self.kernel_w) / self.stride + 1,
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

/// The input coordinate of window position `k` of the window starting at padded coordinate
/// `start` along an axis of `len` elements, or `None` for the padding.
pub fn unpadded(start: usize, k: usize, pad: usize, len: usize) -> Option<usize> {
    (start + k).checked_sub(pad).filter(|&i| i < len)
}

/// The nearest input coordinate to window position `k` (see [`windows`]).
pub fn nearest(start: usize, k: usize, pad: usize, len: usize) -> usize {
    (start + k).saturating_sub(pad).min(len.saturating_sub(1))
}

/// For each output element of max-pooling an NCHW tensor, the flat input indices of its
/// window: `(output shape, windows)` with `windows[o * size + j]` the `j`-th index of output
/// `o`. A padded position stands for the nearest element of the input (its coordinates
/// clamped to the plane), so the maximum of the list is the maximum over the input elements
/// of the window, and no constant stands in for `-inf`.
///
/// Why the clamped element is in the same window: along one axis the window covers input
/// coordinates `a..=a + k - 1` with `a = y stride - pad`. It meets the input `0..=len - 1`:
/// `a + k - 1 >= k - 1 - pad >= 0` as `pad <= k / 2 <= k - 1` ([`Window::output`]); and in
/// floor mode `y stride <= len + 2 pad - k`, so `a <= len + pad - k <= len - 1`. Clamping a
/// coordinate of an interval that meets `0..=len - 1` into `0..=len - 1` lands in both. So
/// every entry of the list is an element of the input inside the window, and every element
/// of the input inside the window is in the list as itself.
pub(crate) fn windows(
    shape: &[usize],
    window: Window,
) -> Result<(Vec<usize>, Vec<usize>), MpcError> {
    let (out, gathered) = window.output_shape(shape)?;
    let (planes, (h, w), (oh, ow)) = (out[0] * out[1], (shape[2], shape[3]), (out[2], out[3]));
    let (s, p) = (window.stride, window.pad);
    // Counted before it is built: an architecture bounds `gathered` per image before any run.
    let mut idx = Vec::with_capacity(gathered);
    for plane in 0..planes {
        for y in 0..oh {
            for x in 0..ow {
                for ky in 0..window.kernel_h {
                    let iy = nearest(y * s, ky, p, h);
                    for kx in 0..window.kernel_w {
                        idx.push((plane * h + iy) * w + nearest(x * s, kx, p, w));
                    }
                }
            }
        }
    }
    Ok((out, idx))
}

/// The sum over each window, the padding adding zero. Local.
pub fn sum_pool(x: &Share, window: Window) -> Result<Share, MpcError> {
    let (shape, _) = window.output_shape(x.shape())?;
    let (planes, (h, w), (oh, ow)) = (
        shape[0] * shape[1],
        (x.shape()[2], x.shape()[3]),
        (shape[2], shape[3]),
    );
    let (s, p) = (window.stride, window.pad);
    let mut data = Vec::with_capacity(planes * oh * ow);
    for plane in x.data().chunks(h * w).take(planes) {
        for y in 0..oh {
            for xx in 0..ow {
                let mut acc = 0u64;
                for ky in 0..window.kernel_h {
                    let Some(iy) = unpadded(y * s, ky, p, h) else {
                        continue;
                    };
                    for kx in 0..window.kernel_w {
                        if let Some(ix) = unpadded(xx * s, kx, p, w) {
                            acc = acc.wrapping_add(plane[iy * w + ix]);
                        }
                    }
                }
                data.push(acc);
            }
        }
    }
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
            pad: 0,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::Window;

    #[test]
    fn an_older_peers_window_has_no_padding() {
        let w: Window = serde_json::from_str(r#"{"kernel_h":3,"kernel_w":3,"stride":2}"#)
            .unwrap_or_else(|e| {
                panic!("{e}");
            });
        assert_eq!(w, Window::square(3, 2));
        let back: Window = serde_json::from_str(
            &serde_json::to_string(&Window::padded(3, 2, 1)).unwrap_or_default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.pad, 1);
    }

    #[test]
    fn padding_beyond_half_the_window_or_an_empty_input_is_refused() {
        assert!(Window::padded(3, 1, 2).output(8, 8).is_err());
        assert!(Window::padded(2, 1, 1).output(0, 4).is_err());
        assert!(Window::padded(3, 1, usize::MAX).output(8, 8).is_err());
        assert_eq!(
            Window::padded(3, 2, 1).output(112, 112).ok(),
            Some((56, 56))
        );
        assert_eq!(Window::padded(2, 1, 1).output(1, 1).ok(), Some((2, 2)));
    }
}
