//! One party's side of a secure inference, its role and phases as types: a [`Connection`] in
//! the [`Server`] role (which holds the weights) or the [`Client`] role (which holds the
//! input), made by the per-connection setup; per batch, [`Connection::prepare`] runs the
//! offline phase (fetch the correlations) and returns a [`Prepared`] batch, whose `run` is the
//! online phase, with what that role brings. An online step before its offline phase, or the
//! server's step with an input, does not compile.

use std::time::{Duration, Instant};

use pillar_mpc::channel::Stats;
use pillar_mpc::kernels::ConvGeometry;
use pillar_mpc::protocols::preprocessed::LinearProtocol;
use pillar_mpc::protocols::weights::{self, MaskedWeights, OpenedWeight};
use pillar_mpc::protocols::{arith, clip, maxpool, pool, relu};
use pillar_mpc::{MpcError, Party, RingTensor, Session, Share};

use crate::error::InferError;
use crate::plan::{Architecture, Layer, Plan, Weights};

mod preprocessed;
#[cfg(test)]
mod remask_tests;

use preprocessed::Preprocessed;

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

    fn preprocess(
        &self,
        state: &Opened<'_>,
        s: &mut Session,
        batch: usize,
    ) -> Result<Preprocessed, MpcError> {
        preprocessed::server_offline(state, s, batch)
    }
}

impl Role for Client {
    fn bias(&self, _: usize) -> Option<&[u64]> {
        None
    }

    fn preprocess(
        &self,
        state: &Opened<'_>,
        s: &mut Session,
        batch: usize,
    ) -> Result<Preprocessed, MpcError> {
        preprocessed::client_offline(state, s, batch)
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
    /// The setup, once per connection: sends `F = W - B` for every weight of `plan` (one
    /// round, one way), from `masked`, the plan's weights under their masks
    /// ([`Plan::masked_weights`], made once per model and shared by its connections).
    pub fn open(
        s: &mut Session,
        plan: &'a Plan,
        masked: &MaskedWeights,
    ) -> Result<Self, InferError> {
        Self::start(s, plan, masked, true)
    }

    /// The setup of a connection whose client kept `F` from an earlier one (it named the
    /// digest the server announced): nothing is sent.
    pub fn resume(
        s: &mut Session,
        plan: &'a Plan,
        masked: &MaskedWeights,
    ) -> Result<Self, InferError> {
        Self::start(s, plan, masked, false)
    }

    fn start(
        s: &mut Session,
        plan: &'a Plan,
        masked: &MaskedWeights,
        send: bool,
    ) -> Result<Self, InferError> {
        expect_party(s, Party::Server)?;
        let (architecture, weights) = (&plan.architecture, &plan.weights);
        if weights.weights.len() != architecture.weight_shapes.len()
            || weights.biases.len() != architecture.steps.len()
            || masked.shapes() != architecture.weight_shapes.as_slice()
        {
            return Err(InferError::Weights);
        }
        let state = Opened::new(s, architecture, |s| {
            if send {
                weights::send_weights(s, masked)?;
            } else {
                s.weight_masks(masked.masks())?;
            }
            Ok(match architecture.options.linear {
                // The server computes on its own weights: it keeps nothing per connection.
                LinearProtocol::Preprocessed => Vec::new(),
                LinearProtocol::Beaver => masked.opened(),
            })
        })?;
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
    /// The setup, once per connection: receives the server's `F = W - B` (one round).
    pub fn open(s: &mut Session, architecture: &'a Architecture) -> Result<Self, InferError> {
        expect_party(s, Party::Client)?;
        let state = Opened::new(s, architecture, |s| {
            weights::receive_weights(s, &architecture.weight_shapes)
        })?;
        Ok(Connection {
            state,
            role: Client,
        })
    }

    /// The setup from `F` kept from an earlier connection to the same model (the server
    /// resumes, [`ServerConnection::resume`]): nothing is received. Errors unless `f` has as
    /// many words as the architecture's weights.
    pub fn resume(
        s: &mut Session,
        architecture: &'a Architecture,
        f: &std::sync::Arc<Vec<u64>>,
    ) -> Result<Self, InferError> {
        expect_party(s, Party::Client)?;
        let opened =
            weights::opened_from(&architecture.weight_shapes, f).ok_or(InferError::Weights)?;
        let state = Opened::new(s, architecture, |_| Ok(opened))?;
        Ok(Connection {
            state,
            role: Client,
        })
    }

    /// The server's `F = W - B` this connection holds, to keep for a later one.
    pub fn weights(&self) -> std::sync::Arc<Vec<u64>> {
        weights::all_f(&self.state.opened)
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
    /// The setup: `open` (the server's side or the client's), measured.
    fn new(
        s: &mut Session,
        architecture: &'a Architecture,
        open: impl FnOnce(&mut Session) -> Result<Vec<OpenedWeight>, MpcError>,
    ) -> Result<Self, InferError> {
        architecture.check_secure_input()?;
        let (opened, setup) = Phase::measure(s, open)?;
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
