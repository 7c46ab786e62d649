//! The layers in the ring, on a batch of images at once: what each protocol of
//! `pillar_mpc::protocols` computes on the opened values, with exact floor truncation.

use pillar_mpc::kernels::{ConvGeometry, conv2d as conv_kernel, matmul};
use pillar_mpc::protocols::pool::{Window, nearest, reciprocal, unpadded};

use pillar_mpc::protocols::mirror::Tally;
use pillar_mpc::protocols::relu::plain as relu;

/// Adds a per-channel bias to `y` laid out as `[.., channels, inner]`.
fn add_bias(y: &mut [u64], bias: &[u64], inner: usize) {
    let channels = bias.len();
    for (i, chunk) in y.chunks_mut(inner).enumerate() {
        let b = bias[i % channels];
        chunk.iter_mut().for_each(|v| *v = v.wrapping_add(b));
    }
}

/// `weights::conv2d`: the wrapping convolution by the OIHW `weight` (at `f` bits), truncated by
/// `f`, plus the bias (`weights::add_bias`).
pub(crate) fn conv2d(
    g: &ConvGeometry,
    weight: &[u64],
    bias: Option<&[u64]>,
    x: &[u64],
    frac_bits: u32,
    t: &mut Tally,
) -> Vec<u64> {
    let mut z = conv_kernel(g, x, weight);
    z.iter_mut().for_each(|v| *v = t.truncate(*v, frac_bits));
    if let Some(b) = bias {
        add_bias(&mut z, b, g.out_h() * g.out_w());
    }
    z.iter().for_each(|&v| t.see(v));
    z
}

/// `weights::matmul`: `x W^T` over the batch with `W^T` (`in x out`) as `weight`, truncated
/// by `f`, plus the bias.
pub(crate) fn linear(
    weight: &[u64],
    bias: Option<&[u64]>,
    x: &[u64],
    batch: usize,
    (inp, out): (usize, usize),
    frac_bits: u32,
    t: &mut Tally,
) -> Vec<u64> {
    let mut z = matmul(batch, inp, out, x, weight);
    z.iter_mut().for_each(|v| *v = t.truncate(*v, frac_bits));
    if let Some(b) = bias {
        add_bias(&mut z, b, 1);
    }
    z.iter().for_each(|&v| t.see(v));
    z
}

/// `weights::scale`, a BatchNorm left in the graph: per channel, `x` times the encoded scale,
/// truncated by `f`, plus the encoded shift.
pub(crate) fn scale(
    x: &[u64],
    scale: &[u64],
    shift: Option<&[u64]>,
    inner: usize,
    frac_bits: u32,
    t: &mut Tally,
) -> Vec<u64> {
    let channels = scale.len().max(1);
    let mut out = Vec::with_capacity(x.len());
    for (i, chunk) in x.chunks(inner).enumerate() {
        let c = i % channels;
        let add = shift.map_or(0, |s| s[c]);
        out.extend(chunk.iter().map(|&v| {
            let y = t
                .truncate(v.wrapping_mul(scale[c]), frac_bits)
                .wrapping_add(add);
            t.see(y);
            y
        }));
    }
    out
}

/// What a padded position of a window holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Padding {
    /// Nothing: left out (a sum adds zero for it).
    Skip,
    /// The nearest element of the input, as `pool::windows` gathers it for max pooling.
    Nearest,
}

/// Calls `each` with every window of pooling planes of `h x w` (row-major, `(ky, kx)` order,
/// as `pool::windows`), gathered into `buf`, its padded positions as `padding` says.
fn for_each_window(
    x: &[u64],
    (h, w): (usize, usize),
    p: Window,
    padding: Padding,
    mut each: impl FnMut(&mut Vec<u64>),
) {
    // The architecture has checked the window against the input.
    let (oh, ow) = p.output(h, w).unwrap_or((0, 0));
    let mut buf = Vec::with_capacity(p.kernel_h * p.kernel_w);
    for plane in x.chunks(h * w) {
        for y in 0..oh {
            for xx in 0..ow {
                buf.clear();
                for ky in 0..p.kernel_h {
                    for kx in 0..p.kernel_w {
                        let at =
                            match padding {
                                Padding::Nearest => Some((
                                    nearest(y * p.stride, ky, p.pad, h),
                                    nearest(xx * p.stride, kx, p.pad, w),
                                )),
                                Padding::Skip => unpadded(y * p.stride, ky, p.pad, h)
                                    .zip(unpadded(xx * p.stride, kx, p.pad, w)),
                            };
                        if let Some((iy, ix)) = at {
                            buf.push(plane[iy * w + ix]);
                        }
                    }
                }
                each(&mut buf);
            }
        }
    }
}

/// `pool::avg_pool`: the wrapping sum of the input elements of each window (the padding adds
/// zero), then the division of [`divider`] by the whole window's size.
pub(crate) fn avg_pool(
    x: &[u64],
    hw: (usize, usize),
    p: Window,
    frac_bits: u32,
    t: &mut Tally,
) -> Vec<u64> {
    let size = (p.kernel_h * p.kernel_w) as u64;
    let divide = divider(size, frac_bits);
    let mut out = Vec::new();
    for_each_window(x, hw, p, Padding::Skip, |win| {
        let sum = win.iter().fold(0u64, |a, &v| a.wrapping_add(v));
        out.push(divide(sum, t));
    });
    out
}

/// `pool::global_avg_pool`: [`avg_pool`] with one window per plane.
pub(crate) fn global_avg_pool(x: &[u64], plane: usize, frac_bits: u32, t: &mut Tally) -> Vec<u64> {
    let divide = divider(plane as u64, frac_bits);
    x.chunks(plane.max(1))
        .map(|c| divide(c.iter().fold(0u64, |a, &v| a.wrapping_add(v)), t))
        .collect()
}

/// Division of a window sum by `size`, as `pool::avg_pool` does it: a truncation by
/// `floor(log2 size)`, then a product with the rounded reciprocal and a truncation by `f`
/// (`pool::reciprocal`).
fn divider(size: u64, frac_bits: u32) -> impl Fn(u64, &mut Tally) -> u64 {
    let (shift, inv) = reciprocal(size, frac_bits);
    move |sum, t: &mut Tally| {
        let mut y = t.truncate(sum, shift);
        if let Some(inv) = inv {
            t.see(y);
            y = t.truncate(y.wrapping_mul(inv), frac_bits);
        }
        t.see(y);
        y
    }
}

/// `maxpool::max_pool`: the tournament `max(a, b) = b + relu(a - b)` over adjacent pairs of
/// each window, level by level (the odd one out goes up unchanged), in ring arithmetic, so
/// that it agrees with the secure result even where `a - b` wraps.
pub(crate) fn max_pool(x: &[u64], hw: (usize, usize), p: Window, t: &mut Tally) -> Vec<u64> {
    let mut out = Vec::new();
    for_each_window(x, hw, p, Padding::Nearest, |cand| {
        while cand.len() > 1 {
            let k = cand.len();
            for i in 0..k / 2 {
                let (a, b) = (cand[2 * i], cand[2 * i + 1]);
                let d = a.wrapping_sub(b);
                t.see(d);
                cand[i] = b.wrapping_add(relu(d));
            }
            if k % 2 == 1 {
                cand[k / 2] = cand[k - 1];
            }
            cand.truncate(k.div_ceil(2));
        }
        out.push(cand[0]);
    });
    out
}
