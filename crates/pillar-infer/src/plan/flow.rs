//! Who sends what, when, under the preprocessed linear protocol
//! ([`pillar_mpc::protocols::preprocessed`]): which of the client's shares are known offline,
//! which of its posts travel offline and which online, and how the online ones are grouped
//! into messages. Both parties derive the same flow from the architecture, so every message's
//! length is known to its receiver before it arrives.
//!
//! The client's share of a value is *known offline* when it does not depend on anything the
//! server sends online: a linear layer's output (`-F M - C_1`, made offline), and what local
//! steps (pooling, flatten, a sum) make of known shares. The input, and the output of every
//! step that hears from the server (an activation, a max pooling), are known only online.
//!
//! The client *posts* to the server at every linear layer (its input share plus the layer's
//! mask) and at every split activation (its part of the opening). A post of a share known
//! offline goes in the offline phase; the others wait in the client's outbox until the client
//! next needs to hear from the server, and then go as one message: the *frame* of that
//! segment. The server takes each post where its step needs it, receiving a segment's frame
//! when it first needs one of its posts.
//!
//! A value known only online that several posts would depend on (a residual block's input,
//! read by its first convolution, by a downsampling convolution and by the sum before the
//! block's last activation) is *re-masked*: right after the step that makes it, the client
//! posts its share plus a mask of its own and takes minus the mask as its share, known
//! offline. One post of the value then replaces the several that would depend on it; a value
//! only one post reads (through a pooling, which shrinks it) is left as it is.

use pillar_mpc::protocols::preprocessed::OpeningKind;

use super::{Architecture, Layer};

/// When a post travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    /// In the offline phase, with the other posts of shares known offline.
    Offline,
    /// Online, in the frame of its segment.
    Online,
}

/// The client's post at one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Post {
    /// Ring words.
    pub(crate) words: usize,
    /// When it travels.
    pub(crate) when: When,
}

/// What one step does under the preprocessed protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A linear layer: the client posts its masked input, the server computes alone.
    Linear,
    /// A polynomial split by `OpeningKind`: the client posts its part, the server replies.
    Split(OpeningKind),
    /// A protocol that exchanges both ways as under the Beaver protocol (exact ReLU, Clip,
    /// max pooling, CrypTen's polynomial).
    Interactive,
    /// Local on both sides.
    Local,
}

/// The flow of one batch.
#[derive(Debug, Clone)]
pub(crate) struct Flow {
    /// Per value: whether the client's share is known offline.
    pub(crate) known: Vec<bool>,
    /// Per step: what it does.
    pub(crate) kinds: Vec<Kind>,
    /// Per step: the client's post, if it makes one.
    pub(crate) posts: Vec<Option<Post>>,
    /// Per step: whether the client sends its outbox before the step (it hears from the
    /// server there).
    pub(crate) flush: Vec<bool>,
    /// Words of the server's reply at each step (a split polynomial's opened values).
    pub(crate) replies: Vec<usize>,
    /// Per step: the words of its output the client re-masks online right after it (0 for
    /// none).
    pub(crate) remask: Vec<usize>,
    /// Whether the client sends its outbox before the logits are revealed.
    pub(crate) flush_at_end: bool,
}

impl Flow {
    /// The flow of `arch` for a batch of `batch`.
    pub(crate) fn new(arch: &Architecture, batch: usize) -> Flow {
        let steps = arch.steps.len();
        let mut known = vec![false; steps + 1];
        let mut kinds = Vec::with_capacity(steps);
        let mut posts = Vec::with_capacity(steps);
        let mut flush = Vec::with_capacity(steps);
        let mut replies = Vec::with_capacity(steps);
        let mut remask = Vec::with_capacity(steps);
        let mut pending = false;
        let all_kinds: Vec<Kind> = (0..steps)
            .map(|i| {
                let n = arch.batch_shape(arch.steps[i].inputs[0], batch);
                kind(arch, &arch.steps[i].layer, i, n.iter().product())
            })
            .collect();
        for (i, step) in arch.steps.iter().enumerate() {
            let input_known = known[step.inputs[0]];
            let n: usize = arch.batch_shape(step.inputs[0], batch).iter().product();
            let when = if input_known {
                When::Offline
            } else {
                When::Online
            };
            let kind = all_kinds[i];
            let (post, reply, output_known) = match kind {
                Kind::Linear => (Some(Post { words: n, when }), 0, true),
                Kind::Split(k) => {
                    let words = k.words(n, degree(&step.layer));
                    (Some(Post { words, when }), words, false)
                }
                Kind::Interactive => (None, 0, false),
                Kind::Local => (None, 0, step.inputs.iter().all(|&v| known[v])),
            };
            if post.is_some_and(|p| p.when == When::Online) {
                pending = true;
            }
            let hears = reply > 0 || kind == Kind::Interactive;
            flush.push(hears && pending);
            if hears {
                pending = false;
            }
            let out: usize = arch.batch_shape(i + 1, batch).iter().product();
            let again = hears
                && !output_known
                && out > 0
                && posts_reading(arch, &all_kinds, &known, i + 1, batch) > out;
            if again {
                pending = true;
            }
            known[i + 1] = output_known || again;
            kinds.push(kind);
            posts.push(post);
            replies.push(reply);
            remask.push(if again { out } else { 0 });
        }
        Flow {
            known,
            kinds,
            posts,
            flush,
            replies,
            remask,
            flush_at_end: pending,
        }
    }

    /// The lengths of the online frames, in the order the client sends them.
    pub(crate) fn frames(&self) -> Vec<usize> {
        let mut frames = Vec::new();
        let mut pending = 0;
        for (i, post) in self.posts.iter().enumerate() {
            // The flush before step i sends what was posted before it and at it.
            if let Some(p) = post
                && p.when == When::Online
            {
                pending += p.words;
            }
            if self.flush[i] {
                frames.push(pending);
                pending = 0;
            }
            pending += self.remask[i];
        }
        if self.flush_at_end {
            frames.push(pending);
        }
        frames
    }

    /// Words the client posts online: its posts of shares known only online, and its
    /// re-maskings.
    pub(crate) fn online_words(&self) -> usize {
        let posts: usize = self
            .posts
            .iter()
            .flatten()
            .filter(|p| p.when == When::Online)
            .map(|p| p.words)
            .sum();
        posts + self.remask.iter().sum::<usize>()
    }

    /// Words of the client's offline posts.
    pub(crate) fn offline_words(&self) -> usize {
        self.posts
            .iter()
            .flatten()
            .filter(|p| p.when == When::Offline)
            .map(|p| p.words)
            .sum()
    }
}

/// Words of the posts that would go online because of value `v` alone, if it stayed known
/// only online: those of the linear steps and split polynomials that read it, or read what
/// local steps make of it and of shares known offline. (A post that also waits on another
/// value known only online would stay online whatever becomes of `v`.) `known` holds the
/// values up to `v`.
fn posts_reading(
    arch: &Architecture,
    kinds: &[Kind],
    known: &[bool],
    v: usize,
    batch: usize,
) -> usize {
    #[derive(Clone, Copy, PartialEq)]
    enum Source {
        Known,
        OnlyV,
        Other,
    }
    let mut source: Vec<Source> = (0..=arch.steps.len())
        .map(|u| match u {
            u if u == v => Source::OnlyV,
            u if u < v && known[u] => Source::Known,
            _ => Source::Other,
        })
        .collect();
    let mut words = 0;
    for (j, step) in arch.steps.iter().enumerate().skip(v) {
        let input = source[step.inputs[0]];
        let n: usize = arch.batch_shape(step.inputs[0], batch).iter().product();
        source[j + 1] = match kinds[j] {
            Kind::Linear => {
                if input == Source::OnlyV {
                    words += n;
                }
                Source::Known
            }
            Kind::Split(k) => {
                if input == Source::OnlyV {
                    words += k.words(n, degree(&step.layer));
                }
                Source::Other
            }
            Kind::Interactive => Source::Other,
            Kind::Local => {
                let inputs: Vec<Source> = step.inputs.iter().map(|&u| source[u]).collect();
                if inputs.contains(&Source::Other) {
                    Source::Other
                } else if inputs.contains(&Source::OnlyV) {
                    Source::OnlyV
                } else {
                    Source::Known
                }
            }
        };
    }
    words
}

/// What step `i`, a `layer` reading `n` elements, does.
fn kind(arch: &Architecture, layer: &Layer, i: usize, n: usize) -> Kind {
    match layer {
        Layer::Conv { .. } | Layer::Linear { .. } | Layer::Scale { .. } => Kind::Linear,
        // A polynomial that opens nothing (of degree below 2) is local.
        Layer::Poly { .. } => match OpeningKind::of(arch.options.activation) {
            Some(k) if k.words(n, degree(layer)) > 0 => Kind::Split(k),
            _ if arch.step_rounds(i) > 0 => Kind::Interactive,
            _ => Kind::Local,
        },
        Layer::Relu | Layer::Clip { .. } => Kind::Interactive,
        // A 1x1 max pooling compares nothing.
        Layer::MaxPool(_) if arch.step_rounds(i) > 0 => Kind::Interactive,
        Layer::MaxPool(_) => Kind::Local,
        Layer::AvgPool(_) | Layer::GlobalAvgPool | Layer::Add | Layer::Flatten => Kind::Local,
    }
}

/// The polynomial's degree (0 for another layer).
pub(crate) fn degree(layer: &Layer) -> usize {
    match layer {
        Layer::Poly { coefficients } => coefficients.len().saturating_sub(1),
        _ => 0,
    }
}
