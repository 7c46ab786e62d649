//! Matrix products, fully connected layers and convolutions of two shared operands.
//!
//! One Beaver round each, with a matrix (or convolution) triple `C = A B`: open `E = X - A`
//! and `F = W - B`, then party `i` sets `Z_i = C_i + E B_i + X_i F`, which sums to `X W`
//! (two local products per party instead of the textbook three), and truncates by `2^f`.

use crate::correlation::{Conv, Matmul};
use crate::dealer::Need;
use crate::error::MpcError;
use crate::kernels::{ConvGeometry, conv2d as conv_kernel, matmul as matmul_kernel};
use crate::protocols::truncation::truncate_words;
use crate::session::Session;
use crate::tensor::{RingTensor, Share};

/// What [`matmul`] asks the dealer for.
pub fn matmul_needs(m: usize, k: usize, n: usize) -> Vec<Need> {
    vec![Need::Matmul { m, k, n }]
}

/// What [`conv2d`] asks the dealer for.
pub fn conv2d_needs(g: ConvGeometry) -> Vec<Need> {
    vec![Need::Conv2d(g)]
}

fn dims2(op: &'static str, t: &Share) -> Result<(usize, usize), MpcError> {
    match *t.shape() {
        [r, c] => Ok((r, c)),
        ref other => Err(MpcError::invalid(
            op,
            format!("expected a matrix, got shape {other:?}"),
        )),
    }
}

/// Opens `x - a` and `w - b` in one round and returns `(E, F)`.
fn open_masked(
    s: &mut Session,
    x: &[u64],
    a: &[u64],
    w: &[u64],
    b: &[u64],
) -> Result<(Vec<u64>, Vec<u64>), MpcError> {
    let mut send = Vec::with_capacity(x.len() + w.len());
    send.extend(x.iter().zip(a).map(|(x, a)| x.wrapping_sub(*a)));
    send.extend(w.iter().zip(b).map(|(w, b)| w.wrapping_sub(*b)));
    let peer = s.exchange(&send, send.len())?;
    for (v, p) in send.iter_mut().zip(&peer) {
        *v = v.wrapping_add(*p);
    }
    let f = send.split_off(x.len());
    Ok((send, f))
}

fn sum3(mut c: Vec<u64>, p: &[u64], q: &[u64]) -> Vec<u64> {
    for ((c, p), q) in c.iter_mut().zip(p).zip(q) {
        *c = c.wrapping_add(*p).wrapping_add(*q);
    }
    c
}

/// `x w` for shared `x` (`m x k`) and `w` (`k x n`), at fixed-point scale. One round; each
/// party sends `m k + k n` words.
pub fn matmul(s: &mut Session, x: &Share, w: &Share) -> Result<Share, MpcError> {
    let (m, k) = dims2("matmul", x)?;
    let (k2, n) = dims2("matmul", w)?;
    if k != k2 {
        return Err(MpcError::Shape {
            op: "matmul",
            left: x.shape().to_vec(),
            right: w.shape().to_vec(),
        });
    }
    let t: Matmul = s.correlation((m, k, n))?;
    let (a, b, c) = (t.a(), t.b(), t.c());
    let (e, f) = open_masked(s, x.data(), a, w.data(), b)?;
    let eb = matmul_kernel(m, k, n, &e, b);
    let xf = matmul_kernel(m, k, n, x.data(), &f);
    let mut z = sum3(c.to_vec(), &eb, &xf);
    truncate_words(s.party(), &mut z, s.fixed().frac_bits());
    Ok(Share::new(RingTensor::new(vec![m, n], z)?))
}

/// A fully connected layer `x w^T + bias` with PyTorch's layout: `x` is `batch x in`, `w` is
/// `out x in`, `bias` has `out` elements. One round, as [`matmul`] of `x` and `w^T`.
pub fn linear(
    s: &mut Session,
    x: &Share,
    w: &Share,
    bias: Option<&Share>,
) -> Result<Share, MpcError> {
    let (out, inp) = dims2("linear", w)?;
    let mut wt = vec![0u64; out * inp];
    for o in 0..out {
        for i in 0..inp {
            wt[i * out + o] = w.data()[o * inp + i];
        }
    }
    let wt = Share::new(RingTensor::new(vec![inp, out], wt)?);
    let y = matmul(s, x, &wt)?;
    match bias {
        None => Ok(y),
        Some(b) => add_bias(y, b, 1),
    }
}

/// Adds a per-channel `bias` along axis `axis` of `y` (local).
fn add_bias(y: Share, bias: &Share, axis: usize) -> Result<Share, MpcError> {
    let shape = y.shape().to_vec();
    let channels = shape.get(axis).copied().unwrap_or(0);
    if bias.len() != channels {
        return Err(MpcError::Shape {
            op: "bias",
            left: shape,
            right: bias.shape().to_vec(),
        });
    }
    let inner: usize = shape[axis + 1..].iter().product();
    let mut t = y.into_tensor();
    for (idx, v) in t.data_mut().iter_mut().enumerate() {
        *v = v.wrapping_add(bias.data()[(idx / inner) % channels]);
    }
    Ok(Share::new(t))
}

/// A 2-d convolution of shared `x` (NCHW) and shared `w` (OIHW), plus an optional bias of
/// `O` elements, at fixed-point scale. One round; each party sends `|x| + |w|` words.
pub fn conv2d(
    s: &mut Session,
    x: &Share,
    w: &Share,
    bias: Option<&Share>,
    stride: usize,
    padding: usize,
) -> Result<Share, MpcError> {
    let (&[batch, in_channels, height, width], &[out_channels, wc, kernel_h, kernel_w]) =
        (x.shape(), w.shape())
    else {
        return Err(MpcError::invalid(
            "conv2d",
            format!(
                "expected an NCHW input and an OIHW weight, got {:?} and {:?}",
                x.shape(),
                w.shape()
            ),
        ));
    };
    if wc != in_channels {
        return Err(MpcError::Shape {
            op: "conv2d",
            left: x.shape().to_vec(),
            right: w.shape().to_vec(),
        });
    }
    let g = ConvGeometry::new(
        [batch, in_channels, height, width],
        [out_channels, kernel_h, kernel_w],
        stride,
        padding,
    )?;
    let t: Conv = s.correlation(g)?;
    let (a, b, c) = (t.x(), t.w(), t.y());
    let (e, f) = open_masked(s, x.data(), a, w.data(), b)?;
    let eb = conv_kernel(&g, &e, b);
    let xf = conv_kernel(&g, x.data(), &f);
    let mut z = sum3(c.to_vec(), &eb, &xf);
    truncate_words(s.party(), &mut z, s.fixed().frac_bits());
    let y = Share::new(RingTensor::new(g.output_shape(), z)?);
    match bias {
        None => Ok(y),
        Some(b) => add_bias(y, b, 1),
    }
}
