//! Values that are not layers: elementwise arithmetic (folded into polynomials, see
//! [`crate::onnx::fuse`]), constants, casts and aliases, and the shape of an activation (shape
//! arithmetic on it is folded, see [`super::fold`]).

use std::rc::Rc;

use super::{At, Cx, Importer, Inputs, Val};
use crate::error::NnError;
use crate::graph::Op;
use crate::onnx::attrs::Attrs;
use crate::onnx::constant;
use crate::onnx::fuse::{MAX_DEGREE, Poly};
use crate::onnx::proto::data_type;
use crate::onnx::tensor::{self, Const};

impl<'m> Importer<'m> {
    /// A default-domain operator that computes a value other than a layer's.
    pub(super) fn value_op(
        &mut self,
        cx: &Cx,
        op_type: &str,
        io: Inputs<'m>,
        attrs: &Attrs,
    ) -> Result<Val<'m>, NnError> {
        let (first, second) = (io.first(), io.second());
        match op_type {
            "Identity" => {
                io.arity(1, 1).at(cx)?;
                attrs.only(&[]).at(cx)?;
                self.alias(cx, first)
            }
            "Dropout" => {
                io.arity(1, 3).at(cx)?;
                attrs.only(&["seed", "ratio", "is_test"]).at(cx)?;
                if let Some(t) = io.get(2) {
                    let t = self.constant(cx, t, "training_mode")?;
                    if t.get(0).unwrap_or(0.0) != 0.0 {
                        return Err(cx.fail("training_mode is true; export in eval mode"));
                    }
                }
                self.alias(cx, first)
            }
            "Cast" => {
                io.arity(1, 1).at(cx)?;
                attrs.only(&["to", "saturate", "round_mode"]).at(cx)?;
                let to = attrs.int("to").at(cx)?.unwrap_or(0);
                self.cast(cx, first, to)
            }
            "Constant" => {
                io.arity(0, 0).at(cx)?;
                self.constant_node(cx, attrs)
            }
            "Add" | "Sub" | "Mul" | "Div" | "Pow" => {
                io.arity(2, 2).at(cx)?;
                attrs.only(&[]).at(cx)?;
                self.binary(cx, op_type, first, second)
            }
            "Neg" => {
                io.arity(1, 1).at(cx)?;
                attrs.only(&[]).at(cx)?;
                let p = self.operand(cx, first, first)?;
                let zero = Poly::constant(0.0, &cx.name);
                Ok(Val::Poly(zero.add_scaled(&p, -1.0, &cx.name).at(cx)?))
            }
            "Shape" => {
                io.arity(1, 1).at(cx)?;
                attrs.only(&["start", "end"]).at(cx)?;
                let Some(dims) = self.activation_dims(first) else {
                    return Err(cx.fail("takes the shape of something not an activation"));
                };
                let (start, end) = (attrs.int("start").at(cx)?, attrs.int("end").at(cx)?);
                Ok(Val::Ints(constant::shape_of(&dims, start, end)))
            }
            "Expand" => {
                io.arity(2, 2).at(cx)?;
                attrs.only(&[]).at(cx)?;
                self.expand_activation(cx, first, second)
            }
            // With an activation among their inputs: constants and shapes were folded.
            "Squeeze" => self.squeeze_activation(cx, io, attrs),
            "Gather" | "Slice" | "Unsqueeze" => Err(cx.fail(
                "is applied to an activation; pillar evaluates it only on constants and shapes \
                 while importing. Index, slice or (un)squeeze tensors in forward() only to \
                 compute shapes (x.size(0)); to flatten, use x.flatten(1) or \
                 x.view(x.size(0), -1)",
            )),
            "Concat" => Err(cx.fail(
                "concatenates activations; pillar has no concatenation (torch.cat) of \
                 activations, only chains of layers with residual additions",
            )),
            "ConstantOfShape" => Err(cx.fail(
                "takes a shape that is not constant; build it from x.size(...) or constants",
            )),
            _ => Err(cx.fail(
                "unsupported operator; pillar imports the layers of ordinary CNNs \
                 (convolutions, linear layers, BatchNorm, pools, ReLU), polynomial arithmetic \
                 and shape arithmetic (the list is in the documentation of pillar_nn::onnx): \
                 leave this operator out of forward() at inference or write it with those",
            )),
        }
    }

    /// `Add`, `Sub`, `Mul`, `Div` and `Pow`: polynomial arithmetic, a residual `Add` of two
    /// activations, or a bias.
    fn binary(&mut self, cx: &Cx, op: &str, a: &str, b: &str) -> Result<Val<'m>, NnError> {
        if op == "Add" {
            for (act, c) in [(a, b), (b, a)] {
                match self.bias(cx, act, c) {
                    Ok(Some(v)) => return Ok(Val::Poly(Poly::value(v, &cx.name))),
                    Ok(None) => {}
                    // Not a bias, but a tensor of equal elements is a scalar to polynomial
                    // arithmetic (`zeros_like(x) + ...`).
                    Err(_) if self.is_uniform(cx, c)? => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let (pa, pb) = (self.operand(cx, a, b)?, self.operand(cx, b, a)?);
        let two_values = pa.base.is_some() && pb.base.is_some() && pa.base != pb.base;
        let p = match op {
            "Add" if two_values => {
                let (va, vb) = (self.act(cx, a)?, self.act(cx, b)?);
                return Ok(Val::Poly(Poly::value(
                    self.push(cx, Op::Add, vec![va, vb])?,
                    &cx.name,
                )));
            }
            "Sub" if two_values => {
                return Err(cx.fail(
                    "subtracts two different activations; pillar has no elementwise difference",
                ));
            }
            "Add" => pa.add_scaled(&pb, 1.0, &cx.name),
            "Sub" => pa.add_scaled(&pb, -1.0, &cx.name),
            "Mul" => pa.mul(&pb, &cx.name),
            "Div" => match pb.constant_value() {
                Some(c) if c != 0.0 && c.is_finite() => Ok(pa.div_const(c, &cx.name)),
                _ => Err("divides by something other than a nonzero constant".into()),
            },
            _ => match pb.constant_value() {
                Some(e) if e.fract() == 0.0 && (0.0..=MAX_DEGREE as f64).contains(&e) => {
                    pa.pow(e as usize, &cx.name)
                }
                e => Err(format!(
                    "raises to {}; pillar fuses only integer powers 0 to {MAX_DEGREE}",
                    e.map_or("a non-constant exponent".to_string(), |e| e.to_string())
                )),
            },
        };
        Ok(Val::Poly(p.at(cx)?))
    }

    fn cast(&mut self, cx: &Cx, x: &str, to: i64) -> Result<Val<'m>, NnError> {
        let to = i32::try_from(to).unwrap_or(0);
        match self.values.get(x) {
            Some(Val::Poly(_)) if to == data_type::FLOAT => self.alias(cx, x),
            _ => Err(cx.fail(format!(
                "casts to {}; pillar computes in float only",
                tensor::type_name(to)
            ))),
        }
    }

    fn constant_node(&mut self, cx: &Cx, attrs: &Attrs) -> Result<Val<'m>, NnError> {
        attrs
            .only(&[
                "value",
                "value_float",
                "value_floats",
                "value_int",
                "value_ints",
            ])
            .at(cx)?;
        let c = if let Some(t) = attrs.tensor_in("value", self.external.as_mut()).at(cx)? {
            t
        } else if let Some(f) = attrs.float("value_float").at(cx)? {
            Const {
                dims: vec![],
                data: tensor::Data::F32(vec![f]),
            }
        } else if let Some(f) = attrs.floats("value_floats").at(cx)? {
            Const {
                dims: vec![f.len()],
                data: tensor::Data::F32(f.to_vec()),
            }
        } else if let Some(i) = attrs.int("value_int").at(cx)? {
            Const {
                dims: vec![],
                data: tensor::Data::I64(vec![i]),
            }
        } else if let Some(i) = attrs.ints("value_ints").at(cx)? {
            Const {
                dims: vec![i.len()],
                data: tensor::Data::I64(i.to_vec()),
            }
        } else {
            return Err(cx.fail("has no value attribute pillar reads"));
        };
        Ok(Val::Const(Rc::new(c)))
    }
}
