//! Products with the server's weights, against one weight mask per model.
//!
//! A Beaver product `X W` opens `E = X - A` and `F = W - B`. The weights do not change between
//! inferences, so `F` need not either: the server's model has one mask `B` per weight
//! ([`WeightMasks`], which says why one set per model, shared by every connection, is safe),
//! and the server sends `F = W - B` once per connection ([`send_weights`]); the client keeps
//! it ([`receive_weights`]), and may keep it across connections. Every inference then takes a
//! fresh triple `(A, C = A B)` against that same `B` and opens only `E`. The server's share of
//! `B` is `B` itself, the client's zero: the server knows `W` already, so `B` tells it nothing.
//!
//! The weights enter as the sharing `(W, 0)`: the server's share is `W`, the client's zero.
//!
//! Online, the server sets `Z_0 = C_0 + E B + X_0 F` and the client `Z_1 = C_1 + X_1 F`, which
//! sum to `A B + (X - A) B + X (W - B) = X W`, then each truncates by `2^f`. One round, `|X|`
//! words each way.

use std::sync::{Arc, OnceLock};

use zeroize::Zeroizing;

use crate::correlation::{MaskedConv, MaskedMatmul, MaskedScale};
use crate::dealer::remote::{hex, unhex};
use crate::dealer::{Need, WeightMasks};
use crate::error::MpcError;
use crate::kernels::{ConvGeometry, conv2d as conv_kernel, matmul as matmul_kernel};
use crate::protocols::truncation::truncate_words;
use crate::session::Session;
use crate::tensor::{RingTensor, Share};

/// A weight with its mask opened: the public `F = W - B` and, on the server, `B`.
#[derive(Debug, Clone)]
pub struct OpenedWeight {
    /// Which of the model's weight masks (the order of its weights).
    pub mask: usize,
    /// The weight's shape.
    pub shape: Vec<usize>,
    /// Every weight's `F` in one buffer, as it arrived or was formed (no copy per weight),
    /// and where this one's starts.
    all_f: Arc<Vec<u64>>,
    /// Every weight's `B`, likewise: the server's alone.
    all_b: Option<Arc<Zeroizing<Vec<u64>>>>,
    start: usize,
    len: usize,
}

impl PartialEq for OpenedWeight {
    fn eq(&self, other: &Self) -> bool {
        (self.mask, &self.shape, self.b(), self.f())
            == (other.mask, &other.shape, other.b(), other.f())
    }
}

impl Eq for OpenedWeight {}

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

    /// This party's share of `B`: the server's is `B`, the client's zero (`None`).
    fn b(&self) -> Option<&[u64]> {
        self.all_b
            .as_ref()
            .map(|b| &b[self.start..self.start + self.len])
    }
}

/// The per-connection opened weights of the words in `all_f` (and `all_b`), cut by `shapes`.
fn cut(
    shapes: &[Vec<usize>],
    all_f: &Arc<Vec<u64>>,
    all_b: Option<&Arc<Zeroizing<Vec<u64>>>>,
) -> Vec<OpenedWeight> {
    let mut start = 0;
    shapes
        .iter()
        .enumerate()
        .map(|(i, shape)| {
            let len = shape.iter().product();
            let w = OpenedWeight {
                mask: i,
                shape: shape.clone(),
                all_f: Arc::clone(all_f),
                all_b: all_b.cloned(),
                start,
                len,
            };
            start += len;
            w
        })
        .collect()
}

/// The SHA-256 of a model's `F = W - B` (its words little-endian): the name under which the
/// server announces `F` and a client keeps it across connections. 64 hex digits as text.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WeightsDigest([u8; 32]);

impl WeightsDigest {
    /// The digest of `f`.
    pub fn of(f: &[u64]) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        le_bytes(f, |bytes| h.update(bytes));
        WeightsDigest(h.finalize().into())
    }
}

/// Hands `words`' little-endian bytes to `each`, in order: the words' own memory on a
/// little-endian machine, chunks converted one at a time elsewhere.
fn le_bytes(words: &[u64], mut each: impl FnMut(&[u8])) {
    if cfg!(target_endian = "little") {
        each(bytemuck::cast_slice(words));
        return;
    }
    for chunk in words.chunks(1 << 13) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|w| w.to_le_bytes()).collect();
        each(&bytes);
    }
}

impl std::fmt::Display for WeightsDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl std::fmt::Debug for WeightsDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WeightsDigest({self})")
    }
}

impl std::str::FromStr for WeightsDigest {
    type Err = MpcError;

    fn from_str(s: &str) -> Result<Self, MpcError> {
        unhex(s).map(WeightsDigest).ok_or_else(|| {
            MpcError::invalid("WeightsDigest", format!("{s:?} is not 64 hex digits"))
        })
    }
}

impl serde::Serialize for WeightsDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for WeightsDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A model's `F = W - B` as a client keeps it across connections, under the digest the server
/// announced it by: a later connection to the same model skips the setup
/// ([`opened_from`]). `F` tells the client nothing about `W`, so keeping it (on disk, say)
/// gives nobody more than the setup gave the client.
#[derive(Clone, PartialEq, Eq)]
pub struct KeptWeights {
    digest: WeightsDigest,
    f: Arc<Vec<u64>>,
}

impl std::fmt::Debug for KeptWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptWeights")
            .field("digest", &self.digest)
            .field("words", &self.f.len())
            .finish()
    }
}

impl KeptWeights {
    /// `f` under the digest `digest` the server announced it by (not checked: a server that
    /// lies about it only garbles its client's later results).
    pub fn announced(digest: WeightsDigest, f: Arc<Vec<u64>>) -> Self {
        KeptWeights { digest, f }
    }

    /// `f` under its own digest: what a client reads back from storage.
    pub fn verified(f: Vec<u64>) -> Self {
        KeptWeights {
            digest: WeightsDigest::of(&f),
            f: Arc::new(f),
        }
    }

    /// The digest.
    pub fn digest(&self) -> WeightsDigest {
        self.digest
    }

    /// The words of `F`, in the order of the weights.
    pub fn words(&self) -> &Arc<Vec<u64>> {
        &self.f
    }

    /// Writes the words of `F`, little-endian: what [`KeptWeights::read`] reads back.
    pub fn write(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut written = Ok(());
        le_bytes(&self.f, |bytes| {
            if written.is_ok() {
                written = w.write_all(bytes);
            }
        });
        written
    }

    /// `words` words of `F` written by [`KeptWeights::write`], under their own digest (the
    /// caller compares it with the one it expects).
    pub fn read(r: &mut impl std::io::Read, words: usize) -> std::io::Result<Self> {
        let mut f = vec![0u64; words];
        r.read_exact(bytemuck::cast_slice_mut(&mut f))?;
        for w in &mut f {
            *w = u64::from_le(*w);
        }
        Ok(KeptWeights::verified(f))
    }
}

/// A server's model's weights under their masks: `F = W - B`, formed once and sent to every
/// client, and the masks, which the server tells each session's dealer.
pub struct MaskedWeights {
    masks: Arc<WeightMasks>,
    shapes: Vec<Vec<usize>>,
    f: Arc<Vec<u64>>,
    digest: WeightsDigest,
    /// `B`, formed the first time a Beaver product needs it (the preprocessed protocol never
    /// does: the server computes on `W` itself).
    b: OnceLock<Arc<Zeroizing<Vec<u64>>>>,
}

impl std::fmt::Debug for MaskedWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskedWeights")
            .field("shapes", &self.shapes)
            .finish_non_exhaustive()
    }
}

impl MaskedWeights {
    /// `weights` (ring words at `f` bits, each as long as its shape says) under `masks`,
    /// which must have one mask per weight, as long.
    pub fn new(
        shapes: &[Vec<usize>],
        weights: &[&[u64]],
        masks: WeightMasks,
    ) -> Result<Self, MpcError> {
        check_weights("MaskedWeights::new", shapes, weights)?;
        let lens: Vec<usize> = shapes.iter().map(|sh| sh.iter().product()).collect();
        if masks.lens() != lens.as_slice() {
            return Err(MpcError::invalid(
                "MaskedWeights::new",
                format!(
                    "masks of lengths {:?} for weights of {lens:?}",
                    masks.lens()
                ),
            ));
        }
        let mut f = Vec::with_capacity(lens.iter().sum());
        for (i, w) in weights.iter().enumerate() {
            let b = masks.expand(i);
            f.extend(w.iter().zip(b.iter()).map(|(w, b)| w.wrapping_sub(*b)));
        }
        Ok(MaskedWeights {
            masks: Arc::new(masks),
            shapes: shapes.to_vec(),
            digest: WeightsDigest::of(&f),
            f: Arc::new(f),
            b: OnceLock::new(),
        })
    }

    /// The weights' shapes.
    pub fn shapes(&self) -> &[Vec<usize>] {
        &self.shapes
    }

    /// The masks, which the server tells every session's dealer.
    pub fn masks(&self) -> &Arc<WeightMasks> {
        &self.masks
    }

    /// Every weight's `F = W - B`, in order.
    pub fn f(&self) -> &[u64] {
        &self.f
    }

    /// The digest of `F`, which the server announces to its clients.
    pub fn digest(&self) -> WeightsDigest {
        self.digest
    }

    /// The server's opened weights for the Beaver protocol: `F` and its share `B` of each.
    pub fn opened(&self) -> Vec<OpenedWeight> {
        let b = self.b.get_or_init(|| {
            let mut all = Zeroizing::new(Vec::with_capacity(self.f.len()));
            for i in 0..self.masks.count() {
                all.extend_from_slice(&self.masks.expand(i));
            }
            Arc::new(all)
        });
        cut(&self.shapes, &self.f, Some(b))
    }
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

/// The server's side of the setup, under either linear-layer protocol: tells its dealer the
/// model's weight masks and sends `F = W - B` for every weight, in one round, one way. It
/// keeps nothing per connection.
pub fn send_weights(s: &mut Session, weights: &MaskedWeights) -> Result<(), MpcError> {
    if !s.party().is_server() {
        return Err(MpcError::invalid(
            "send_weights",
            "the client holds no weights: it calls receive_weights",
        ));
    }
    s.weight_masks(weights.masks())?;
    s.exchange(weights.f(), 0)?;
    Ok(())
}

/// The client's side of [`send_weights`]: `F` for every weight of the server's, whose shapes
/// are public. One round, nothing sent.
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
    let total = shapes.iter().map(|sh| sh.iter().product::<usize>()).sum();
    let f = Arc::new(s.exchange(&[], total)?);
    Ok(cut(shapes, &f, None))
}

/// A client's opened weights from an `F` it kept (from an earlier connection to the same
/// model), cut by the server's weight shapes; `None` unless `F` has their total length.
pub fn opened_from(shapes: &[Vec<usize>], f: &Arc<Vec<u64>>) -> Option<Vec<OpenedWeight>> {
    let total: usize = shapes.iter().map(|sh| sh.iter().product::<usize>()).sum();
    (f.len() == total).then(|| cut(shapes, f, None))
}

/// The `F` a client's opened weights were cut from (empty for a model without weights).
pub fn all_f(opened: &[OpenedWeight]) -> Arc<Vec<u64>> {
    opened
        .first()
        .map_or_else(|| Arc::new(Vec::new()), |w| Arc::clone(&w.all_f))
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

/// `z += p` elementwise.
fn add_into(z: &mut [u64], p: &[u64]) {
    for (z, p) in z.iter_mut().zip(p) {
        *z = z.wrapping_add(*p);
    }
}

/// `c + p`, truncated by `2^f`.
fn finish(s: &Session, mut c: Vec<u64>, p: &[u64]) -> Vec<u64> {
    add_into(&mut c, p);
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
    let mut z = conv_kernel(&g, x.data(), w.f());
    if let Some(b) = w.b() {
        add_into(&mut z, &conv_kernel(&g, &e, b));
    }
    let z = finish(s, c.to_vec(), &z);
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
    let mut z = matmul_kernel(m, k, n, x.data(), w.f());
    if let Some(b) = w.b() {
        add_into(&mut z, &matmul_kernel(m, k, n, &e, b));
    }
    let z = finish(s, c.to_vec(), &z);
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
    let mut z: Vec<u64> = x
        .data()
        .iter()
        .enumerate()
        .map(|(i, v)| v.wrapping_mul(w.f()[channel(i)]))
        .collect();
    if let Some(b) = w.b() {
        for (i, (z, e)) in z.iter_mut().zip(&e).enumerate() {
            *z = z.wrapping_add(e.wrapping_mul(b[channel(i)]));
        }
    }
    let z = finish(s, c.to_vec(), &z);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_weights_round_trip_little_endian_under_their_digest() {
        let f: Vec<u64> = (0..1000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let kept = KeptWeights::verified(f.clone());
        let mut bytes = Vec::new();
        kept.write(&mut bytes).unwrap();
        assert_eq!(&bytes[..8], &f[0].to_le_bytes());
        assert_eq!(bytes.len(), 8 * f.len());
        let back = KeptWeights::read(&mut bytes.as_slice(), f.len()).unwrap();
        assert_eq!(back, kept);
        assert!(KeptWeights::read(&mut &bytes[1..], f.len()).is_err());
        let digest = kept.digest();
        assert_eq!(digest.to_string().parse::<WeightsDigest>().unwrap(), digest);
        assert!("00".parse::<WeightsDigest>().is_err());
        let mut other = f;
        other[999] ^= 1;
        assert_ne!(WeightsDigest::of(&other), digest);
    }
}
