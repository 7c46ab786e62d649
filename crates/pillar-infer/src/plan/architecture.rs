//! The public half of a plan, and the checks that make a received one safe to run.
//!
//! A client runs whatever architecture its server sends: every index the run follows and
//! every size it allocates comes from it. So an [`Architecture`] exists only checked: it is
//! made from an [`UncheckedArchitecture`] by `TryFrom`, which re-derives each step's output
//! shape and refuses anything that disagrees, and serde decodes through the same check (mpz's
//! `ExtendUnchecked`). [`Plan::compile`](super::Plan::compile) builds its architecture the
//! same way.

use std::ops::Deref;

use pillar_mpc::protocols::poly::MAX_DEGREE;
use pillar_mpc::{FixedPoint, RingTensor};
use pillar_nn::{NnError, Schedule, ValueId, check_batch_shape};
use serde::{Deserialize, Serialize};

use super::{FixedConfig, Layer, Step};
use crate::error::InferError;

/// Most elements of one value or weight, per image: far beyond ImageNet's largest activation
/// (64 x 112 x 112), small enough that no product of shapes overflows.
const MAX_ELEMENTS: usize = 1 << 28;

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
}

/// What the server shows the client: the network without its weights. Everything here is
/// public: shapes, pooling, the activation polynomials, the fixed-point format. Its fields
/// are read through `Deref`; it is checked once, when made, and holds the schedule every walk
/// of it follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedArchitecture", into = "UncheckedArchitecture")]
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

impl From<Architecture> for UncheckedArchitecture {
    fn from(a: Architecture) -> Self {
        a.fields
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
        let schedule = Schedule::new(a.steps.iter().map(|s| s.inputs.clone()).collect(), a.output)?;
        Ok(Architecture {
            fields: a,
            fixed,
            schedule,
        })
    }
}

impl Architecture {
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

    /// The batch size of an input batch, which must be `[N, ...input_shape]`.
    pub fn check_input(&self, input: &RingTensor) -> Result<usize, InferError> {
        Ok(check_batch_shape(&self.input_shape, input.shape())?)
    }
}

impl UncheckedArchitecture {
    fn check(&self) -> Result<(), InferError> {
        let bad =
            |detail: String| InferError::from(NnError::Graph(format!("architecture: {detail}")));
        if self.shapes.len() != self.steps.len() + 1 {
            return Err(bad(format!(
                "{} value shapes for {} steps",
                self.shapes.len(),
                self.steps.len()
            )));
        }
        if self.shapes[0] != self.input_shape {
            return Err(bad("the input's shape is not the first value's".into()));
        }
        if self.output == 0 || self.output > self.steps.len() {
            return Err(bad(format!("output value {} does not exist", self.output)));
        }
        for s in self.shapes.iter().chain(&self.weight_shapes) {
            let elements = s
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .filter(|&n| n <= MAX_ELEMENTS);
            if s.is_empty() || s.contains(&0) || elements.is_none() {
                return Err(bad(format!(
                    "shape {s:?} is empty or beyond {MAX_ELEMENTS} elements"
                )));
            }
        }
        for (i, step) in self.steps.iter().enumerate() {
            self.check_step(i)
                .map_err(|detail| bad(format!("step {i} ({:?}): {detail}", step.name)))?;
        }
        Ok(())
    }

    fn check_step(&self, i: usize) -> Result<(), String> {
        let step = &self.steps[i];
        let arity = step.layer.arity();
        if step.inputs.len() != arity || step.inputs.iter().any(|&v| v > i) {
            return Err(format!(
                "reads values {:?}; it takes {arity}, computed before it",
                step.inputs
            ));
        }
        let x = &self.shapes[step.inputs[0]];
        let elements = |s: &[usize]| s.iter().product::<usize>();
        let weight = |w: usize| {
            self.weight_shapes
                .get(w)
                .ok_or_else(|| format!("weight {w} does not exist"))
        };
        let expected: Vec<usize> = match &step.layer {
            Layer::Conv {
                geometry,
                weight: w,
                ..
            } => {
                geometry.validate().map_err(|e| e.to_string())?;
                if geometry.batch != 1 || geometry.input_shape()[1..] != x[..] {
                    return Err(format!("geometry {geometry:?} does not fit input {x:?}"));
                }
                if *weight(*w)? != geometry.weight_shape() {
                    return Err(format!("weight {w} is not {:?}", geometry.weight_shape()));
                }
                geometry.output_shape()[1..].to_vec()
            }
            Layer::Linear {
                inputs,
                outputs,
                weight: w,
                ..
            } => {
                if elements(x) != *inputs || *weight(*w)? != [*inputs, *outputs] {
                    return Err(format!(
                        "{inputs} -> {outputs} does not fit input {x:?} and weight {w}"
                    ));
                }
                vec![*outputs]
            }
            Layer::Scale { weight: w } => {
                if x.is_empty() || *weight(*w)? != [x[0]] {
                    return Err(format!("weight {w} is not one per channel of {x:?}"));
                }
                x.clone()
            }
            Layer::AvgPool(window) | Layer::MaxPool(window) => {
                let &[c, h, w] = x.as_slice() else {
                    return Err(format!("pools a [C, H, W] value, not {x:?}"));
                };
                let (oh, ow) = window.output(h, w).map_err(|e| e.to_string())?;
                vec![c, oh, ow]
            }
            Layer::GlobalAvgPool => {
                let &[c, _, _] = x.as_slice() else {
                    return Err(format!("pools a [C, H, W] value, not {x:?}"));
                };
                vec![c, 1, 1]
            }
            Layer::Add => {
                if self.shapes[step.inputs[1]] != *x {
                    return Err("adds values of different shapes".into());
                }
                x.clone()
            }
            Layer::Flatten => vec![elements(x)],
            Layer::Relu => x.clone(),
            Layer::Poly { coefficients } => {
                if coefficients.is_empty()
                    || coefficients.len() > MAX_DEGREE + 1
                    || coefficients.iter().any(|c| !c.is_finite())
                {
                    return Err(format!(
                        "{} coefficients: 1 to {} finite ones",
                        coefficients.len(),
                        MAX_DEGREE + 1
                    ));
                }
                x.clone()
            }
        };
        if self.shapes[i + 1] != expected {
            return Err(format!(
                "output shape {:?}, but its input and parameters give {expected:?}",
                self.shapes[i + 1]
            ));
        }
        Ok(())
    }
}
