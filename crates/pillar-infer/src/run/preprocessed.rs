//! The preprocessed linear protocol's side of a connection
//! ([`pillar_mpc::protocols::preprocessed`]): each role's offline phase, and its online phase
//! following the [`Flow`] both roles derive from the architecture.

use pillar_mpc::protocols::preprocessed::{LinearMask, Opening};
use pillar_mpc::protocols::weights;
use pillar_mpc::{MpcError, RingTensor, Session, Share};

use super::{Opened, Role, Server, common_step};
use crate::plan::flow::{Flow, Kind, Post, When, degree};
use crate::plan::{Architecture, Layer};

/// The server's offline phase: takes the correlations and receives the client's offline
/// posts.
pub(super) fn server_offline(
    state: &Opened<'_>,
    s: &mut Session,
    batch: usize,
) -> Result<Preprocessed, MpcError> {
    let flow = Flow::new(state.architecture, batch);
    let held = take_held(s, state.architecture, &flow, batch)?;
    let words = flow.offline_words();
    let posts = if words > 0 {
        s.exchange(&[], words)?
    } else {
        Vec::new()
    };
    Ok(Preprocessed {
        flow,
        held,
        known: Vec::new(),
        masks: Vec::new(),
        posts,
    })
}

/// The client's offline phase: takes the correlations, computes every share known offline
/// (the linear layers' outputs, one matrix product each, what local steps make of them, and
/// minus the masks of the values it re-masks) and posts what those shares allow to the
/// server.
pub(super) fn client_offline(
    state: &Opened<'_>,
    s: &mut Session,
    batch: usize,
) -> Result<Preprocessed, MpcError> {
    let arch = state.architecture;
    let flow = Flow::new(arch, batch);
    let held = take_held(s, arch, &flow, batch)?;
    let f = s.fixed().frac_bits();
    let mut known: Vec<Option<Share>> = vec![None; arch.steps.len() + 1];
    let mut posts = Vec::with_capacity(flow.offline_words());
    let mut masks = vec![Vec::new(); arch.steps.len()];
    for (i, step) in arch.steps.iter().enumerate() {
        let x = known[step.inputs[0]].as_ref();
        if let (Some(post), Some(x)) = (flow.posts[i], x)
            && post.when == When::Offline
        {
            match &held[i] {
                Held::Linear(m) => m.post_into(x.data(), &mut posts)?,
                Held::Opening(o) => posts.extend(o.post(x.data(), f)?),
                Held::Nothing => {}
            }
        }
        if !flow.known[i + 1] {
            continue;
        }
        let shape = arch.batch_shape(i + 1, batch);
        if flow.remask[i] > 0 {
            // The client's mask of this value: its share from here on is minus the mask.
            #[allow(unused_mut)]
            let mut m = s.random_words(flow.remask[i]);
            #[cfg(test)]
            if hooks::ZERO_MASKS.get() {
                m.fill(0);
            }
            let minus = m.iter().map(|v| v.wrapping_neg()).collect();
            known[i + 1] = Some(Share::new(RingTensor::new(shape, minus)?));
            masks[i] = m;
            continue;
        }
        let y = match (&held[i], &step.layer) {
            (Held::Linear(m), layer) => {
                let w = layer
                    .weight()
                    .and_then(|w| state.opened.get(w))
                    .ok_or_else(|| {
                        MpcError::invalid("preprocessed", "a linear step without its weight")
                    })?;
                Share::new(RingTensor::new(shape.clone(), m.client_output(w, f)?)?)
            }
            _ => {
                let operands: Vec<&Share> = step
                    .inputs
                    .iter()
                    .map(|&v| known_operand(known[v].as_ref()))
                    .collect::<Result<_, _>>()?;
                common_step(s, arch, i, &operands)?
            }
        };
        known[i + 1] = Some(y.reshape(shape)?);
    }
    if !posts.is_empty() {
        s.exchange(&posts, 0)?;
    }
    Ok(Preprocessed {
        flow,
        held,
        known,
        masks,
        posts: Vec::new(),
    })
}

/// A share the flow says is known offline, which the client's offline pass must have made.
fn known_operand(x: Option<&Share>) -> Result<&Share, MpcError> {
    x.ok_or_else(|| MpcError::invalid("preprocessed", "a share known offline was not made"))
}

/// One step's correlation under the preprocessed protocol, taken in the offline phase.
#[derive(Debug)]
enum Held {
    Nothing,
    Linear(LinearMask),
    Opening(Opening),
}

/// Takes the correlations of the linear steps and split polynomials, in step order (the
/// order [`Architecture::needs`] puts them first in).
fn take_held(
    s: &mut Session,
    arch: &Architecture,
    flow: &Flow,
    batch: usize,
) -> Result<Vec<Held>, MpcError> {
    let mut held = Vec::with_capacity(arch.steps.len());
    for (i, step) in arch.steps.iter().enumerate() {
        held.push(match flow.kinds[i] {
            Kind::Linear => {
                let (Some(shape), Some(mask)) = (arch.linear_shape(i, batch), step.layer.weight())
                else {
                    return Err(MpcError::invalid(
                        "preprocessed",
                        "a linear step without a shape",
                    ));
                };
                Held::Linear(LinearMask::take(s, shape, mask)?)
            }
            Kind::Split(k) => {
                let n: usize = arch.batch_shape(step.inputs[0], batch).iter().product();
                Held::Opening(Opening::take(s, k, n, degree(&step.layer))?)
            }
            Kind::Interactive | Kind::Local => Held::Nothing,
        });
    }
    Ok(held)
}

/// What a batch holds between its offline and online phases under the preprocessed protocol.
#[derive(Debug)]
pub(super) struct Preprocessed {
    flow: Flow,
    /// Per step, this party's correlation.
    held: Vec<Held>,
    /// The client's shares known offline, by value (the server's is empty).
    known: Vec<Option<Share>>,
    /// The client's masks of the values it re-masks, by step (the server's is empty); wiped
    /// when dropped.
    masks: Vec<Vec<u64>>,
    /// The client's offline posts, as the server received them (the client's is empty).
    posts: Vec<u64>,
}

/// The client's masks are what hide its re-masked values from the server.
impl Drop for Preprocessed {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.masks);
    }
}

/// The client's posts as the server takes them: the offline ones in step order, the online
/// ones frame by frame, each frame received when the server first needs one of its posts.
struct Inbox<'p> {
    offline: &'p [u64],
    frames: std::vec::IntoIter<usize>,
    frame: Vec<u64>,
    read: usize,
    /// Time spent waiting for the client's frames (for the step timings).
    waited: std::time::Duration,
}

impl Inbox<'_> {
    /// The client's post at a step whose flow says `post` (nothing for none), in place in the
    /// message that brought it: no copy.
    fn post(&mut self, s: &mut Session, post: Option<Post>) -> Result<&[u64], MpcError> {
        match post {
            Some(p) => self.take(s, p.words, p.when),
            None => Ok(&[]),
        }
    }

    /// The client's post of `words` words, which travels `when`.
    fn take(&mut self, s: &mut Session, words: usize, when: When) -> Result<&[u64], MpcError> {
        let short = || MpcError::invalid("preprocessed", "the client's posts end early");
        if when == When::Offline {
            if self.offline.len() < words {
                return Err(short());
            }
            let (post, rest) = self.offline.split_at(words);
            self.offline = rest;
            return Ok(post);
        }
        if self.read == self.frame.len() {
            let len = self.frames.next().ok_or_else(short)?;
            let start = std::time::Instant::now();
            self.frame = s.exchange(&[], len)?;
            self.waited += start.elapsed();
            self.read = 0;
        }
        if self.frame.len() - self.read < words {
            return Err(short());
        }
        let post = &self.frame[self.read..self.read + words];
        self.read += words;
        Ok(post)
    }
}

impl Opened<'_> {
    /// The server's side of the online phase under the preprocessed protocol, from its share
    /// `x` of the input (zeros).
    pub(super) fn server_layers(
        &self,
        s: &mut Session,
        x: RingTensor,
        batch: usize,
        role: Server<'_>,
        pre: &Preprocessed,
    ) -> Result<Share, MpcError> {
        let arch = self.architecture;
        let f = s.fixed().frac_bits();
        let flow = &pre.flow;
        let mut inbox = Inbox {
            offline: &pre.posts,
            frames: flow.frames().into_iter(),
            frame: Vec::new(),
            read: 0,
            waited: std::time::Duration::ZERO,
        };
        arch.schedule().walk(Share::new(x), |i, operands| {
            let mut timer = StepTimer::start("server", i, &arch.steps[i].layer);
            timer.waited = inbox.waited;
            let step = &arch.steps[i];
            let x = operands[0];
            let shape = arch.batch_shape(i + 1, batch);
            let mut replying = std::time::Duration::ZERO;
            let y = match (&pre.held[i], &step.layer) {
                (Held::Linear(m), layer) => {
                    let p = inbox.post(s, flow.posts[i])?;
                    let w = layer.weight().map(|w| role.0.weights[w].as_slice());
                    let w = w.ok_or_else(|| MpcError::invalid("preprocessed", "no weight"))?;
                    match (role.bias(i), layer) {
                        // A convolution adds its bias as it stores its output.
                        (bias, Layer::Conv { .. }) => Share::new(RingTensor::new(
                            shape.clone(),
                            m.server_output_with_bias(x.data(), p, w, bias, f)?,
                        )?),
                        (bias, _) => {
                            let y = Share::new(RingTensor::new(
                                shape.clone(),
                                m.server_output(x.data(), p, w, f)?,
                            )?);
                            match bias {
                                Some(b) => weights::add_bias(s, y, b)?,
                                None => y,
                            }
                        }
                    }
                }
                (Held::Opening(o), Layer::Poly { coefficients }) => {
                    let p = inbox.post(s, flow.posts[i])?;
                    // The reply goes before the server forms its own output: the client waits
                    // on it, not on that.
                    let reply = o.reply(x.data(), p, f)?;
                    let start = std::time::Instant::now();
                    s.exchange(&reply, 0)?;
                    replying = start.elapsed();
                    o.server_output(s, x, p, &reply, coefficients)?
                }
                _ => common_step(s, arch, i, operands)?,
            };
            let y = if flow.remask[i] > 0 {
                // The client's share plus its mask: the server's share becomes the masked
                // value, the client's minus the mask.
                let p = inbox.take(s, flow.remask[i], When::Online)?;
                let mut t = y.into_tensor();
                for (v, p) in t.data_mut().iter_mut().zip(p) {
                    *v = v.wrapping_add(*p);
                }
                #[cfg(test)]
                hooks::SEEN.with_borrow_mut(|seen| seen.push(t.data().to_vec()));
                Share::new(t)
            } else {
                y
            };
            timer.waited = inbox.waited + replying - timer.waited;
            y.reshape(shape)
        })
    }

    /// The client's side of the online phase under the preprocessed protocol, on `input`:
    /// elementwise work only, its posts sent when it next hears from the server.
    pub(super) fn client_layers(
        &self,
        s: &mut Session,
        input: &RingTensor,
        batch: usize,
        mut pre: Preprocessed,
    ) -> Result<Share, MpcError> {
        let arch = self.architecture;
        let f = s.fixed().frac_bits();
        let mut outbox: Vec<u64> = Vec::new();
        let flow = pre.flow.clone();
        let y = arch
            .schedule()
            .walk(Share::new(input.clone()), |i, operands| {
                let mut timer = StepTimer::start("client", i, &arch.steps[i].layer);
                let step = &arch.steps[i];
                let x = operands[0];
                if let Some(p) = flow.posts[i]
                    && p.when == When::Online
                {
                    match &pre.held[i] {
                        Held::Linear(m) => m.post_into(x.data(), &mut outbox)?,
                        Held::Opening(o) => outbox.extend(o.post(x.data(), f)?),
                        Held::Nothing => {}
                    }
                }
                if flow.flush[i] {
                    s.exchange(&outbox, 0)?;
                    outbox.clear();
                }
                let cached = |pre: &mut Preprocessed| {
                    pre.known[i + 1].take().ok_or_else(|| {
                        MpcError::invalid("preprocessed", "a share known offline was not made")
                    })
                };
                if flow.known[i + 1] && flow.remask[i] == 0 {
                    return cached(&mut pre);
                }
                let y = match (&pre.held[i], &step.layer) {
                    (Held::Opening(o), Layer::Poly { coefficients }) => {
                        let start = std::time::Instant::now();
                        let reply = s.exchange(&[], o.words())?;
                        timer.waited = start.elapsed();
                        o.client_output(s, x, &reply, coefficients)?
                    }
                    _ => common_step(s, arch, i, operands)?,
                };
                if flow.remask[i] > 0 {
                    let m = &pre.masks[i];
                    outbox.extend(y.data().iter().zip(m).map(|(a, b)| a.wrapping_add(*b)));
                    return cached(&mut pre);
                }
                y.reshape(arch.batch_shape(i + 1, batch))
            })?;
        if flow.flush_at_end {
            s.exchange(&outbox, 0)?;
        }
        Ok(y)
    }
}

/// Logs how long one step of the online phase took on one side, at `trace` level
/// (`RUST_LOG=pillar_infer::run=trace`): where the online time goes, layer by layer, without
/// a profiler. Costs one clock read per step when the level is off.
pub(super) struct StepTimer {
    party: &'static str,
    step: usize,
    op: &'static str,
    start: std::time::Instant,
    /// Of that, waiting for the peer.
    waited: std::time::Duration,
}

impl StepTimer {
    pub(super) fn start(party: &'static str, step: usize, layer: &Layer) -> Self {
        StepTimer {
            party,
            step,
            op: layer.op_name(),
            start: std::time::Instant::now(),
            waited: std::time::Duration::ZERO,
        }
    }
}

impl Drop for StepTimer {
    fn drop(&mut self) {
        tracing::trace!(
            party = self.party,
            step = self.step,
            op = self.op,
            us = self.start.elapsed().as_micros() as u64,
            waited_us = self.waited.as_micros() as u64,
            "online step"
        );
    }
}

/// What the tests of re-masking see and break (`super::remask_tests`).
#[cfg(test)]
pub(super) mod hooks {
    use std::cell::{Cell, RefCell};

    thread_local! {
        /// The server's shares of every value re-masked on this thread, as it forms them.
        pub(in super::super) static SEEN: RefCell<Vec<Vec<u64>>> = const { RefCell::new(Vec::new()) };
        /// A deliberately broken client on this thread: its re-masking masks are zero.
        pub(in super::super) static ZERO_MASKS: Cell<bool> = const { Cell::new(false) };
    }
}
