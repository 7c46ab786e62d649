//! What an architecture costs: the correlations it consumes, its rounds and the words each
//! party sends, derived from the protocols' own counts.

use pillar_mpc::MpcError;
use pillar_mpc::dealer::Need;
use pillar_mpc::kernels::ConvGeometry;
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::clip::Bounds;
use pillar_mpc::protocols::preprocessed::{LinearProtocol, LinearShape};
use pillar_mpc::protocols::{maxpool, weights};

use super::flow::{Flow, Kind};
use super::{Architecture, Layer, Parties};
use crate::error::{ArchitectureError, InferError, StepProblem};

/// Most words of any one buffer of a batch (a value, a gathered copy, a correlation's part):
/// no machine holds 2^40 words, and below it no count of the estimate overflows.
const MAX_BATCH_WORDS: usize = 1 << 40;

/// Where a batch's memory peaks, in words.
#[derive(Debug, Clone, Copy)]
pub(super) struct Peak {
    /// Everything held then.
    pub(super) words: usize,
    /// The step running.
    step: usize,
    /// Correlations fetched and not yet consumed.
    ahead: usize,
    /// The opened weights `F` (the client's, per connection).
    pub(super) weights: usize,
}

impl Architecture {
    /// The correlations one inference of `batch` images consumes, in the order the run asks
    /// for them: what the offline phase fetches.
    ///
    /// Under the preprocessed protocol, the correlations of the linear layers and the split
    /// polynomials come first, in step order: both parties take them in the offline phase.
    /// Those of the interactive steps follow, in step order, for the online phase.
    pub fn needs(&self, batch: usize) -> Result<Vec<Need>, InferError> {
        let mut out = Vec::new();
        if self.options.linear == LinearProtocol::Preprocessed {
            let flow = Flow::new(self, batch);
            for pass in [true, false] {
                for i in 0..self.steps.len() {
                    let offline = matches!(flow.kinds[i], Kind::Linear | Kind::Split(_));
                    if offline == pass {
                        out.extend(self.step_needs(i, batch)?);
                    }
                }
            }
            return Ok(out);
        }
        for i in 0..self.steps.len() {
            out.extend(self.step_needs(i, batch)?);
        }
        Ok(out)
    }

    /// The shape of linear step `i` for a batch of `batch` (`None` for another step).
    pub(crate) fn linear_shape(&self, i: usize, batch: usize) -> Option<LinearShape> {
        let step = &self.steps[i];
        let x = self.batch_shape(step.inputs[0], batch);
        match &step.layer {
            Layer::Conv { geometry, .. } => {
                Some(LinearShape::Conv(ConvGeometry { batch, ..*geometry }))
            }
            Layer::Linear {
                inputs, outputs, ..
            } => Some(LinearShape::Matmul {
                m: batch,
                k: *inputs,
                n: *outputs,
            }),
            Layer::Scale { .. } => Some(LinearShape::Scale {
                n: x.iter().product(),
                channels: x.get(1).copied().unwrap_or(0),
                inner: x.iter().skip(2).product(),
            }),
            _ => None,
        }
    }

    /// The correlations step `i` consumes for a batch of `batch`.
    pub(super) fn step_needs(&self, i: usize, batch: usize) -> Result<Vec<Need>, InferError> {
        let step = &self.steps[i];
        let x = self.batch_shape(step.inputs[0], batch);
        let n: usize = x.iter().product();
        if self.options.linear == LinearProtocol::Preprocessed
            && let (Some(shape), Some(mask)) = (self.linear_shape(i, batch), step.layer.weight())
        {
            return Ok(shape.needs(mask));
        }
        Ok(match &step.layer {
            Layer::Conv {
                geometry, weight, ..
            } => weights::conv2d_needs(ConvGeometry { batch, ..*geometry }, *weight),
            Layer::Linear {
                inputs,
                outputs,
                weight,
                ..
            } => weights::matmul_needs(batch, *inputs, *outputs, *weight),
            Layer::Scale { weight } => {
                let channels = x.get(1).copied().unwrap_or(0);
                let inner = x.iter().skip(2).product();
                weights::scale_needs(n, channels, inner, *weight)
            }
            Layer::MaxPool(w) => maxpool::needs(&x, *w).map_err(|e| self.step_err(i, e))?,
            Layer::Relu => ActivationProtocol::Relu.needs(n, 1),
            Layer::Clip { .. } => self.bounds(i).needs(n),
            Layer::Poly { coefficients } => self
                .options
                .activation
                .needs(n, coefficients.len().saturating_sub(1)),
            Layer::AvgPool(_) | Layer::GlobalAvgPool | Layer::Add | Layer::Flatten => Vec::new(),
        })
    }

    /// Checks that a batch of `batch` images fits in `limit` bytes by the client's estimate
    /// ([`Architecture::memory`]: [`Architecture::peak_words`] and its margin): what a client
    /// runs before its setup, so that a server's
    /// architecture cannot make it allocate beyond what its operator allows. The error names
    /// the step at the peak and what fills the memory there.
    pub fn check_memory(&self, batch: usize, limit: usize) -> Result<(), InferError> {
        let peak = self.peak(batch)?;
        let needs = self.memory_bytes(batch, Parties::Client)?;
        if needs > limit {
            return Err(self.memory_error(batch, limit, needs, peak));
        }
        Ok(())
    }

    /// The most ring words one party holds at once while it runs a batch of `batch`,
    /// estimated from the schedule: the opened weights `F` of the setup, the
    /// correlations fetched ahead and not yet consumed, the values alive at each step, and
    /// the step's own output and gathered buffers (a convolution's patch matrix, a pooling's
    /// windows, counted for the whole batch) with as much again for a protocol's
    /// intermediates. An estimate meant to bound, not to account for every allocation.
    pub fn peak_words(&self, batch: usize) -> Result<usize, InferError> {
        Ok(self.peak(batch)?.words)
    }

    pub(super) fn peak(&self, batch: usize) -> Result<Peak, InferError> {
        let per_image = |v: usize| self.shapes[v].iter().product::<usize>();
        // Every count below is at most `MAX_ELEMENTS` per image (the architecture's check),
        // so bounding the batch first keeps each product far from overflow.
        let largest = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                self.gathered(i)
                    .max(per_image(i + 1))
                    .max(per_image(s.inputs[0]))
            })
            .max()
            .unwrap_or(0)
            .max(per_image(0));
        if batch
            .checked_mul(largest)
            .is_none_or(|n| n > MAX_BATCH_WORDS)
        {
            return Err(ArchitectureError::Batch {
                batch,
                limit: MAX_BATCH_WORDS,
            }
            .into());
        }
        let weights = self.setup_words();
        // Under the preprocessed protocol the client holds every share it knows offline from
        // the offline phase until its step runs, and the server the client's offline posts:
        // counted as held throughout.
        let known = match self.options.linear {
            LinearProtocol::Preprocessed => {
                let flow = Flow::new(self, batch);
                let shares: usize = (0..flow.known.len())
                    .filter(|&v| flow.known[v])
                    .map(|v| batch * per_image(v))
                    .sum();
                shares.max(flow.offline_words())
            }
            LinearProtocol::Beaver => 0,
        };
        let mut ahead: Vec<usize> = Vec::with_capacity(self.steps.len() + 1);
        for i in 0..self.steps.len() {
            ahead.push(self.step_needs(i, batch)?.iter().map(Need::words).sum());
        }
        // Correlations not yet consumed when step i starts: those of steps i and after.
        ahead.push(0);
        for i in (0..self.steps.len()).rev() {
            ahead[i] = ahead[i].saturating_add(ahead[i + 1]);
        }
        let mut live = batch * per_image(0);
        let mut peak = Peak {
            words: weights
                .saturating_add(ahead[0])
                .saturating_add(live)
                .saturating_add(known),
            step: 0,
            ahead: ahead[0],
            weights,
        };
        for (i, step) in self.steps.iter().enumerate() {
            let output = batch * per_image(i + 1);
            let own = 2 * (output + batch * self.gathered(i));
            // A polynomial holds its input's powers (or their shares and openings) at once.
            let activation = match &step.layer {
                Layer::Relu | Layer::MaxPool(_) => 2 * batch * per_image(step.inputs[0]),
                // Two ReLUs in one batch.
                Layer::Clip { .. } => 4 * batch * per_image(step.inputs[0]),
                Layer::Poly { coefficients } => {
                    coefficients.len().max(2) * batch * per_image(step.inputs[0])
                }
                _ => 0,
            };
            let words = [weights, ahead[i], live, own, activation, known]
                .into_iter()
                .fold(0usize, usize::saturating_add);
            if words > peak.words {
                peak = Peak {
                    words,
                    step: i,
                    ahead: ahead[i],
                    weights,
                };
            }
            live += output;
            for &v in self.schedule().frees(i) {
                live -= batch * per_image(v);
            }
        }
        Ok(peak)
    }

    /// Words step `i` gathers per image besides its output (the architecture's check bounds
    /// them).
    fn gathered(&self, i: usize) -> usize {
        let step = &self.steps[i];
        let out: usize = self.shapes[i + 1].iter().product();
        match &step.layer {
            Layer::Conv { geometry, .. } => geometry.patch_len(),
            Layer::AvgPool(w) | Layer::MaxPool(w) => out * w.kernel_h * w.kernel_w,
            Layer::GlobalAvgPool => self.shapes[step.inputs[0]].iter().product(),
            _ => 0,
        }
    }

    fn memory_error(&self, batch: usize, limit: usize, needs: usize, peak: Peak) -> InferError {
        let mib = |words: usize| words as f64 * 8.0 / f64::from(1 << 20);
        ArchitectureError::Memory {
            batch,
            step: peak.step,
            name: self
                .steps
                .get(peak.step)
                .map_or_else(String::new, |s| s.name.clone()),
            mib: needs as f64 / f64::from(1 << 20),
            correlations_mib: mib(peak.ahead),
            weights_mib: mib(peak.weights),
            limit_mib: limit as f64 / f64::from(1 << 20),
        }
        .into()
    }

    /// Communication rounds of one inference: the layers' rounds, plus one to deliver the
    /// logits to the client.
    pub fn rounds(&self) -> usize {
        self.layer_rounds() + 1
    }

    /// Rounds of the layers alone (the paper's count: linear layers plus activation layers
    /// for the single-round polynomial protocols).
    ///
    /// Under the preprocessed protocol: a round for each message of the client's online posts,
    /// one for each split polynomial's reply, and the interactive steps' own.
    pub fn layer_rounds(&self) -> usize {
        if self.options.linear == LinearProtocol::Preprocessed {
            let flow = Flow::new(self, 1);
            let layers: usize = (0..self.steps.len())
                .map(|i| {
                    usize::from(flow.flush[i])
                        + usize::from(flow.replies[i] > 0)
                        + match flow.kinds[i] {
                            Kind::Interactive => self.step_rounds(i),
                            _ => 0,
                        }
                })
                .sum();
            return layers + usize::from(flow.flush_at_end);
        }
        (0..self.steps.len()).map(|i| self.step_rounds(i)).sum()
    }

    /// Rounds of step `i` under the Beaver protocol.
    pub(crate) fn step_rounds(&self, i: usize) -> usize {
        match &self.steps[i].layer {
            Layer::Conv { .. } | Layer::Linear { .. } | Layer::Scale { .. } => 1,
            Layer::MaxPool(w) => maxpool::rounds(w.kernel_h * w.kernel_w),
            Layer::Relu => ActivationProtocol::Relu.rounds(1),
            Layer::Clip { .. } => self.bounds(i).rounds(),
            Layer::Poly { coefficients } => self
                .options
                .activation
                .rounds(coefficients.len().saturating_sub(1)),
            Layer::AvgPool(_) | Layer::GlobalAvgPool | Layer::Add | Layer::Flatten => 0,
        }
    }

    /// Ring words `party` sends in the online phase of a batch of `batch`: the openings of
    /// every layer, and the server's share of the logits.
    pub fn online_words(&self, batch: usize, party: pillar_mpc::Party) -> usize {
        let layers: usize = if self.options.linear == LinearProtocol::Preprocessed {
            let flow = Flow::new(self, batch);
            let interactive: usize = (0..self.steps.len())
                .filter(|&i| flow.kinds[i] == Kind::Interactive)
                .map(|i| self.step_online_words(i, batch))
                .sum();
            let own = if party.is_server() {
                flow.replies.iter().sum()
            } else {
                flow.online_words()
            };
            interactive + own
        } else {
            (0..self.steps.len())
                .map(|i| self.step_online_words(i, batch))
                .sum()
        };
        let reveal = if party.is_server() {
            batch * self.output_shape().iter().product::<usize>()
        } else {
            0
        };
        layers + reveal
    }

    /// Ring words each party sends in step `i` of a batch of `batch` under the Beaver
    /// protocol (under the preprocessed one, at most as many).
    pub(super) fn step_online_words(&self, i: usize, batch: usize) -> usize {
        let step = &self.steps[i];
        let x: usize = self.batch_shape(step.inputs[0], batch).iter().product();
        match &step.layer {
            Layer::Conv { .. } | Layer::Linear { .. } | Layer::Scale { .. } => x,
            Layer::MaxPool(w) => {
                let out: usize = self.batch_shape(i + 1, batch).iter().product();
                maxpool::words_sent(out, w.kernel_h * w.kernel_w)
            }
            Layer::Relu => ActivationProtocol::Relu.words_sent(x, 1),
            Layer::Clip { .. } => self.bounds(i).words_sent(x),
            Layer::Poly { coefficients } => self
                .options
                .activation
                .words_sent(x, coefficients.len().saturating_sub(1)),
            Layer::AvgPool(_) | Layer::GlobalAvgPool | Layer::Add | Layer::Flatten => 0,
        }
    }

    /// Ring words the server sends in the setup: `F = W - B` for every weight.
    pub fn setup_words(&self) -> usize {
        self.weight_shapes
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum()
    }

    /// Ring words `party` sends in the setup: the server [`Architecture::setup_words`], the
    /// client none (under either protocol: the server knows `B`, the client's share is zero).
    pub fn setup_words_sent(&self, party: pillar_mpc::Party) -> usize {
        if party.is_server() {
            self.setup_words()
        } else {
            0
        }
    }

    /// Words the dealer sends the client for one inference of `batch` (the offline phase's
    /// traffic; the server's share comes from a 32-byte seed).
    pub fn offline_words(&self, batch: usize) -> Result<usize, InferError> {
        Ok(self.needs(batch)?.iter().map(Need::correction_words).sum())
    }

    /// Words the client sends the server in the offline phase of a batch of `batch`: its
    /// posts of shares known offline under the preprocessed protocol (none under Beaver's).
    pub fn offline_post_words(&self, batch: usize) -> usize {
        match self.options.linear {
            LinearProtocol::Preprocessed => Flow::new(self, batch).offline_words(),
            LinearProtocol::Beaver => 0,
        }
    }

    /// The bounds of step `i`, a `Clip` (none for another step).
    fn bounds(&self, i: usize) -> Bounds {
        self.steps[i]
            .layer
            .clip_bounds(self.fixed())
            .unwrap_or(Bounds { lo: None, hi: None })
    }

    fn step_err(&self, index: usize, e: MpcError) -> InferError {
        ArchitectureError::Step {
            index,
            name: self.steps[index].name.clone(),
            problem: StepProblem::Geometry(e),
        }
        .into()
    }
}
