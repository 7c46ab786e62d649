//! Products with the server's weights, whose Beaver masks are opened once per connection.
//!
//! A Beaver product `X W` opens `E = X - A` and `F = W - B`. The weights do not change between
//! inferences, so `F` need not either: per connection the dealer draws a weight mask `B`
//! ([`Need::WeightMask`]) and the parties open `F = W - B` once ([`open_weights`]); every
//! inference then takes a fresh triple `(A, C = A B)` against that same `B` and opens only
//! `E`. `F` reveals nothing: `B` is uniform and known to neither party. Per inference this
//! saves `|W|` words each way on every linear layer.
//!
//! The weights enter as the sharing `(W, 0)`: the server's share is `W`, the client's zero.
//! Nothing else reads those shares, and `F` is masked by `B` either way, so a random
//! resharing would only cost another message.
//!
//! Online, party `i` sets `Z_i = C_i + E B_i + X_i F`, which sums to `A B + (X - A) B + X (W -
//! B) = X W`, then truncates by `2^f`. One round, `|X|` words each way.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::correlation::{MaskedConv, MaskedMatmul, MaskedScale, WeightMask};
use crate::dealer::Need;
use crate::error::MpcError;
use crate::kernels::{ConvGeometry, conv2d as conv_kernel, matmul as matmul_kernel};
use crate::protocols::truncation::truncate_words;
use crate::session::Session;
use crate::tensor::{RingTensor, Share};

/// A weight with its mask opened: this party's share of `B`, and the public `F = W - B`.
#[derive(Debug, Clone)]
pub struct OpenedWeight {
    /// Which of the connection's weight masks (the order [`open_weights`] drew them in).
    pub mask: usize,
    /// The weight's shape.
    pub shape: Vec<usize>,
    b: Vec<u64>,
    /// Every weight's `F` in one buffer, as the opening made it (no copy per weight), and
    /// where this one's starts.
    all_f: Arc<Vec<u64>>,
    start: usize,
    len: usize,
}

impl PartialEq for OpenedWeight {
    fn eq(&self, other: &Self) -> bool {
        (self.mask, &self.shape, &self.b, self.f())
            == (other.mask, &other.shape, &other.b, other.f())
    }
}

impl Eq for OpenedWeight {}

/// This party's share of `B` is a share of the mask that hides the weights: wiped when dropped.
impl Drop for OpenedWeight {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.b);
    }
}

impl OpenedWeight {
    /// Elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The opened `W - B`.
    pub(crate) fn f(&self) -> &[u64] {
        &self.all_f[self.start..self.start + self.len]
    }
}

/// What [`open_weights`] asks the dealer for.
pub fn open_weights_needs(lens: &[usize]) -> Vec<Need> {
    lens.iter().map(|&n| Need::WeightMask { n }).collect()
}

/// The server's side of the setup: opens `W - B` for every weight (ring words at `f` bits,
/// each as long as its shape says), in one round. Mask numbers continue from `first_mask` (0 on
/// a fresh connection). Each party sends the total weight count in words.
pub fn open_weights(
    s: &mut Session,
    shapes: &[Vec<usize>],
    weights: &[&[u64]],
    first_mask: usize,
) -> Result<Vec<OpenedWeight>, MpcError> {
    if !s.party().is_server() {
        return Err(MpcError::invalid(
            "open_weights",
            "the client holds no weights: it calls open_peer_weights",
        ));
    }
    check_weights("open_weights", shapes, weights)?;
    open(s, shapes, Some(weights), first_mask)
}

/// The client's side of the setup: its share of the opened `W - B` for every weight of the
/// server's, whose shapes are public.
pub fn open_peer_weights(
    s: &mut Session,
    shapes: &[Vec<usize>],
    first_mask: usize,
) -> Result<Vec<OpenedWeight>, MpcError> {
    if s.party().is_server() {
        return Err(MpcError::invalid(
            "open_peer_weights",
            "the server opens its own weights with open_weights",
        ));
    }
    open(s, shapes, None, first_mask)
}

/// Errors unless there is a weight per shape, each as long as its shape says.
fn check_weights(
    op: &'static str,
    shapes: &[Vec<usize>],
    weights: &[&[u64]],
) -> Result<(), MpcError> {
    if weights.len() != shapes.len() {
        return Err(MpcError::invalid(
            op,
            format!("{} weights for {} shapes", weights.len(), shapes.len()),
        ));
    }
    for (i, (w, shape)) in weights.iter().zip(shapes).enumerate() {
        let n: usize = shape.iter().product();
        if w.len() != n {
            return Err(MpcError::invalid(
                op,
                format!(
                    "weight {i} has {} elements, its shape {shape:?} says {n}",
                    w.len()
                ),
            ));
        }
    }
    Ok(())
}

/// Both sides of the opening: the server sends `W - b0`, the client `-b1`.
///
/// Each mask is taken from the dealer as its part of the message is made (not all drawn
/// first), and `F` is formed in place in the
/// message this party sent: for a large network (ResNet-50's 25.6 M weights, 204 MB a copy)
/// the setup would otherwise hold each party's masks, message, the peer's message and `F`
/// at once.
fn open(
    s: &mut Session,
    shapes: &[Vec<usize>],
    weights: Option<&[&[u64]]>,
    first_mask: usize,
) -> Result<Vec<OpenedWeight>, MpcError> {
    let lens: Vec<usize> = shapes.iter().map(|sh| sh.iter().product()).collect();
    let mut masks = Vec::with_capacity(lens.len());
    let mut send = Vec::with_capacity(lens.iter().sum());
    for (i, &n) in lens.iter().enumerate() {
        let b = Zeroizing::new(s.correlation::<WeightMask>(n)?.into_b());
        match weights {
            Some(w) => send.extend(w[i].iter().zip(b.iter()).map(|(w, b)| w.wrapping_sub(*b))),
            None => send.extend(b.iter().map(|b| b.wrapping_neg())),
        }
        masks.push(b);
    }
    let peer = s.exchange(&send, send.len())?;
    for (f, p) in send.iter_mut().zip(&peer) {
        *f = f.wrapping_add(*p);
    }
    drop(peer);
    let all_f = Arc::new(send);
    let mut start = 0;
    let mut out = Vec::with_capacity(lens.len());
    for (i, mut b) in masks.into_iter().enumerate() {
        out.push(OpenedWeight {
            mask: first_mask + i,
            shape: shapes[i].clone(),
            b: std::mem::take(&mut *b),
            all_f: Arc::clone(&all_f),
            start,
            len: lens[i],
        });
        start += lens[i];
    }
    Ok(out)
}

/// The server's side of the one-way setup of the preprocessed protocol
/// ([`crate::protocols::preprocessed`]): sends `W - b0` for every weight, in one round, and
/// keeps nothing. The client, which alone needs `F = W - B`, subtracts its own share `b1`
/// ([`receive_weights`]); the server computes on `W` itself. Half the setup's traffic of
/// [`open_weights`], and no per-connection copy of the weights or their masks on the server.
pub fn send_weights(
    s: &mut Session,
    shapes: &[Vec<usize>],
    weights: &[&[u64]],
) -> Result<(), MpcError> {
    if !s.party().is_server() {
        return Err(MpcError::invalid(
            "send_weights",
            "the client holds no weights: it calls receive_weights",
        ));
    }
    check_weights("send_weights", shapes, weights)?;
    let total = shapes.iter().map(|sh| sh.iter().product::<usize>()).sum();
    let mut send = Vec::with_capacity(total);
    for (w, shape) in weights.iter().zip(shapes) {
        let n: usize = shape.iter().product();
        let b = Zeroizing::new(s.correlation::<WeightMask>(n)?.into_b());
        send.extend(w.iter().zip(b.iter()).map(|(w, b)| w.wrapping_sub(*b)));
    }
    s.exchange(&send, 0)?;
    Ok(())
}

/// The client's side of [`send_weights`]: `F = (W - b0) - b1` for every weight of the
/// server's, whose shapes are public. The client keeps `F` only (its share `b1` serves nothing
/// else under the preprocessed protocol); one round, nothing sent.
pub fn receive_weights(
    s: &mut Session,
    shapes: &[Vec<usize>],
) -> Result<Vec<OpenedWeight>, MpcError> {
    if s.party().is_server() {
        return Err(MpcError::invalid(
            "receive_weights",
            "the server sends its own weights with send_weights",
        ));
    }
    let lens: Vec<usize> = shapes.iter().map(|sh| sh.iter().product()).collect();
    let mut received = s.exchange(&[], lens.iter().sum())?;
    // Each weight's mask drawn as its words are taken, and `F` formed in place in the
    // message: never all masks, nor a second copy of the weights, at once.
    let mut start = 0;
    for &n in &lens {
        let b = Zeroizing::new(s.correlation::<WeightMask>(n)?.into_b());
        for (f, b) in received[start..start + n].iter_mut().zip(b.iter()) {
            *f = f.wrapping_sub(*b);
        }
        start += n;
    }
    let all_f = Arc::new(received);
    let mut start = 0;
    let mut out = Vec::with_capacity(lens.len());
    for (i, &n) in lens.iter().enumerate() {
        out.push(OpenedWeight {
            mask: i,
            shape: shapes[i].clone(),
            b: Vec::new(),
            all_f: Arc::clone(&all_f),
            start,
            len: n,
        });
        start += n;
    }
    Ok(out)
}

/// Opens `x - a` (one round) and returns `E`.
fn open_masked(s: &mut Session, x: &[u64], a: &[u64]) -> Result<Vec<u64>, MpcError> {
    let mut e: Vec<u64> = x.iter().zip(a).map(|(x, a)| x.wrapping_sub(*a)).collect();
    let peer = s.exchange(&e, e.len())?;
    for (v, p) in e.iter_mut().zip(&peer) {
        *v = v.wrapping_add(*p);
    }
    Ok(e)
}

/// `c + p + q`, truncated by `2^f`.
fn finish(s: &Session, mut c: Vec<u64>, p: &[u64], q: &[u64]) -> Vec<u64> {
    for ((c, p), q) in c.iter_mut().zip(p).zip(q) {
        *c = c.wrapping_add(*p).wrapping_add(*q);
    }
    truncate_words(s.party(), &mut c, s.fixed().frac_bits());
    c
}

fn check_weight(op: &'static str, w: &OpenedWeight, want: &[usize]) -> Result<(), MpcError> {
    if w.shape != want {
        return Err(MpcError::Shape {
            op,
            left: want.to_vec(),
            right: w.shape.clone(),
        });
    }
    Ok(())
}

/// What [`conv2d`] asks the dealer for.
pub fn conv2d_needs(g: ConvGeometry, mask: usize) -> Vec<Need> {
    vec![Need::MaskedConv2d { geometry: g, mask }]
}

/// The convolution of shared `x` (NCHW, `g.input_shape()`) by the opened OIHW weight `w`, at
/// fixed-point scale, without bias. One round, `|x|` words each way.
pub fn conv2d(
    s: &mut Session,
    x: &Share,
    w: &OpenedWeight,
    g: ConvGeometry,
) -> Result<Share, MpcError> {
    if x.shape() != g.input_shape() {
        return Err(MpcError::Shape {
            op: "conv2d",
            left: g.input_shape(),
            right: x.shape().to_vec(),
        });
    }
    check_weight("conv2d", w, &g.weight_shape())?;
    let t: MaskedConv = s.correlation((g, w.mask))?;
    let (a, c) = (t.x(), t.y());
    let e = open_masked(s, x.data(), a)?;
    let eb = conv_kernel(&g, &e, &w.b);
    let xf = conv_kernel(&g, x.data(), w.f());
    let z = finish(s, c.to_vec(), &eb, &xf);
    Ok(Share::new(RingTensor::new(g.output_shape(), z)?))
}

/// What [`matmul`] asks the dealer for.
pub fn matmul_needs(m: usize, k: usize, n: usize, mask: usize) -> Vec<Need> {
    vec![Need::MaskedMatmul { m, k, n, mask }]
}

/// `x w` for shared `x` (`m x k`) and the opened weight `w` (`k x n`), at fixed-point
/// scale. One round, `m k` words each way.
pub fn matmul(s: &mut Session, x: &Share, w: &OpenedWeight) -> Result<Share, MpcError> {
    let (&[m, k], &[k2, n]) = (x.shape(), w.shape.as_slice()) else {
        return Err(MpcError::invalid(
            "matmul",
            format!(
                "expected two matrices, got {:?} and {:?}",
                x.shape(),
                w.shape
            ),
        ));
    };
    if k != k2 {
        return Err(MpcError::Shape {
            op: "matmul",
            left: x.shape().to_vec(),
            right: w.shape.clone(),
        });
    }
    let t: MaskedMatmul = s.correlation((m, k, n, w.mask))?;
    let (a, c) = (t.a(), t.c());
    let e = open_masked(s, x.data(), a)?;
    let eb = matmul_kernel(m, k, n, &e, &w.b);
    let xf = matmul_kernel(m, k, n, x.data(), w.f());
    let z = finish(s, c.to_vec(), &eb, &xf);
    Ok(Share::new(RingTensor::new(vec![m, n], z)?))
}

/// What [`scale`] asks the dealer for.
pub fn scale_needs(n: usize, channels: usize, inner: usize, mask: usize) -> Vec<Need> {
    vec![Need::MaskedScale {
        n,
        channels,
        inner,
        mask,
    }]
}

/// Multiplies each channel of shared `x` (`[N, C, ...]`) by the opened per-channel weight
/// `w` (`[C]`), at fixed-point scale: a BatchNorm that could not be folded. One round, `|x|`
/// words each way.
pub fn scale(s: &mut Session, x: &Share, w: &OpenedWeight) -> Result<Share, MpcError> {
    let channels = w.len();
    if x.shape().len() < 2 || x.shape()[1] != channels {
        return Err(MpcError::Shape {
            op: "scale",
            left: x.shape().to_vec(),
            right: w.shape.clone(),
        });
    }
    let inner: usize = x.shape()[2..].iter().product();
    let n = x.len();
    let t: MaskedScale = s.correlation((n, channels, inner, w.mask))?;
    let (a, c) = (t.a(), t.c());
    let e = open_masked(s, x.data(), a)?;
    let channel = |i: usize| (i / inner.max(1)) % channels.max(1);
    let eb: Vec<u64> = e
        .iter()
        .enumerate()
        .map(|(i, v)| v.wrapping_mul(w.b[channel(i)]))
        .collect();
    let xf: Vec<u64> = x
        .data()
        .iter()
        .enumerate()
        .map(|(i, v)| v.wrapping_mul(w.f()[channel(i)]))
        .collect();
    let z = finish(s, c.to_vec(), &eb, &xf);
    Ok(Share::new(RingTensor::new(x.shape().to_vec(), z)?))
}

/// Adds the server's per-channel `bias` (ring words at `f` bits, public to the server only)
/// along axis 1 of its share `y`: the server's step alone, local. The client's share stays
/// as it is.
pub fn add_bias(s: &Session, y: Share, bias: &[u64]) -> Result<Share, MpcError> {
    if !s.party().is_server() {
        return Err(MpcError::invalid("bias", "only the server holds a bias"));
    }
    let shape = y.shape().to_vec();
    let channels = shape.get(1).copied().unwrap_or(0);
    if bias.len() != channels {
        return Err(MpcError::Shape {
            op: "bias",
            left: shape,
            right: vec![bias.len()],
        });
    }
    let inner: usize = shape[2..].iter().product::<usize>().max(1);
    let mut t = y.into_tensor();
    // A run of `inner` words per channel, channels in turn: no division per word.
    for (run, words) in t.data_mut().chunks_mut(inner).enumerate() {
        let b = bias[run % channels];
        for v in words {
            *v = v.wrapping_add(b);
        }
    }
    Ok(Share::new(t))
}
