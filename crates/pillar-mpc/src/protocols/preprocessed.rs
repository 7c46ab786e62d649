//! Preprocessed linear layers: Delphi's split of the online phase, in the dealer setting.
//!
//! In the [`Beaver`](LinearProtocol::Beaver) protocol every linear layer opens `X - A` both
//! ways and every activation opens its masked input both ways. Here the client's share of
//! each linear layer's input is made a mask `M` that the dealer drew for it before the input
//! existed, so everything the client holds until the next activation is known offline:
//!
//! - **Linear layer** `Y = W X` (a convolution, a matrix product or a per-channel scale). The
//!   client posts `P = X_1 + M` (its share of the input plus the mask); the server forms
//!   `V = X_0 + P = X + M`, a masked plaintext, and computes `W V` with one wrapping product
//!   of its own weights. The dealer gives the shares `C_0 + C_1 = B M` of the mask's product
//!   with the model's weight mask `B` (the client holds the opened `F = W - B`). Then
//!   `Y_0 = W V - C_0` and `Y_1 = -F M - C_1` sum to `W V - (F + B) M = W X`, and each party
//!   truncates its share by `2^f` locally. `Y_1` needs no input: the client computes it, its
//!   one matrix product, offline.
//! - **Activation** by a one-opening polynomial protocol (HoneyBadger, ESPN). The client's
//!   part of the opening (HoneyBadger's `x_1 / 2^s - r_1`, ESPN's operands minus their
//!   masks) is a function of its share alone: it posts it, the server adds its own part and
//!   sends the opened values (or its masked operands) to the client, and both form their
//!   shares of the powers as the protocol always does.
//!
//! A post whose inputs are known offline travels in the offline phase; one that depends on an
//! activation's output (the input of the linear layer after it, say) travels online, right
//! after that activation. Online, per activation, the server sends the opened values and the
//! client sends the next linear layer's masked input: about half the words of the Beaver
//! protocol, in the same number of rounds, and the client's online work is elementwise. A
//! value several posts would wait on (a residual block's input) the client *re-masks* once
//! instead: it posts its share plus a fresh mask `R` of its own and takes `-R` as its share,
//! known offline. (The secure layer's flow decides which; this module has the pieces.)
//!
//! **Why every message is uniformly masked.** The server sees the client's posts: `X_1 + M`
//! with `M` uniform, drawn by the dealer for this layer and this inference from the client's
//! seed and used for nothing else; a re-masking's `Z_1 + R`, with `R` drawn from the client's
//! CSPRNG for this value and this inference; HoneyBadger's `x_1 / 2^s - r_1`, whose `r_1` is the
//! client's share of a uniform `r` that the server's own share does not determine; ESPN's
//! `v - b` with `b` the client's uniform mask of that product. The client sees the server's
//! replies: HoneyBadger's opened `y - r`, uniform because `r` is; ESPN's `u - a` with `a` the
//! server's mask; and `F = W - B` from the setup, with `B` uniform and unknown to it. The
//! dealer's `C_1 = B M - C_0` is uniform to the client because `C_0` is expanded from the
//! server's seed. No value is masked twice by the same mask: each `M`, `r` and Cross mask
//! belongs to one layer of one inference (a dealer that repeats them is caught by the
//! privacy tests, which show the server learning input differences from a repeated `M`).
//!
//! **Setup.** Only the client needs `F = W - B`: the server sends it once per connection
//! ([`send_weights`](crate::protocols::weights::send_weights)), made once per model with the
//! model's weight masks ([`WeightMasks`](crate::dealer::WeightMasks)); the server computes on
//! `W` itself and keeps nothing per connection.
//!
//! **Truncation.** Both shares of `W X` are uniform (`Y_1 = -W M + C_0` with `C_0` uniform),
//! so local truncation fails only with the usual probability `|W X| / 2^64`; the client
//! truncates its share offline.

use std::fmt;
use std::str::FromStr;

use crate::correlation::{Cross, Powers, PreConv, PreMatmul, PreScale};
use crate::dealer::Need;
use crate::error::MpcError;
use crate::kernels::{ConvGeometry, conv2d, conv2d_with, matmul};
use crate::party::Party;
use crate::protocols::activation::ActivationProtocol;
use crate::protocols::beaver::{cross_open, cross_shares};
use crate::protocols::poly::{combine, espn, honeybadger};
use crate::protocols::truncation::truncate_word;
use crate::protocols::weights::OpenedWeight;
use crate::session::Session;
use crate::tensor::{RingTensor, Share};

/// How the linear layers run: what a plan names and the command line chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LinearProtocol {
    /// Every linear layer opens its masked input both ways, online
    /// ([`weights`](crate::protocols::weights)).
    Beaver,
    /// The client's share of every linear layer's input is a mask fixed offline (this module).
    #[default]
    Preprocessed,
}

impl LinearProtocol {
    /// Both, the older first.
    pub const ALL: [LinearProtocol; 2] = [LinearProtocol::Beaver, LinearProtocol::Preprocessed];

    /// Name on the command line and in architectures.
    pub fn name(self) -> &'static str {
        match self {
            LinearProtocol::Beaver => "beaver",
            LinearProtocol::Preprocessed => "preprocessed",
        }
    }
}

impl fmt::Display for LinearProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown linear protocol name.
#[derive(Debug, thiserror::Error)]
#[error("unknown linear-layer protocol {0:?}: choose beaver or preprocessed")]
pub struct UnknownLinearProtocol(pub String);

impl FromStr for LinearProtocol {
    type Err = UnknownLinearProtocol;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LinearProtocol::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownLinearProtocol(s.to_string()))
    }
}

/// A linear layer's shape, for a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearShape {
    /// A convolution (NCHW input, OIHW weight).
    Conv(ConvGeometry),
    /// `x w` with `x` of `m x k` and the weight `k x n`.
    Matmul {
        /// Rows of the input.
        m: usize,
        /// Inner dimension.
        k: usize,
        /// Columns.
        n: usize,
    },
    /// Each of `n` elements times the weight of its channel, `(i / inner) % channels`.
    Scale {
        /// Elements.
        n: usize,
        /// Channels.
        channels: usize,
        /// Elements per channel and image.
        inner: usize,
    },
}

impl LinearShape {
    /// What the layer asks the dealer for, against weight mask `mask`.
    pub fn needs(self, mask: usize) -> Vec<Need> {
        vec![match self {
            LinearShape::Conv(geometry) => Need::PreprocessedConv2d { geometry, mask },
            LinearShape::Matmul { m, k, n } => Need::PreprocessedMatmul { m, k, n, mask },
            LinearShape::Scale { n, channels, inner } => Need::PreprocessedScale {
                n,
                channels,
                inner,
                mask,
            },
        }]
    }

    /// Elements of the input.
    pub fn input_len(self) -> usize {
        match self {
            LinearShape::Conv(g) => g.input_len(),
            LinearShape::Matmul { m, k, .. } => m * k,
            LinearShape::Scale { n, .. } => n,
        }
    }

    /// Elements of the output.
    pub fn output_len(self) -> usize {
        match self {
            LinearShape::Conv(g) => g.output_len(),
            LinearShape::Matmul { m, n, .. } => m * n,
            LinearShape::Scale { n, .. } => n,
        }
    }

    /// Elements of the weight.
    fn weight_len(self) -> usize {
        match self {
            LinearShape::Conv(g) => g.weight_len(),
            LinearShape::Matmul { k, n, .. } => k * n,
            LinearShape::Scale { channels, .. } => channels,
        }
    }

    /// The layer on ring words, without truncation.
    fn apply(self, x: &[u64], w: &[u64]) -> Vec<u64> {
        match self {
            LinearShape::Conv(g) => conv2d(&g, x, w),
            LinearShape::Matmul { m, k, n } => matmul(m, k, n, x, w),
            LinearShape::Scale {
                channels, inner, ..
            } => {
                // A run of `inner` words per channel, channels in turn: no division per word.
                let mut y = Vec::with_capacity(x.len());
                for (run, x) in x.chunks(inner.max(1)).enumerate() {
                    let w = w[run % channels.max(1)];
                    y.extend(x.iter().map(|v| v.wrapping_mul(w)));
                }
                y
            }
        }
    }
}

/// One party's correlation of one preprocessed linear layer.
#[derive(Debug)]
enum LinearHeld {
    Conv(PreConv),
    Matmul(PreMatmul),
    Scale(PreScale),
}

/// This party's correlation for one preprocessed linear layer: for the client, its input
/// mask `M` and its share `C_1` of `B M`; for the server, its share `C_0`.
#[derive(Debug)]
pub struct LinearMask {
    shape: LinearShape,
    held: LinearHeld,
}

impl LinearMask {
    /// Takes the layer's correlation from the session (the next one prefetched), against the
    /// model's weight mask `mask`.
    pub fn take(s: &mut Session, shape: LinearShape, mask: usize) -> Result<Self, MpcError> {
        let held = match shape {
            LinearShape::Conv(g) => LinearHeld::Conv(s.correlation((g, mask))?),
            LinearShape::Matmul { m, k, n } => LinearHeld::Matmul(s.correlation((m, k, n, mask))?),
            LinearShape::Scale { n, channels, inner } => {
                LinearHeld::Scale(s.correlation((n, channels, inner, mask))?)
            }
        };
        Ok(LinearMask { shape, held })
    }

    /// The layer's shape.
    pub fn shape(&self) -> LinearShape {
        self.shape
    }

    fn mask(&self) -> &[u64] {
        match &self.held {
            LinearHeld::Conv(t) => t.mask(),
            LinearHeld::Matmul(t) => t.mask(),
            LinearHeld::Scale(t) => t.mask(),
        }
    }

    fn c(&self) -> &[u64] {
        match &self.held {
            LinearHeld::Conv(t) => t.c(),
            LinearHeld::Matmul(t) => t.c(),
            LinearHeld::Scale(t) => t.c(),
        }
    }

    fn check_len(&self, op: &'static str, what: usize, want: usize) -> Result<(), MpcError> {
        if what == want {
            Ok(())
        } else {
            Err(MpcError::invalid(
                op,
                format!("{what} words where the layer {:?} takes {want}", self.shape),
            ))
        }
    }

    /// The client's post: its share `x1` of the input plus the mask, `X_1 + M`.
    pub fn post(&self, x1: &[u64]) -> Result<Vec<u64>, MpcError> {
        let mut out = Vec::with_capacity(x1.len());
        self.post_into(x1, &mut out)?;
        Ok(out)
    }

    /// [`LinearMask::post`] appended to `out` (the client's outbox), with no vector between.
    pub fn post_into(&self, x1: &[u64], out: &mut Vec<u64>) -> Result<(), MpcError> {
        self.check_len("preprocessed post", x1.len(), self.shape.input_len())?;
        out.extend(x1.iter().zip(self.mask()).map(|(x, m)| x.wrapping_add(*m)));
        Ok(())
    }

    /// The client's share of the output, truncated by `2^f`: `-F M - C_1`, from the opened
    /// weight `w` alone (offline). A convolution forms it as the product is stored.
    pub fn client_output(&self, w: &OpenedWeight, f: u32) -> Result<Vec<u64>, MpcError> {
        self.check_len("preprocessed weight", w.len(), self.shape.weight_len())?;
        let c = self.c();
        let finish =
            |y: u64, c: u64| truncate_word(Party::Client, y.wrapping_neg().wrapping_sub(c), f);
        if let LinearShape::Conv(g) = self.shape {
            return Ok(conv2d_with(
                &g,
                self.mask(),
                None,
                w.f(),
                |_, offset, words| {
                    for (y, c) in words.iter_mut().zip(&c[offset..]) {
                        *y = finish(*y, *c);
                    }
                },
            ));
        }
        let mut y = self.shape.apply(self.mask(), w.f());
        for (y, c) in y.iter_mut().zip(c) {
            *y = finish(*y, *c);
        }
        Ok(y)
    }

    /// The server's share of the output, truncated by `2^f`: `W (X_0 + P) - C_0` from its
    /// share `x0` of the input, the client's post `p` and its weight `w` (ring words).
    pub fn server_output(
        &self,
        x0: &[u64],
        p: &[u64],
        w: &[u64],
        f: u32,
    ) -> Result<Vec<u64>, MpcError> {
        self.server_output_with_bias(x0, p, w, None, f)
    }

    /// [`LinearMask::server_output`] plus the server's `bias` (a word per output channel of a
    /// convolution; only a convolution takes one here), added as the product is stored: a
    /// convolution sums `X_0 + P` as it gathers its patches and subtracts, truncates and adds
    /// the bias as it stores each finished run of words, with no pass of its own for any.
    pub fn server_output_with_bias(
        &self,
        x0: &[u64],
        p: &[u64],
        w: &[u64],
        bias: Option<&[u64]>,
        f: u32,
    ) -> Result<Vec<u64>, MpcError> {
        self.check_len("preprocessed input", x0.len(), self.shape.input_len())?;
        self.check_len("preprocessed post", p.len(), self.shape.input_len())?;
        self.check_len("preprocessed weight", w.len(), self.shape.weight_len())?;
        let c = self.c();
        let finish = |y: u64, c: u64| truncate_word(Party::Server, y.wrapping_sub(c), f);
        if let LinearShape::Conv(g) = self.shape {
            if let Some(b) = bias {
                self.check_len("preprocessed bias", b.len(), g.out_channels)?;
            }
            return Ok(conv2d_with(&g, x0, Some(p), w, |row, offset, words| {
                let b = bias.map_or(0, |b| b[row]);
                for (y, c) in words.iter_mut().zip(&c[offset..]) {
                    *y = finish(*y, *c).wrapping_add(b);
                }
            }));
        }
        if bias.is_some() {
            return Err(MpcError::invalid(
                "preprocessed bias",
                "only a convolution adds its bias as it stores",
            ));
        }
        let v: Vec<u64> = x0.iter().zip(p).map(|(a, b)| a.wrapping_add(*b)).collect();
        let mut y = self.shape.apply(&v, w);
        for (y, c) in y.iter_mut().zip(c) {
            *y = finish(*y, *c);
        }
        Ok(y)
    }
}

/// A polynomial protocol whose powers come from one opening, split into the client's post,
/// the server's reply and the client's finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpeningKind {
    /// HoneyBadger: the opened `x / 2^s - r`.
    HoneyBadger,
    /// ESPN: the cross products of the pre-scaled shares.
    Espn,
}

impl OpeningKind {
    /// The split of `protocol`, if it has one (CrypTen's square-and-multiply opens values that
    /// depend on earlier openings, and the exact ReLU is not a polynomial: both run as they
    /// do under the Beaver protocol).
    pub fn of(protocol: ActivationProtocol) -> Option<OpeningKind> {
        match protocol {
            ActivationProtocol::HoneyBadger => Some(OpeningKind::HoneyBadger),
            ActivationProtocol::Espn => Some(OpeningKind::Espn),
            ActivationProtocol::Relu | ActivationProtocol::Crypten => None,
        }
    }

    /// Words of the client's post and of the server's reply, for `n` elements of degree
    /// `degree` (the same count both ways).
    pub fn words(self, n: usize, degree: usize) -> usize {
        match self {
            OpeningKind::HoneyBadger => (honeybadger::HONEYBADGER.words_sent)(n, degree),
            OpeningKind::Espn => (espn::ESPN.words_sent)(n, degree),
        }
    }

    /// What one layer asks the dealer for: what the protocol always asks for.
    pub fn needs(self, n: usize, degree: usize) -> Vec<Need> {
        match self {
            OpeningKind::HoneyBadger => honeybadger::needs(n, degree),
            OpeningKind::Espn => espn::needs(n, degree),
        }
    }
}

#[derive(Debug)]
enum OpeningHeld {
    /// Degree below 2 (or no cross term): nothing to open.
    Nothing,
    Powers(Powers),
    Cross(Cross),
}

/// This party's correlation for one split polynomial layer of `n` elements and degree
/// `degree`.
#[derive(Debug)]
pub struct Opening {
    kind: OpeningKind,
    n: usize,
    degree: usize,
    held: OpeningHeld,
}

impl Opening {
    /// Takes the layer's correlation from the session (the next one prefetched).
    pub fn take(
        s: &mut Session,
        kind: OpeningKind,
        n: usize,
        degree: usize,
    ) -> Result<Self, MpcError> {
        let held = if kind.words(n, degree) == 0 {
            OpeningHeld::Nothing
        } else {
            match kind {
                OpeningKind::HoneyBadger => OpeningHeld::Powers(s.correlation((n, degree))?),
                OpeningKind::Espn => {
                    OpeningHeld::Cross(s.correlation(n * espn::cross_terms(degree))?)
                }
            }
        };
        Ok(Opening {
            kind,
            n,
            degree,
            held,
        })
    }

    /// Words of the client's post, and of the server's reply.
    pub fn words(&self) -> usize {
        self.kind.words(self.n, self.degree)
    }

    fn check(&self, op: &'static str, what: &str, got: usize, want: usize) -> Result<(), MpcError> {
        if got == want {
            Ok(())
        } else {
            Err(MpcError::invalid(
                op,
                format!("{got} words of {what} where the layer takes {want}"),
            ))
        }
    }

    /// Errors unless the server's share `x0` and the client's `post` have this layer's sizes.
    fn check_reply(&self, x0: &[u64], post: &[u64]) -> Result<(), MpcError> {
        self.check("polynomial reply", "input", x0.len(), self.n)?;
        self.check(
            "polynomial reply",
            "the client's post",
            post.len(),
            self.words(),
        )
    }

    /// The client's post from its share `x1` of the input: its part of the opening.
    pub fn post(&self, x1: &[u64], f: u32) -> Result<Vec<u64>, MpcError> {
        self.check("polynomial post", "input", x1.len(), self.n)?;
        Ok(match &self.held {
            OpeningHeld::Nothing => Vec::new(),
            OpeningHeld::Powers(r) => {
                honeybadger::opening_part(Party::Client, x1, r, self.degree, f)
            }
            OpeningHeld::Cross(t) => {
                let (mine, _) = espn::operands(Party::Client, x1, self.degree, f);
                cross_open(&mine, t)
            }
        })
    }

    /// The server's side from its share `x0` and the client's post: the reply to send the
    /// client, and the server's shares of `x^2..x^d` at `2^f`.
    pub fn serve(
        &self,
        x0: &[u64],
        post: &[u64],
        f: u32,
    ) -> Result<(Vec<u64>, Vec<Vec<u64>>), MpcError> {
        self.check_reply(x0, post)?;
        let party = Party::Server;
        Ok(match &self.held {
            OpeningHeld::Nothing => (Vec::new(), Vec::new()),
            OpeningHeld::Powers(r) => {
                let mut c = honeybadger::opening_part(party, x0, r, self.degree, f);
                for (c, p) in c.iter_mut().zip(post) {
                    *c = c.wrapping_add(*p);
                }
                let powers = honeybadger::powers_from_opening(party, &c, r, self.degree, f);
                (c, powers)
            }
            OpeningHeld::Cross(t) => {
                let (mine, local) = espn::operands(party, x0, self.degree, f);
                let reply = cross_open(&mine, t);
                let products = cross_shares(party, &mine, t, post);
                let powers = espn::assemble(party, local, &products, self.n, self.degree, f);
                (reply, powers)
            }
        })
    }

    /// The server's reply to the client's post, from its share `x0`: what
    /// [`Opening::serve`] returns first, without forming the powers, so that the server can
    /// send it before it computes its own output ([`Opening::server_output`]).
    pub fn reply(&self, x0: &[u64], post: &[u64], f: u32) -> Result<Vec<u64>, MpcError> {
        self.check_reply(x0, post)?;
        Ok(match &self.held {
            OpeningHeld::Nothing => Vec::new(),
            OpeningHeld::Powers(r) => {
                honeybadger::opened(Party::Server, x0, r, post, self.degree, f)
            }
            OpeningHeld::Cross(t) => {
                let (mine, _) = espn::operands(Party::Server, x0, self.degree, f);
                cross_open(&mine, t)
            }
        })
    }

    /// The server's share of the polynomial with `coefficients` (of this layer's degree),
    /// from its share `x0`, the client's post and its own [`Opening::reply`]: bit for bit
    /// [`Opening::serve`]'s powers then [`combine`], HoneyBadger's in one pass.
    pub fn server_output(
        &self,
        s: &Session,
        x0: &Share,
        post: &[u64],
        reply: &[u64],
        coefficients: &[f64],
    ) -> Result<Share, MpcError> {
        self.output(s, x0, post, reply, coefficients)
    }

    /// The client's share of the polynomial with `coefficients` (of this layer's degree),
    /// from its share `x1` and the server's reply: bit for bit [`Opening::finish`]'s powers
    /// then [`combine`], HoneyBadger's in one pass.
    pub fn client_output(
        &self,
        s: &Session,
        x1: &Share,
        reply: &[u64],
        coefficients: &[f64],
    ) -> Result<Share, MpcError> {
        self.output(s, x1, reply, reply, coefficients)
    }

    /// Either party's output: `peer` is what the other party sent (the post, or the reply),
    /// `opened` HoneyBadger's opened `c` (the reply, whoever sent it).
    fn output(
        &self,
        s: &Session,
        x: &Share,
        peer: &[u64],
        opened: &[u64],
        coefficients: &[f64],
    ) -> Result<Share, MpcError> {
        let (party, fp) = (s.party(), s.fixed());
        let f = fp.frac_bits();
        self.check("polynomial output", "input", x.len(), self.n)?;
        if coefficients.len() != self.degree + 1 {
            return Err(MpcError::invalid(
                "polynomial output",
                format!(
                    "{} coefficients for a layer of degree {}",
                    coefficients.len(),
                    self.degree
                ),
            ));
        }
        match &self.held {
            OpeningHeld::Nothing => combine(s, x, &[], coefficients),
            OpeningHeld::Powers(r) => {
                self.check(
                    "polynomial output",
                    "the opening",
                    opened.len(),
                    self.words(),
                )?;
                let y =
                    honeybadger::poly_from_opening(party, x.data(), opened, r, coefficients, fp);
                RingTensor::new(x.shape().to_vec(), y).map(Share::new)
            }
            OpeningHeld::Cross(t) => {
                self.check(
                    "polynomial output",
                    "the peer's words",
                    peer.len(),
                    self.words(),
                )?;
                let (mine, local) = espn::operands(party, x.data(), self.degree, f);
                let products = cross_shares(party, &mine, t, peer);
                let powers = espn::assemble(party, local, &products, self.n, self.degree, f);
                combine(s, x, &powers, coefficients)
            }
        }
    }

    /// The client's shares of `x^2..x^d` at `2^f`, from its share `x1` and the server's reply.
    pub fn finish(&self, x1: &[u64], reply: &[u64], f: u32) -> Result<Vec<Vec<u64>>, MpcError> {
        self.check("polynomial finish", "input", x1.len(), self.n)?;
        self.check(
            "polynomial finish",
            "the server's reply",
            reply.len(),
            self.words(),
        )?;
        let party = Party::Client;
        Ok(match &self.held {
            OpeningHeld::Nothing => Vec::new(),
            OpeningHeld::Powers(r) => {
                honeybadger::powers_from_opening(party, reply, r, self.degree, f)
            }
            OpeningHeld::Cross(t) => {
                let (mine, local) = espn::operands(party, x1, self.degree, f);
                let products = cross_shares(party, &mine, t, reply);
                espn::assemble(party, local, &products, self.n, self.degree, f)
            }
        })
    }
}
