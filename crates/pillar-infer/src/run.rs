//! One party's side of a secure inference: the per-connection setup, then per batch an
//! offline phase (fetch the correlations) and an online phase (the protocol).

use std::time::{Duration, Instant};

use pillar_mpc::channel::Stats;
use pillar_mpc::kernels::ConvGeometry;
use pillar_mpc::protocols::weights::{self, OpenedWeight};
use pillar_mpc::protocols::{arith, maxpool, pool, relu};
use pillar_mpc::{MpcError, Party, RingTensor, Session, Share};

use crate::plan::{Architecture, Layer, Weights};

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

/// A party's state for one connection: the architecture and the opened weights.
#[derive(Debug)]
pub struct Connection<'a> {
    architecture: &'a Architecture,
    weights: Option<&'a Weights>,
    opened: Vec<OpenedWeight>,
    /// The setup (opening the weight masks).
    pub setup: Phase,
}

/// What one batch cost this party.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchReport {
    /// Fetching the correlations (no traffic to the peer; the dealer's traffic is
    /// [`Architecture::offline_words`]).
    pub offline: Phase,
    /// The protocol.
    pub online: Phase,
}

impl<'a> Connection<'a> {
    /// The setup, once per connection: opens `W - B` for every weight (one round). The
    /// server passes its weights, the client `None`.
    pub fn open(
        s: &mut Session,
        architecture: &'a Architecture,
        weights: Option<&'a Weights>,
    ) -> Result<Self, MpcError> {
        if s.party().is_server() != weights.is_some() {
            return Err(MpcError::Invalid {
                op: "secure plan",
                detail: "the server, and only the server, holds the weights".into(),
            });
        }
        if let Some(w) = weights
            && (w.weights.len() != architecture.weight_shapes.len()
                || w.biases.len() != architecture.steps.len())
        {
            return Err(MpcError::Invalid {
                op: "secure plan",
                detail: "the weights do not belong to this architecture".into(),
            });
        }
        let (opened, setup) = Phase::measure(s, |s| {
            s.prefetch(&architecture.setup_needs())?;
            let refs: Option<Vec<&[u64]>> =
                weights.map(|w| w.weights.iter().map(Vec::as_slice).collect());
            weights::open_weights(s, &architecture.weight_shapes, refs.as_deref(), 0)
        })?;
        Ok(Connection {
            architecture,
            weights,
            opened,
            setup,
        })
    }

    /// One batch of `batch` images: the client passes its input (ring words at `f` bits,
    /// `[batch, ...input_shape]`) and gets the logits; the server passes `None` and gets
    /// `None`. The input is shared as `(0, x)`: the first layer's Beaver mask hides it.
    pub fn infer(
        &self,
        s: &mut Session,
        batch: usize,
        input: Option<&RingTensor>,
    ) -> Result<(Option<RingTensor>, BatchReport), MpcError> {
        let arch = self.architecture;
        let invalid = |detail: String| MpcError::Invalid {
            op: "secure plan",
            detail,
        };
        let x = match (s.party(), input) {
            (Party::Client, Some(x)) => {
                if x.shape() != arch.batch_shape(0, batch) {
                    return Err(invalid(format!(
                        "input of shape {:?}, expected {:?}",
                        x.shape(),
                        arch.batch_shape(0, batch)
                    )));
                }
                x.clone()
            }
            (Party::Server, None) => RingTensor::zeros(arch.batch_shape(0, batch))?,
            (party, _) => {
                return Err(invalid(format!(
                    "{party} {} an input",
                    if input.is_some() { "passed" } else { "lacks" }
                )));
            }
        };
        let needs = arch.needs(batch).map_err(|e| invalid(e.to_string()))?;
        let ((), offline) = Phase::measure(s, |s| s.prefetch(&needs))?;
        let (logits, online) = Phase::measure(s, |s| {
            let y = self.layers(s, Share::new(x), batch)?;
            arith::reveal_to(s, &y, Party::Client)
        })?;
        Ok((logits, BatchReport { offline, online }))
    }

    fn layers(&self, s: &mut Session, x: Share, batch: usize) -> Result<Share, MpcError> {
        let arch = self.architecture;
        arch.schedule().walk(x, |i, operands| {
            let step = &arch.steps[i];
            let x = operands[0];
            let bias = self
                .weights
                .and_then(|w| w.biases.get(i))
                .and_then(|b| b.as_deref());
            let out_shape = arch.batch_shape(i + 1, batch);
            let y = match &step.layer {
                Layer::Conv {
                    geometry, weight, ..
                } => {
                    let g = ConvGeometry { batch, ..*geometry };
                    let y = weights::conv2d(s, x, &self.opened[*weight], g)?;
                    weights::add_bias(s, y, bias)?
                }
                Layer::Linear { weight, .. } => {
                    let y = weights::matmul(s, x, &self.opened[*weight])?;
                    weights::add_bias(s, y, bias)?
                }
                Layer::Scale { weight } => {
                    let y = weights::scale(s, x, &self.opened[*weight])?;
                    weights::add_bias(s, y, bias)?
                }
                Layer::AvgPool(w) => pool::avg_pool(s, x, *w)?,
                Layer::GlobalAvgPool => pool::global_avg_pool(s, x)?,
                Layer::MaxPool(w) => maxpool::max_pool(s, x, *w)?,
                Layer::Add => arith::add(x, operands[1])?,
                Layer::Flatten => x.clone(),
                Layer::Relu => relu::relu(s, x)?,
                Layer::Poly { coefficients } => {
                    arch.options.activation.evaluate(s, x, coefficients)?
                }
            };
            y.reshape(out_shape)
        })
    }
}
