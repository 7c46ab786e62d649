//! The public half of a plan, and the checks that make a received one safe to run.
//!
//! A client runs whatever architecture its server sends: every index the run follows and
//! every size it allocates comes from it. So an [`Architecture`] exists only checked: it is
//! made from an [`UncheckedArchitecture`] by `TryFrom`, which re-derives each step's output
//! shape and refuses anything that disagrees, and serde decodes through the same check (mpz's
//! `ExtendUnchecked`). [`Plan::compile`](super::Plan::compile) builds its architecture the
//! same way.

use std::ops::Deref;

use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::poly::MAX_DEGREE;
use pillar_mpc::{FixedPoint, RingTensor};
use pillar_nn::{OutputTransform, Schedule, ValueId, check_batch_shape};
use serde::{Deserialize, Serialize};

use super::{FixedConfig, Layer, Step, poly_fits};
use crate::error::{ArchitectureError, InferError, StepProblem};

/// Most elements of one value or weight, per image: far beyond ImageNet's largest activation
/// (64 x 112 x 112), small enough that no product of shapes overflows.
pub(crate) const MAX_ELEMENTS: usize = 1 << 28;

/// Most words a step gathers per image besides its output: a convolution's patch matrix
/// (im2col, `C kh kw x OH OW`) or a pooling's copy of every window (`C OH OW kh kw`). VGG-16's
/// widest convolution on ImageNet gathers 2^24.8; a server's architecture may not make the
/// client gather more than a value may hold, which the output-size check alone allows (a
/// window of 2^26 over 2^26 outputs is 2^52 words).
pub(crate) const MAX_GATHERED: usize = MAX_ELEMENTS;

/// The fields of an architecture as they arrive, before any check: what a test tampers with
/// and what [`Architecture`] is made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UncheckedArchitecture {
    /// Per-image input shape.
    pub input_shape: Vec<usize>,
    /// Per-image shape of every value, input first.
    pub shapes: Vec<Vec<usize>>,
    /// The layers in order.
    pub steps: Vec<Step>,
    /// The value returned.
    pub output: ValueId,
    /// Shapes of the weights, by number.
    pub weight_shapes: Vec<Vec<usize>>,
    /// Format and activation protocol.
    pub options: FixedConfig,
    /// What the client applies to the logits it learns (a final softmax), if anything. An
    /// older peer's architecture has none.
    #[serde(default, with = "transform_name")]
    pub output_transform: Option<OutputTransform>,
}

/// An output transform by its ONNX operator's name (pillar-nn's type has no serde).
mod transform_name {
    use pillar_nn::OutputTransform;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        t: &Option<OutputTransform>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(t.name()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OutputTransform>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|name| name.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// What the server shows the client: the network without its weights. Everything here is
/// public: shapes, pooling, the activation polynomials, the fixed-point format. Its fields
/// are read through `Deref`; it is checked once, when made, and holds the schedule every walk
/// of it follows.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "UncheckedArchitecture")]
pub struct Architecture {
    fields: UncheckedArchitecture,
    fixed: FixedPoint,
    schedule: Schedule,
}

impl Deref for Architecture {
    type Target = UncheckedArchitecture;

    fn deref(&self) -> &UncheckedArchitecture {
        &self.fields
    }
}

/// Written as its fields, without a copy.
impl Serialize for Architecture {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.fields.serialize(s)
    }
}

impl TryFrom<UncheckedArchitecture> for Architecture {
    type Error = InferError;

    /// Checks that the architecture is one the secure run can follow: values read only after
    /// they are computed, weights that exist with the shapes the layers use, and every layer's
    /// output shape what its input and parameters give.
    fn try_from(a: UncheckedArchitecture) -> Result<Self, InferError> {
        let fixed = a.options.fixed()?;
        a.check()?;
        let schedule = Schedule::new(a.steps.iter().map(|s| s.inputs.clone()).collect(), a.output)
            .map_err(ArchitectureError::from)?;
        Ok(Architecture {
            fields: a,
            fixed,
            schedule,
        })
    }
}

impl Architecture {
    /// Checks that no step truncates the client's input locally before anything has
    /// randomised its sharing. The secure run shares the input as `(0, x)` (the server's
    /// share is zero, which costs no traffic), and local truncation is right, up to a failure
    /// of probability `|v| / 2^64`, only for uniform shares: of `(0, x)` it comes out
    /// `2^(64-f)` off for every positive `x` (an average pool first was 2^47 units from the
    /// mirror). Products and the binary protocols give uniform shares. The mirror, which has
    /// no shares, runs any architecture; both parties check this before their setup.
    pub fn check_secure_input(&self) -> Result<(), ArchitectureError> {
        let mut whole = vec![true];
        for (index, step) in self.steps.iter().enumerate() {
            let reads_whole = step
                .inputs
                .iter()
                .all(|&v| whole.get(v).copied().unwrap_or(false));
            if reads_whole
                && let Some(what) = truncates_locally(&step.layer, self.options.activation)
            {
                return Err(ArchitectureError::Step {
                    index,
                    name: step.name.clone(),
                    problem: StepProblem::TruncatesInput { what },
                });
            }
            whole.push(reads_whole && keeps_sharing(&step.layer));
        }
        Ok(())
    }

    /// The fixed-point format.
    pub fn fixed(&self) -> FixedPoint {
        self.fixed
    }

    /// The order of the walk and when each value is freed.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The fields, to change them (and check them again).
    pub fn into_unchecked(self) -> UncheckedArchitecture {
        self.fields
    }

    /// Shape of value `v` for a batch of `batch`.
    pub fn batch_shape(&self, v: ValueId, batch: usize) -> Vec<usize> {
        std::iter::once(batch)
            .chain(self.shapes[v].iter().copied())
            .collect()
    }

    /// Per-image output shape.
    pub fn output_shape(&self) -> &[usize] {
        &self.shapes[self.output]
    }

    /// What the model returns for the `logits` a run opens (`[N, ...output_shape]`, ring
    /// words): decoded, with the output transform applied in `f64` (probabilities after a
    /// final softmax, log-probabilities after a log-softmax), row-major.
    pub fn outputs(&self, logits: &RingTensor) -> Vec<f64> {
        let mut v: Vec<f64> = logits
            .data()
            .iter()
            .map(|&w| self.fixed.decode(w))
            .collect();
        if let Some(t) = self.output_transform {
            t.apply_rows(&mut v, self.output_shape().iter().product());
        }
        v
    }

    /// The batch size of an input batch, which must be `[N, ...input_shape]`.
    pub fn check_input(&self, input: &RingTensor) -> Result<usize, InferError> {
        Ok(check_batch_shape(&self.input_shape, input.shape())?)
    }
}

impl UncheckedArchitecture {
    fn check(&self) -> Result<(), ArchitectureError> {
        if self.shapes.len() != self.steps.len() + 1 {
            return Err(ArchitectureError::ShapeCount {
                shapes: self.shapes.len(),
                steps: self.steps.len(),
            });
        }
        if self.shapes[0] != self.input_shape {
            return Err(ArchitectureError::InputShape);
        }
        if self.output == 0 || self.output > self.steps.len() {
            return Err(ArchitectureError::Output(self.output));
        }
        for s in self.shapes.iter().chain(&self.weight_shapes) {
            let elements = s
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .filter(|&n| n <= MAX_ELEMENTS);
            if s.is_empty() || s.contains(&0) || elements.is_none() {
                return Err(ArchitectureError::Size {
                    shape: s.clone(),
                    limit: MAX_ELEMENTS,
                });
            }
        }
        for (index, step) in self.steps.iter().enumerate() {
            self.check_step(index)
                .map_err(|problem| ArchitectureError::Step {
                    index,
                    name: step.name.clone(),
                    problem,
                })?;
        }
        Ok(())
    }

    fn check_step(&self, i: usize) -> Result<(), StepProblem> {
        let step = &self.steps[i];
        let arity = step.layer.arity();
        if step.inputs.len() != arity || step.inputs.iter().any(|&v| v > i) {
            return Err(StepProblem::Reads {
                inputs: step.inputs.clone(),
                arity,
            });
        }
        let x = &self.shapes[step.inputs[0]];
        let elements = |s: &[usize]| s.iter().product::<usize>();
        let misfit = || StepProblem::Input { input: x.clone() };
        let weight = |w: usize, expected: Vec<usize>| match self.weight_shapes.get(w) {
            None => Err(StepProblem::NoWeight(w)),
            Some(got) if *got != expected => Err(StepProblem::WeightShape {
                weight: w,
                got: got.clone(),
                expected,
            }),
            Some(_) => Ok(()),
        };
        let gathered = |what: &'static str, words: usize| match words {
            words if words <= MAX_GATHERED => Ok(()),
            _ => Err(StepProblem::Gathered {
                what,
                words,
                limit: MAX_GATHERED,
            }),
        };
        let expected: Vec<usize> = match &step.layer {
            Layer::Conv {
                geometry,
                weight: w,
                ..
            } => {
                geometry.validate().map_err(StepProblem::Geometry)?;
                if geometry.batch != 1 || geometry.input_shape()[1..] != x[..] {
                    return Err(misfit());
                }
                weight(*w, geometry.weight_shape())?;
                // `validate` formed the lengths checked; this bounds the work they describe.
                gathered("patch matrix (im2col)", geometry.patch_len())?;
                geometry.output_shape()[1..].to_vec()
            }
            Layer::Linear {
                inputs,
                outputs,
                weight: w,
                ..
            } => {
                if elements(x) != *inputs {
                    return Err(misfit());
                }
                weight(*w, vec![*inputs, *outputs])?;
                vec![*outputs]
            }
            Layer::Scale { weight: w } => {
                let Some(&channels) = x.first() else {
                    return Err(misfit());
                };
                weight(*w, vec![channels])?;
                x.clone()
            }
            Layer::AvgPool(window) | Layer::MaxPool(window) => {
                let &[c, h, w] = x.as_slice() else {
                    return Err(misfit());
                };
                // Shapes alone, before any index list exists.
                let (out, words) = window
                    .output_shape(&[1, c, h, w])
                    .map_err(StepProblem::Geometry)?;
                gathered("copy of every window", words)?;
                out[1..].to_vec()
            }
            Layer::GlobalAvgPool => {
                let &[c, _, _] = x.as_slice() else {
                    return Err(misfit());
                };
                vec![c, 1, 1]
            }
            Layer::Add => {
                if self.shapes[step.inputs[1]] != *x {
                    return Err(StepProblem::Add);
                }
                x.clone()
            }
            Layer::Flatten => vec![elements(x)],
            Layer::Relu => x.clone(),
            Layer::Clip { min, max } => {
                let finite = [min, max].into_iter().flatten().all(|v| v.is_finite());
                if !finite || matches!((min, max), (Some(lo), Some(hi)) if lo > hi) {
                    return Err(StepProblem::ClipBounds {
                        min: *min,
                        max: *max,
                    });
                }
                x.clone()
            }
            Layer::Poly { coefficients } => {
                if !poly_fits(coefficients) {
                    return Err(StepProblem::Coefficients {
                        count: coefficients.len(),
                        max: MAX_DEGREE + 1,
                    });
                }
                x.clone()
            }
        };
        if self.shapes[i + 1] != expected {
            return Err(StepProblem::OutputShape {
                declared: self.shapes[i + 1].clone(),
                derived: expected,
            });
        }
        Ok(())
    }
}

/// What a step that truncates its input locally, without a product first, is called in an
/// error, or `None` for a step that does not.
fn truncates_locally(layer: &Layer, activation: ActivationProtocol) -> Option<&'static str> {
    match layer {
        Layer::AvgPool(_) => Some("an average pooling"),
        Layer::GlobalAvgPool => Some("a global average pooling"),
        Layer::Poly { .. } => match activation {
            ActivationProtocol::Espn => Some("an ESPN polynomial (it scales its input first)"),
            ActivationProtocol::HoneyBadger => {
                Some("a HoneyBadger polynomial (it scales its input first)")
            }
            _ => None,
        },
        _ => None,
    }
}

/// Whether a step's output is shared as its inputs are: the local steps that do not
/// truncate (the pools that do are refused before). Products and the binary protocols give
/// uniformly random shares.
fn keeps_sharing(layer: &Layer) -> bool {
    matches!(layer, Layer::Add | Layer::Flatten)
}
