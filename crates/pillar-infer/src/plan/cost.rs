//! What an architecture costs: the correlations it consumes, its rounds and the words each
//! party sends, derived from the protocols' own counts.

use pillar_mpc::MpcError;
use pillar_mpc::dealer::Need;
use pillar_mpc::kernels::ConvGeometry;
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::{maxpool, weights};

use super::{Architecture, Layer};
use crate::error::{ArchitectureError, InferError, StepProblem};

impl Architecture {
    /// The correlations of the per-connection setup: one weight mask per weight.
    pub(crate) fn setup_needs(&self) -> Vec<Need> {
        let lens: Vec<usize> = self
            .weight_shapes
            .iter()
            .map(|s| s.iter().product())
            .collect();
        weights::open_weights_needs(&lens)
    }

    /// The correlations one inference of `batch` images consumes, in the order the run asks
    /// for them: what the offline phase fetches.
    pub fn needs(&self, batch: usize) -> Result<Vec<Need>, InferError> {
        let mut out = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let x = self.batch_shape(step.inputs[0], batch);
            let n: usize = x.iter().product();
            match &step.layer {
                Layer::Conv {
                    geometry, weight, ..
                } => out.extend(weights::conv2d_needs(
                    ConvGeometry { batch, ..*geometry },
                    *weight,
                )),
                Layer::Linear {
                    inputs,
                    outputs,
                    weight,
                    ..
                } => out.extend(weights::matmul_needs(batch, *inputs, *outputs, *weight)),
                Layer::Scale { weight } => {
                    let channels = x.get(1).copied().unwrap_or(0);
                    let inner = x.iter().skip(2).product();
                    out.extend(weights::scale_needs(n, channels, inner, *weight));
                }
                Layer::MaxPool(w) => {
                    out.extend(maxpool::needs(&x, *w).map_err(|e| self.step_err(i, e))?)
                }
                Layer::Relu => out.extend(ActivationProtocol::Relu.needs(n, 1)),
                Layer::Poly { coefficients } => out.extend(
                    self.options
                        .activation
                        .needs(n, coefficients.len().saturating_sub(1)),
                ),
                Layer::AvgPool(_) | Layer::GlobalAvgPool | Layer::Add | Layer::Flatten => {}
            }
        }
        Ok(out)
    }

    /// Communication rounds of one inference: the layers' rounds, plus one to deliver the
    /// logits to the client.
    pub fn rounds(&self) -> usize {
        self.layer_rounds() + 1
    }

    /// Rounds of the layers alone (the paper's count: linear layers plus activation layers
    /// for the single-round polynomial protocols).
    pub fn layer_rounds(&self) -> usize {
        self.steps
            .iter()
            .map(|s| match &s.layer {
                Layer::Conv { .. } | Layer::Linear { .. } | Layer::Scale { .. } => 1,
                Layer::MaxPool(w) => maxpool::rounds(w.kernel_h * w.kernel_w),
                Layer::Relu => ActivationProtocol::Relu.rounds(1),
                Layer::Poly { coefficients } => self
                    .options
                    .activation
                    .rounds(coefficients.len().saturating_sub(1)),
                Layer::AvgPool(_) | Layer::GlobalAvgPool | Layer::Add | Layer::Flatten => 0,
            })
            .sum()
    }

    /// Ring words `party` sends in the online phase of a batch of `batch`: the openings of
    /// every layer, and the server's share of the logits.
    pub fn online_words(&self, batch: usize, party: pillar_mpc::Party) -> usize {
        let layers: usize = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let x: usize = self.batch_shape(step.inputs[0], batch).iter().product();
                match &step.layer {
                    Layer::Conv { .. } | Layer::Linear { .. } | Layer::Scale { .. } => x,
                    Layer::MaxPool(w) => {
                        let out: usize = self.batch_shape(i + 1, batch).iter().product();
                        maxpool::words_sent(out, w.kernel_h * w.kernel_w)
                    }
                    Layer::Relu => ActivationProtocol::Relu.words_sent(x, 1),
                    Layer::Poly { coefficients } => self
                        .options
                        .activation
                        .words_sent(x, coefficients.len().saturating_sub(1)),
                    Layer::AvgPool(_) | Layer::GlobalAvgPool | Layer::Add | Layer::Flatten => 0,
                }
            })
            .sum();
        let reveal = if party.is_server() {
            batch * self.output_shape().iter().product::<usize>()
        } else {
            0
        };
        layers + reveal
    }

    /// Ring words each party sends in the setup: `W - B` for every weight.
    pub fn setup_words(&self) -> usize {
        self.weight_shapes
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum()
    }

    /// Words the dealer sends the client for one inference of `batch` (the offline phase's
    /// traffic; the server's share comes from a 32-byte seed).
    pub fn offline_words(&self, batch: usize) -> Result<usize, InferError> {
        Ok(self.needs(batch)?.iter().map(Need::correction_words).sum())
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
