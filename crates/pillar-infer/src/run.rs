//! One party's side of a secure inference, its role and phases as types: a [`Connection`] in
//! the [`Server`] role (which holds the weights) or the [`Client`] role (which holds the
//! input), made by the per-connection setup; per batch, [`Connection::prepare`] runs the
//! offline phase (fetch the correlations) and returns a [`Prepared`] batch, whose `run` is the
//! online phase, with what that role brings. An online step before its offline phase, or the
//! server's step with an input, does not compile.

use std::time::{Duration, Instant};

use pillar_mpc::channel::Stats;
use pillar_mpc::kernels::ConvGeometry;
use pillar_mpc::protocols::poly::combine;
use pillar_mpc::protocols::preprocessed::{LinearMask, LinearProtocol, Opening};
use pillar_mpc::protocols::weights::{self, OpenedWeight};
use pillar_mpc::protocols::{arith, clip, maxpool, pool, relu};
use pillar_mpc::{MpcError, Party, RingTensor, Session, Share};

use crate::error::InferError;
use crate::plan::flow::{Flow, Kind, When, degree};
use crate::plan::{Architecture, Layer, Plan, Weights};

/// Time and traffic of one phase, as this party saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Phase {
    /// Wall-clock time.
    pub time: Duration,
    /// Rounds and payload bytes on the link to the peer.
    pub stats: Stats,
}

impl Phase {
    fn measure<R>(
        s: &mut Session,
        f: impl FnOnce(&mut Session) -> Result<R, MpcError>,
    ) -> Result<(R, Phase), MpcError> {
        let before = s.stats();
        let start = Instant::now();
        let r = f(s)?;
        Ok((
            r,
            Phase {
                time: start.elapsed(),
                stats: s.stats().since(&before),
            },
        ))
    }
}

/// What one batch cost this party.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchReport {
    /// Fetching the correlations (the dealer's traffic is [`Architecture::offline_words`]),
    /// and under the preprocessed protocol the client's offline posts to the server
    /// ([`Architecture::offline_post_words`], one round).
    pub offline: Phase,
    /// The protocol.
    pub online: Phase,
}

/// What both roles hold after the setup: the architecture and the opened weight masks.
#[derive(Debug)]
struct Opened<'a> {
    architecture: &'a Architecture,
    opened: Vec<OpenedWeight>,
    setup: Phase,
}

/// The server's role: it holds the weights (and adds the biases).
#[derive(Debug, Clone, Copy)]
pub struct Server<'a>(&'a Weights);

/// The client's role: it holds the input.
#[derive(Debug, Clone, Copy)]
pub struct Client;

/// What a role brings to the layers: the server adds its biases, the client nothing; and
/// its side of the preprocessed protocol's offline phase.
trait Role {
    /// The bias step `i` adds, if this role holds one.
    fn bias(&self, i: usize) -> Option<&[u64]>;

    /// This role's offline phase under the preprocessed protocol, after the correlations of
    /// the batch are fetched.
    fn preprocess(
        &self,
        state: &Opened<'_>,
        s: &mut Session,
        batch: usize,
    ) -> Result<Preprocessed, MpcError>;
}

impl Role for Server<'_> {
    fn bias(&self, i: usize) -> Option<&[u64]> {
        self.0.biases[i].as_deref()
    }

    /// Takes the correlations and receives the client's offline posts.
    fn preprocess(
        &self,
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
}

impl Role for Client {
    fn bias(&self, _: usize) -> Option<&[u64]> {
        None
    }

    /// Takes the correlations, computes every share known offline (the linear layers'
    /// outputs, one matrix product each, and what local steps make of them) and sends the
    /// posts of those shares to the server.
    fn preprocess(
        &self,
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
                    Held::Linear(m) => posts.extend(m.post(x.data())?),
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
                let m = s.random_words(flow.remask[i]);
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
                (_, Layer::Poly { coefficients }) => {
                    let x = known_operand(x)?;
                    combine(s, x, &[], coefficients)?
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
struct Preprocessed {
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
}

impl Inbox<'_> {
    /// The client's post of `words` words, which travels `when`.
    fn take(&mut self, s: &mut Session, words: usize, when: When) -> Result<Vec<u64>, MpcError> {
        let short = || MpcError::invalid("preprocessed", "the client's posts end early");
        if when == When::Offline {
            if self.offline.len() < words {
                return Err(short());
            }
            let (post, rest) = self.offline.split_at(words);
            self.offline = rest;
            return Ok(post.to_vec());
        }
        if self.read == self.frame.len() {
            let len = self.frames.next().ok_or_else(short)?;
            self.frame = s.exchange(&[], len)?;
            self.read = 0;
        }
        if self.frame.len() - self.read < words {
            return Err(short());
        }
        let post = self.frame[self.read..self.read + words].to_vec();
        self.read += words;
        Ok(post)
    }
}

/// One party's side of one connection after the setup, in role `R` ([`Server`] or
/// [`Client`]): what the batches of the connection run on.
#[derive(Debug)]
pub struct Connection<'a, R> {
    state: Opened<'a>,
    role: R,
}

/// The server's side of a connection.
pub type ServerConnection<'a> = Connection<'a, Server<'a>>;

/// The client's side of a connection.
pub type ClientConnection<'a> = Connection<'a, Client>;

/// A batch whose correlations are fetched (the offline phase is done), ready for its online
/// phase on connection `C`.
#[derive(Debug)]
#[must_use = "a prepared batch holds its correlations in the session until it runs"]
pub struct Prepared<'c, C> {
    connection: &'c C,
    batch: usize,
    offline: Phase,
    /// Under the preprocessed protocol, what the offline phase made.
    pre: Option<Preprocessed>,
}

/// Errors unless `s` is `party`'s session.
fn expect_party(s: &Session, party: Party) -> Result<(), InferError> {
    if s.party() == party {
        Ok(())
    } else {
        Err(InferError::Role {
            expected: party,
            got: s.party(),
        })
    }
}

impl<R> Connection<'_, R> {
    /// The setup's time and traffic.
    pub fn setup(&self) -> Phase {
        self.state.setup
    }
}

#[allow(private_bounds)]
impl<R: Role> Connection<'_, R> {
    /// The offline phase of a batch of `batch` images: fetches every correlation it consumes,
    /// before the input exists; under the preprocessed protocol also computes what the
    /// client's shares known offline allow, and the client posts them to the server.
    pub fn prepare(&self, s: &mut Session, batch: usize) -> Result<Prepared<'_, Self>, InferError> {
        let arch = self.state.architecture;
        let needs = arch.needs(batch)?;
        let (pre, offline) = Phase::measure(s, |s| {
            s.prefetch(&needs)?;
            match arch.options.linear {
                LinearProtocol::Preprocessed => {
                    Ok(Some(self.role.preprocess(&self.state, s, batch)?))
                }
                LinearProtocol::Beaver => Ok(None),
            }
        })?;
        Ok(Prepared {
            connection: self,
            batch,
            offline,
            pre,
        })
    }
}

impl<'a> ServerConnection<'a> {
    /// The setup, once per connection: opens `W - B` for every weight of `plan` (one round).
    pub fn open(s: &mut Session, plan: &'a Plan) -> Result<Self, InferError> {
        expect_party(s, Party::Server)?;
        let (architecture, weights) = (&plan.architecture, &plan.weights);
        if weights.weights.len() != architecture.weight_shapes.len()
            || weights.biases.len() != architecture.steps.len()
        {
            return Err(InferError::Weights);
        }
        let refs: Vec<&[u64]> = weights.weights.iter().map(Vec::as_slice).collect();
        let mut state = Opened::new(s, architecture, |s| {
            weights::open_weights(s, &architecture.weight_shapes, &refs, 0)
        })?;
        if architecture.options.linear == LinearProtocol::Preprocessed {
            // The server computes on its own weights: it keeps no copy of the opened ones.
            state.opened = Vec::new();
        }
        Ok(Connection {
            state,
            role: Server(weights),
        })
    }
}

impl Prepared<'_, ServerConnection<'_>> {
    /// The online phase: the server's input share is zero (the first layer's mask hides the
    /// client's input), and it sends its share of the logits to the client.
    pub fn run(self, s: &mut Session) -> Result<BatchReport, InferError> {
        let conn = self.connection;
        let arch = conn.state.architecture;
        let x = RingTensor::zeros(arch.batch_shape(0, self.batch))?;
        let ((), online) = Phase::measure(s, |s| {
            let y = match &self.pre {
                None => conn
                    .state
                    .layers(s, Share::new(x), self.batch, &conn.role)?,
                Some(pre) => conn.state.server_layers(s, x, self.batch, conn.role, pre)?,
            };
            arith::reveal_to_peer(s, &y)
        })?;
        Ok(BatchReport {
            offline: self.offline,
            online,
        })
    }
}

impl<'a> ClientConnection<'a> {
    /// The setup, once per connection: the client's side of opening the server's weight masks
    /// (one round).
    pub fn open(s: &mut Session, architecture: &'a Architecture) -> Result<Self, InferError> {
        expect_party(s, Party::Client)?;
        let state = Opened::new(s, architecture, |s| {
            weights::open_peer_weights(s, &architecture.weight_shapes, 0)
        })?;
        Ok(Connection {
            state,
            role: Client,
        })
    }
}

impl Prepared<'_, ClientConnection<'_>> {
    /// The online phase on `input` (ring words at `f` bits, `[batch, ...input_shape]`): shared
    /// as `(0, x)`, so the first layer's Beaver mask hides it. Returns the logits, which only
    /// the client learns.
    pub fn run(
        self,
        s: &mut Session,
        input: &RingTensor,
    ) -> Result<(RingTensor, BatchReport), InferError> {
        let Connection { state, role } = self.connection;
        let batch = state.architecture.check_input(input)?;
        if batch != self.batch {
            return Err(InferError::Batch {
                prepared: self.batch,
                given: batch,
            });
        }
        let pre = self.pre;
        let (logits, online) = Phase::measure(s, |s| {
            let y = match pre {
                None => state.layers(s, Share::new(input.clone()), batch, role)?,
                Some(pre) => state.client_layers(s, input, batch, pre)?,
            };
            arith::receive_reveal(s, &y)
        })?;
        Ok((
            logits,
            BatchReport {
                offline: self.offline,
                online,
            },
        ))
    }
}

impl<'a> Opened<'a> {
    /// The setup: fetches the weight masks of `architecture` and opens them with `open` (the
    /// server's side or the client's), measured.
    fn new(
        s: &mut Session,
        architecture: &'a Architecture,
        open: impl FnOnce(&mut Session) -> Result<Vec<OpenedWeight>, MpcError>,
    ) -> Result<Self, InferError> {
        architecture.check_secure_input()?;
        let (opened, setup) = Phase::measure(s, |s| {
            s.prefetch(&architecture.setup_needs())?;
            open(s)
        })?;
        Ok(Opened {
            architecture,
            opened,
            setup,
        })
    }

    /// The layers on the shared `x`, in the architecture's schedule, with what `role` brings:
    /// the Beaver protocol.
    fn layers(
        &self,
        s: &mut Session,
        x: Share,
        batch: usize,
        role: &impl Role,
    ) -> Result<Share, MpcError> {
        let arch = self.architecture;
        arch.schedule().walk(x, |i, operands| {
            let step = &arch.steps[i];
            let x = operands[0];
            let with_bias = |s: &Session, y: Share| match role.bias(i) {
                Some(b) => weights::add_bias(s, y, b),
                None => Ok(y),
            };
            let y = match &step.layer {
                Layer::Conv {
                    geometry, weight, ..
                } => {
                    let g = ConvGeometry { batch, ..*geometry };
                    let y = weights::conv2d(s, x, &self.opened[*weight], g)?;
                    with_bias(s, y)?
                }
                Layer::Linear { weight, .. } => {
                    let y = weights::matmul(s, x, &self.opened[*weight])?;
                    with_bias(s, y)?
                }
                Layer::Scale { weight } => {
                    let y = weights::scale(s, x, &self.opened[*weight])?;
                    with_bias(s, y)?
                }
                _ => common_step(s, arch, i, operands)?,
            };
            y.reshape(arch.batch_shape(i + 1, batch))
        })
    }

    /// The server's side of the online phase under the preprocessed protocol, from its share
    /// `x` of the input (zeros).
    fn server_layers(
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
        };
        arch.schedule().walk(Share::new(x), |i, operands| {
            let step = &arch.steps[i];
            let x = operands[0];
            let shape = arch.batch_shape(i + 1, batch);
            let mut post = |s: &mut Session| match flow.posts[i] {
                Some(p) => inbox.take(s, p.words, p.when),
                None => Ok(Vec::new()),
            };
            let y = match (&pre.held[i], &step.layer) {
                (Held::Linear(m), layer) => {
                    let p = post(s)?;
                    let w = layer.weight().map(|w| role.0.weights[w].as_slice());
                    let w = w.ok_or_else(|| MpcError::invalid("preprocessed", "no weight"))?;
                    let y = Share::new(RingTensor::new(
                        shape.clone(),
                        m.server_output(x.data(), &p, w, f)?,
                    )?);
                    match role.bias(i) {
                        Some(b) => weights::add_bias(s, y, b)?,
                        None => y,
                    }
                }
                (Held::Opening(o), Layer::Poly { coefficients }) => {
                    if o.words() == 0 {
                        combine(s, x, &[], coefficients)?
                    } else {
                        let p = post(s)?;
                        let (reply, powers) = o.serve(x.data(), &p, f)?;
                        s.exchange(&reply, 0)?;
                        combine(s, x, &powers, coefficients)?
                    }
                }
                _ => common_step(s, arch, i, operands)?,
            };
            let y = if flow.remask[i] > 0 {
                // The client's share plus its mask: the server's share becomes the masked
                // value, the client's minus the mask.
                let p = inbox.take(s, flow.remask[i], When::Online)?;
                let mut t = y.into_tensor();
                for (v, p) in t.data_mut().iter_mut().zip(&p) {
                    *v = v.wrapping_add(*p);
                }
                Share::new(t)
            } else {
                y
            };
            y.reshape(shape)
        })
    }

    /// The client's side of the online phase under the preprocessed protocol, on `input`:
    /// elementwise work only, its posts sent when it next hears from the server.
    fn client_layers(
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
                let step = &arch.steps[i];
                let x = operands[0];
                if let Some(p) = flow.posts[i]
                    && p.when == When::Online
                {
                    match &pre.held[i] {
                        Held::Linear(m) => outbox.extend(m.post(x.data())?),
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
                        let reply = s.exchange(&[], o.words())?;
                        let powers = o.finish(x.data(), &reply, f)?;
                        combine(s, x, &powers, coefficients)?
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

/// Step `i` when it is not a linear layer: the same under either linear protocol.
fn common_step(
    s: &mut Session,
    arch: &Architecture,
    i: usize,
    operands: &[&Share],
) -> Result<Share, MpcError> {
    let step = &arch.steps[i];
    let x = operands[0];
    match &step.layer {
        Layer::AvgPool(w) => pool::avg_pool(s, x, *w),
        Layer::GlobalAvgPool => pool::global_avg_pool(s, x),
        Layer::MaxPool(w) => maxpool::max_pool(s, x, *w),
        Layer::Add => arith::add(x, operands[1]),
        Layer::Flatten => Ok(x.clone()),
        Layer::Relu => relu::relu(s, x),
        Layer::Clip { .. } => {
            let bounds = step.layer.clip_bounds(arch.fixed());
            clip::clip(s, x, bounds.unwrap_or(clip::Bounds { lo: None, hi: None }))
        }
        Layer::Poly { coefficients } => arch.options.activation.evaluate(s, x, coefficients),
        Layer::Conv { .. } | Layer::Linear { .. } | Layer::Scale { .. } => Err(MpcError::invalid(
            "layers",
            "a linear layer reached the steps that are the same under both protocols",
        )),
    }
}
