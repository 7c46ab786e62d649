//! Nodes evaluated while importing: every operator of shape arithmetic or elementwise
//! arithmetic whose inputs are all constants (see [`crate::onnx::constant`]), and the
//! constant operands of polynomial arithmetic.

use super::{At, Cx, Importer, Inputs, Val, known};
use crate::error::NnError;
use crate::onnx::attrs::Attrs;
use crate::onnx::constant::{self, Arith, Folded, fits, show};
use crate::onnx::fuse::Poly;
use crate::onnx::symbolic::{Ints, Sym};

/// The operators folded when no input is an activation.
const FOLDED: [&str; 16] = [
    "Shape",
    "Reshape",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Gather",
    "Slice",
    "Expand",
    "ConstantOfShape",
    "Cast",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Neg",
];

impl<'m> Importer<'m> {
    /// The value of a node none of whose inputs is an activation, if its operator is one
    /// pillar folds; `None` otherwise.
    pub(super) fn fold(
        &mut self,
        cx: &Cx,
        op_type: &str,
        io: Inputs<'m>,
        attrs: &Attrs,
    ) -> Result<Option<Val<'m>>, NnError> {
        if !FOLDED.contains(&op_type) || io.0.input.iter().any(|i| self.is_activation(i)) {
            return Ok(None);
        }
        let (first, second) = (io.first(), io.second());
        let folded = match op_type {
            "Shape" => {
                io.arity(1, 1).at(cx)?;
                attrs.only(&["start", "end"]).at(cx)?;
                let dims = self.folded(cx, first)?.dims();
                let (start, end) = (attrs.int("start").at(cx)?, attrs.int("end").at(cx)?);
                Folded::Ints(constant::shape_of(&dims, start, end))
            }
            "Reshape" => {
                io.arity(2, 2).at(cx)?;
                attrs.only(&["allowzero"]).at(cx)?;
                let allowzero = attrs.int("allowzero").at(cx)?.unwrap_or(0) != 0;
                let data = self.folded(cx, first)?;
                let shape = self.ints(cx, second)?;
                constant::reshape(&data, &shape, allowzero, &mut self.budget).at(cx)?
            }
            "Unsqueeze" | "Squeeze" => {
                io.arity(1, 2).at(cx)?;
                attrs.only(&["axes"]).at(cx)?;
                let data = self.folded(cx, first)?;
                let axes = match (attrs.ints("axes").at(cx)?, io.get(1)) {
                    (Some(a), None) => Some(a.to_vec()),
                    (None, Some(a)) => Some(known(cx, &self.ints(cx, a)?)?),
                    (None, None) if op_type == "Squeeze" => None,
                    _ => return Err(cx.fail("needs its axes (as attribute or input)")),
                };
                if op_type == "Squeeze" {
                    constant::squeeze(&data, axes.as_deref(), &mut self.budget).at(cx)?
                } else {
                    let axes = axes.unwrap_or_default();
                    constant::unsqueeze(&data, &axes, &mut self.budget).at(cx)?
                }
            }
            "Concat" => {
                attrs.only(&["axis"]).at(cx)?;
                let axis = attrs
                    .int("axis")
                    .at(cx)?
                    .ok_or_else(|| cx.fail("has no axis attribute"))?;
                let mut parts = Vec::with_capacity(io.0.input.len());
                for i in &io.0.input {
                    parts.push(self.folded(cx, i)?);
                }
                constant::concat(&parts, axis, &mut self.budget).at(cx)?
            }
            "Gather" => {
                io.arity(2, 2).at(cx)?;
                attrs.only(&["axis"]).at(cx)?;
                let axis = attrs.int("axis").at(cx)?.unwrap_or(0);
                let (data, indices) = (self.folded(cx, first)?, self.folded(cx, second)?);
                constant::gather(&data, &indices, axis, &mut self.budget).at(cx)?
            }
            "Slice" => self.slice(cx, io, attrs)?,
            "Expand" => {
                io.arity(2, 2).at(cx)?;
                attrs.only(&[]).at(cx)?;
                let data = self.folded(cx, first)?;
                let shape = self.ints(cx, second)?;
                constant::expand(&data, &shape, &mut self.budget).at(cx)?
            }
            "ConstantOfShape" => {
                io.arity(1, 1).at(cx)?;
                attrs.only(&["value"]).at(cx)?;
                let shape = self.ints(cx, first)?;
                let value = attrs.tensor_in("value", self.external.as_mut()).at(cx)?;
                constant::constant_of_shape(&shape, value.as_ref()).at(cx)?
            }
            "Cast" => {
                io.arity(1, 1).at(cx)?;
                attrs.only(&["to", "saturate", "round_mode"]).at(cx)?;
                let to = attrs.int("to").at(cx)?.unwrap_or(0);
                let data = self.folded(cx, first)?;
                constant::cast(&data, i32::try_from(to).unwrap_or(0), &mut self.budget).at(cx)?
            }
            "Neg" => {
                io.arity(1, 1).at(cx)?;
                attrs.only(&[]).at(cx)?;
                let data = self.folded(cx, first)?;
                constant::neg(&data, &mut self.budget).at(cx)?
            }
            _ => {
                let Some(op) = Arith::parse(op_type) else {
                    return Ok(None);
                };
                io.arity(2, 2).at(cx)?;
                attrs.only(&[]).at(cx)?;
                let (a, b) = (self.folded(cx, first)?, self.folded(cx, second)?);
                constant::arith(op, &a, &b, &mut self.budget).at(cx)?
            }
        };
        Ok(Some(match folded {
            Folded::Dense(c) => Val::Const(c),
            Folded::Ints(i) => Val::Ints(i),
            Folded::Fill(f) => Val::Fill(f),
        }))
    }

    /// `Slice`: bounds as inputs (opset 10 on) or attributes (before).
    fn slice(&mut self, cx: &Cx, io: Inputs<'m>, attrs: &Attrs) -> Result<Folded, NnError> {
        attrs.only(&["starts", "ends", "axes"]).at(cx)?;
        let data = self.folded(cx, io.first())?;
        let mut input = |k: usize| -> Result<Option<Vec<i64>>, NnError> {
            match io.get(k) {
                Some(x) => Ok(Some(known(cx, &self.ints(cx, x)?)?)),
                None => Ok(None),
            }
        };
        let (starts, ends, axes, steps) = if let Some(s) = attrs.ints("starts").at(cx)? {
            io.arity(1, 1).at(cx)?;
            let e = attrs
                .ints("ends")
                .at(cx)?
                .ok_or_else(|| cx.fail("has starts but no ends"))?;
            let a = attrs.ints("axes").at(cx)?.map(<[i64]>::to_vec);
            (s.to_vec(), e.to_vec(), a, None)
        } else {
            io.arity(3, 5).at(cx)?;
            let (s, e) = (input(1)?, input(2)?);
            let (a, st) = (input(3)?, input(4)?);
            (s.unwrap_or_default(), e.unwrap_or_default(), a, st)
        };
        constant::slice(
            &data,
            &starts,
            &ends,
            axes.as_deref(),
            steps.as_deref(),
            &mut self.budget,
        )
        .at(cx)
    }

    /// Whether `x` names an activation (or a polynomial in one).
    pub(super) fn is_activation(&self, x: &str) -> bool {
        matches!(self.values.get(x), Some(Val::Poly(_)))
    }

    /// The shape of activation `x`, with the batch, if it is one.
    pub(super) fn activation_dims(&self, x: &str) -> Option<Vec<Sym>> {
        match self.values.get(x) {
            Some(Val::Poly(Poly { base: Some(v), .. })) => Some(
                std::iter::once(Sym::Batch)
                    .chain(self.shapes[*v].iter().map(|&d| Sym::Known(d as i64)))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// `x`, a constant, in the form folding works on.
    pub(super) fn folded(&mut self, cx: &Cx, x: &str) -> Result<Folded, NnError> {
        match self.values.get(x) {
            Some(Val::Ints(i)) => Ok(Folded::Ints(i.clone())),
            Some(Val::Fill(f)) => Ok(Folded::Fill(f.clone())),
            Some(Val::Padded { .. } | Val::Transformed { .. }) => Err(self.pending_misread(cx, x)),
            Some(Val::Poly(_)) => Err(cx.fail(format!(
                "input {x:?} is an activation, where pillar needs a constant"
            ))),
            _ => Ok(Folded::from_const(self.constant(cx, x, "input")?)),
        }
    }

    /// Whether `x` is a constant whose elements are all equal.
    pub(super) fn is_uniform(&mut self, cx: &Cx, x: &str) -> Result<bool, NnError> {
        if self.is_activation(x) {
            return Ok(false);
        }
        Ok(self.folded(cx, x)?.uniform().is_some())
    }

    /// `x` as an operand of polynomial arithmetic with `other`: an activation (or polynomial
    /// in one), or a constant whose elements are all equal and whose shape broadcasts to the
    /// activation `other` without enlarging it, which acts as a scalar.
    pub(super) fn operand(&mut self, cx: &Cx, x: &str, other: &str) -> Result<Poly, NnError> {
        if let Some(Val::Poly(p)) = self.values.get(x) {
            return Ok(p.clone());
        }
        let c = self.folded(cx, x)?;
        let dims = c.dims();
        let Some(value) = c.uniform() else {
            if let Folded::Ints(i) = &c
                && i.vals.contains(&Sym::Batch)
            {
                return Err(cx.fail(
                    "computes with the batch size; pillar uses shapes only to flatten (use \
                     x.flatten(1) or x.view(x.size(0), -1))",
                ));
            }
            if dims.contains(&Sym::Known(0)) {
                return Err(cx.fail(format!(
                    "operand {x:?} is an empty constant tensor (shape {})",
                    show(&dims)
                )));
            }
            return Err(cx.fail(format!(
                "operand {x:?} is a constant tensor of shape {} whose elements differ; pillar \
                 supports only scalar constants in elementwise arithmetic (or tensors whose \
                 elements are all equal): multiply or add a Python number, or move a \
                 per-channel scale or shift into the Conv, Linear or BatchNorm layer before it",
                show(&dims)
            )));
        };
        if let Some(act) = self.activation_dims(other)
            && !fits(&dims, &act, self.static_batch)
        {
            return Err(cx.fail(format!(
                "operand {x:?} of shape {} would broadcast the activation of shape {} to a \
                 larger shape; pillar supports only constants that broadcast to the \
                 activation's own shape (use a Python number or a tensor of size 1)",
                show(&dims),
                show(&act)
            )));
        }
        Ok(Poly::constant(value.get(), &cx.name))
    }

    /// `Squeeze` of an activation: what `x.squeeze()` after a global pool exports to, a
    /// flatten when only the batch and one axis remain.
    pub(super) fn squeeze_activation(
        &mut self,
        cx: &Cx,
        io: Inputs<'m>,
        attrs: &Attrs,
    ) -> Result<Val<'m>, NnError> {
        io.arity(1, 2).at(cx)?;
        attrs.only(&["axes"]).at(cx)?;
        let x = io.first();
        let dims = self
            .activation_dims(x)
            .ok_or_else(|| cx.fail(format!("input {x:?} is not an activation")))?;
        let axes = match (attrs.ints("axes").at(cx)?, io.get(1)) {
            (Some(a), None) => Some(a.to_vec()),
            (None, Some(a)) => Some(known(cx, &self.ints(cx, a)?)?),
            (None, None) => None,
            _ => return Err(cx.fail("has axes both as attribute and input")),
        };
        let out = constant::squeeze_dims(&dims, axes.as_deref()).at(cx)?;
        if out == dims {
            return self.alias(cx, x);
        }
        if !matches!(out.as_slice(), [Sym::Batch, Sym::Known(_)]) {
            return Err(cx.fail(format!(
                "squeezes an activation of shape {} to {}; pillar supports squeezing only to \
                 [N, F] (a flatten): use x.flatten(1)",
                show(&dims),
                show(&out)
            )));
        }
        let v = self.act(cx, x)?;
        let v = self.push(cx, crate::graph::Op::Flatten, vec![v])?;
        Ok(Val::Poly(Poly::value(v, &cx.name)))
    }

    /// `Expand` of an activation: only to its own shape, which changes nothing.
    pub(super) fn expand_activation(
        &mut self,
        cx: &Cx,
        x: &str,
        shape: &str,
    ) -> Result<Val<'m>, NnError> {
        let act = self
            .activation_dims(x)
            .ok_or_else(|| cx.fail(format!("input {x:?} is not an activation")))?;
        let shape: Ints = self.ints(cx, shape)?;
        let out = constant::broadcast(&act, &shape.vals).at(cx)?;
        if out != act {
            return Err(cx.fail(format!(
                "expands an activation of shape {} to {}; pillar cannot enlarge an activation \
                 (broadcast a constant to it instead, or leave the expand out)",
                show(&act),
                show(&out)
            )));
        }
        self.alias(cx, x)
    }
}
