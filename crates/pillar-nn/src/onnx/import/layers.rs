//! Layers: the operators that become pillar nodes (convolution, BatchNorm, fully connected
//! layers, pools, flattening, ReLU, `Clip`, pillar's `PolyAct`), the `Add` that is a bias,
//! the zero `Pad` folded into the layer after it, and the final `Softmax`.

use super::{At, Cx, Importer, Inputs, Val, known};
use crate::error::NnError;
use crate::graph::{BatchNorm, Clip, Conv2d, Linear, Op, OutputTransform, PolyAct, Pool, ValueId};
use crate::onnx::attrs::Attrs;
use crate::onnx::constant::{self, Folded};
use crate::onnx::fuse::Poly;
use crate::onnx::symbolic;
use crate::onnx::tensor::Const;
use crate::tensor::Tensor;

/// Largest kernel side, stride or padding accepted, far above any real network, so that
/// shape arithmetic cannot overflow.
const MAX_WINDOW: i64 = 1 << 16;

impl<'m> Importer<'m> {
    /// A default-domain layer; returns the value it produces.
    pub(super) fn layer(
        &mut self,
        cx: &Cx,
        op_type: &str,
        io: Inputs<'m>,
        attrs: &Attrs,
    ) -> Result<ValueId, NnError> {
        let (first, second) = (io.first(), io.second());
        match op_type {
            "Conv" => {
                io.arity(2, 3).at(cx)?;
                self.conv(cx, io, attrs)
            }
            "BatchNormalization" => {
                io.arity(5, 5).at(cx)?;
                attrs
                    .only(&["epsilon", "momentum", "training_mode", "spatial"])
                    .at(cx)?;
                if attrs.int("training_mode").at(cx)?.unwrap_or(0) != 0 {
                    return Err(cx.fail("training_mode = 1; export the model in eval mode"));
                }
                if attrs.int("spatial").at(cx)?.unwrap_or(1) != 1 {
                    return Err(cx.fail("spatial = 0 is not supported"));
                }
                let x = self.act(cx, first)?;
                let bn = BatchNorm {
                    gamma: self.vector(cx, io.get(1), "scale")?,
                    beta: self.vector(cx, io.get(2), "bias")?,
                    mean: self.vector(cx, io.get(3), "mean")?,
                    var: self.vector(cx, io.get(4), "variance")?,
                    eps: attrs.float("epsilon").at(cx)?.unwrap_or(1e-5),
                };
                self.push(cx, Op::BatchNorm(bn), vec![x])
            }
            "Gemm" => {
                io.arity(2, 3).at(cx)?;
                attrs.only(&["alpha", "beta", "transA", "transB"]).at(cx)?;
                for a in ["alpha", "beta"] {
                    if let Some(v) = attrs.float(a).at(cx)?.filter(|&v| v != 1.0) {
                        return Err(cx.fail(format!("{a} = {v} is not supported (only 1)")));
                    }
                }
                if attrs.int("transA").at(cx)?.unwrap_or(0) != 0 {
                    return Err(cx.fail("transA = 1 is not supported"));
                }
                let trans_b = attrs.int("transB").at(cx)?.unwrap_or(0) != 0;
                let x = self.act(cx, first)?;
                let w = self.constant(cx, second, "weight B")?;
                let weight = self.matrix(cx, &w, !trans_b)?;
                let out = weight.shape()[0];
                let bias = match io.get(2) {
                    None => None,
                    Some(c) => {
                        let c = self.constant(cx, c, "bias C")?;
                        let data = self.floats(cx, &c, "bias C", 2)?.1;
                        let data = match data.len() {
                            1 => vec![data[0]; out],
                            l if l == out && c.dims.last() == Some(&out) => data,
                            _ => {
                                return Err(cx.fail(format!(
                                    "bias C of shape {:?} does not broadcast to [N, {out}]",
                                    c.dims
                                )));
                            }
                        };
                        Some(Tensor::new(vec![out], data)?)
                    }
                };
                let lin = Linear { weight, bias };
                self.push(cx, Op::Linear(lin), vec![x])
            }
            "MatMul" => {
                io.arity(2, 2).at(cx)?;
                attrs.only(&[]).at(cx)?;
                let x = self.act(cx, first)?;
                let w = self.constant(cx, second, "right operand")?;
                let weight = self.matrix(cx, &w, true)?;
                let lin = Linear { weight, bias: None };
                self.push(cx, Op::Linear(lin), vec![x])
            }
            "Relu" => {
                io.arity(1, 1).at(cx)?;
                attrs.only(&[]).at(cx)?;
                let x = self.act(cx, first)?;
                self.push(cx, Op::Relu, vec![x])
            }
            "AveragePool" | "MaxPool" => {
                io.arity(1, 1).at(cx)?;
                let max = op_type == "MaxPool";
                let (x, padded) = self.padded_act(cx, first)?;
                if max && padded > 0 {
                    // A zero Pad is not max-pool padding (which never wins a maximum): the
                    // two agree only on inputs known to be >= 0.
                    return Err(cx.fail(format!(
                        "reads {first:?}, padded with zeros by a Pad; pillar does not fold zero \
                         padding into a max pool (max-pool padding is -inf, not 0): use \
                         MaxPool2d(..., padding={padded}) instead of F.pad in the PyTorch model"
                    )));
                }
                let pool = self.pool(cx, attrs, x, padded, max)?;
                let op = if max {
                    Op::MaxPool(pool)
                } else {
                    Op::AvgPool(pool)
                };
                self.push(cx, op, vec![x])
            }
            "Clip" => {
                let bounds = self.clip_bounds(cx, io, attrs)?;
                let x = self.act(cx, first)?;
                match bounds {
                    Clip {
                        min: None,
                        max: None,
                    } => Ok(x),
                    clip => self.push(cx, Op::Clip(clip), vec![x]),
                }
            }
            "GlobalAveragePool" => {
                io.arity(1, 1).at(cx)?;
                attrs.only(&[]).at(cx)?;
                let x = self.act(cx, first)?;
                self.push(cx, Op::GlobalAvgPool, vec![x])
            }
            "ReduceMean" => {
                // What the torch.export-based exporter writes for AdaptiveAvgPool2d(1).
                io.arity(1, 2).at(cx)?;
                attrs
                    .only(&["axes", "keepdims", "noop_with_empty_axes"])
                    .at(cx)?;
                let axes = match (attrs.ints("axes").at(cx)?, io.get(1)) {
                    (Some(a), None) => a.to_vec(),
                    (None, Some(a)) => known(cx, &self.ints(cx, a)?)?,
                    _ => vec![],
                };
                let x = self.act(cx, first)?;
                let mut axes: Vec<i64> = axes
                    .iter()
                    .map(|&a| if a < 0 { a + 4 } else { a })
                    .collect();
                axes.sort_unstable();
                if self.shapes[x].len() != 3 || axes != [2, 3] {
                    return Err(cx.fail(format!(
                        "averages axes {axes:?} of [N, {:?}]; pillar supports only the mean over \
                         each plane of an image (axes [2, 3], a global average pool)",
                        self.shapes[x]
                    )));
                }
                let v = self.push(cx, Op::GlobalAvgPool, vec![x])?;
                if attrs.int("keepdims").at(cx)?.unwrap_or(1) == 0 {
                    return self.push(cx, Op::Flatten, vec![v]);
                }
                Ok(v)
            }
            "Flatten" => {
                io.arity(1, 1).at(cx)?;
                attrs.only(&["axis"]).at(cx)?;
                let axis = attrs.int("axis").at(cx)?.unwrap_or(1);
                if axis != 1 {
                    return Err(cx.fail(format!(
                        "axis = {axis} is not supported (only 1: keep the batch, flatten the rest)"
                    )));
                }
                let x = self.act(cx, first)?;
                self.push(cx, Op::Flatten, vec![x])
            }
            "Reshape" => {
                io.arity(2, 2).at(cx)?;
                attrs.only(&["allowzero"]).at(cx)?;
                let allowzero = attrs.int("allowzero").at(cx)?.unwrap_or(0) != 0;
                let target = self.ints(cx, second)?;
                let x = self.act(cx, first)?;
                symbolic::is_flatten(&target, &self.shapes[x], self.static_batch, allowzero)
                    .at(cx)?;
                self.push(cx, Op::Flatten, vec![x])
            }
            _ => Err(cx.fail("unsupported operator")),
        }
    }

    fn conv(&mut self, cx: &Cx, io: Inputs<'m>, attrs: &Attrs) -> Result<ValueId, NnError> {
        attrs
            .only(&[
                "kernel_shape",
                "strides",
                "pads",
                "dilations",
                "group",
                "auto_pad",
            ])
            .at(cx)?;
        let group = attrs.int("group").at(cx)?.unwrap_or(1);
        if group != 1 {
            return Err(cx.fail(format!(
                "group = {group} (grouped or depthwise convolution) is not supported"
            )));
        }
        attrs.all_equal("dilations", 1).at(cx)?;
        auto_pad(attrs).at(cx)?;
        let (x, padded) = self.padded_act(cx, io.first())?;
        let w = self.constant(cx, io.second(), "weight")?;
        let (dims, data) = self.floats(cx, &w, "weight", 4)?;
        if dims.len() != 4 {
            return Err(cx.fail(format!(
                "weight of shape {dims:?}; pillar supports 2-d convolutions ([O, C, kh, kw])"
            )));
        }
        if let Some(k) = attrs.ints("kernel_shape").at(cx)?
            && k.iter()
                .map(|&d| usize::try_from(d).ok())
                .ne(dims[2..].iter().map(|&d| Some(d)))
        {
            return Err(cx.fail(format!(
                "kernel_shape {k:?} disagrees with the weight's {dims:?}"
            )));
        }
        let stride = symmetric(attrs.ints("strides").at(cx)?, 2, 1, "strides").at(cx)?;
        let padding = symmetric(attrs.ints("pads").at(cx)?, 4, 0, "pads").at(cx)? + padded;
        if stride == 0 {
            return Err(cx.fail("strides must be positive"));
        }
        let weight = Tensor::new(dims, data)?;
        let bias = match io.get(2) {
            None => None,
            Some(b) => {
                let b = self.constant(cx, b, "bias")?;
                let (dims, data) = self.floats(cx, &b, "bias", 1)?;
                Some(Tensor::new(dims, data)?)
            }
        };
        let conv = Conv2d {
            weight,
            bias,
            stride,
            padding,
        };
        self.push(cx, Op::Conv2d(conv), vec![x])
    }

    /// The window of an `AveragePool` or `MaxPool` (`max`) reading `x`, to which a zero `Pad`
    /// before it added `padded` on every side.
    fn pool(
        &mut self,
        cx: &Cx,
        attrs: &Attrs,
        x: ValueId,
        padded: usize,
        max: bool,
    ) -> Result<Pool, NnError> {
        attrs
            .only(&[
                "kernel_shape",
                "strides",
                "pads",
                "ceil_mode",
                "count_include_pad",
                "dilations",
                "storage_order",
                "auto_pad",
            ])
            .at(cx)?;
        auto_pad(attrs).at(cx)?;
        attrs.all_equal("dilations", 1).at(cx)?;
        let kernel = symmetric(attrs.ints("kernel_shape").at(cx)?, 2, -1, "kernel_shape").at(cx)?;
        let stride = symmetric(attrs.ints("strides").at(cx)?, 2, 1, "strides").at(cx)?;
        let own = symmetric(attrs.ints("pads").at(cx)?, 4, 0, "pads").at(cx)?;
        if kernel == 0 || stride == 0 {
            return Err(cx.fail("kernel_shape and strides must be positive"));
        }
        if !max && own > 0 && attrs.int("count_include_pad").at(cx)?.unwrap_or(0) == 0 {
            return Err(cx.fail(format!(
                "pads {own} with count_include_pad = 0 (the padding left out of each mean) is \
                 not supported; use AvgPool2d(..., padding={own}, count_include_pad=True), \
                 PyTorch's default"
            )));
        }
        // A Pad's zeros are part of the input: they count whatever count_include_pad says.
        let pad = own + padded;
        if 2 * pad > kernel {
            return Err(cx.fail(format!(
                "padding {pad}{} is more than half the {kernel}x{kernel} window; PyTorch \
                 refuses that too: use at most padding={}",
                if padded > 0 {
                    format!(" ({padded} of it from the Pad before it)")
                } else {
                    String::new()
                },
                kernel / 2
            )));
        }
        let s = self.shapes[x].clone();
        let pool = Pool {
            kernel,
            stride,
            pad,
        };
        if attrs.int("ceil_mode").at(cx)?.unwrap_or(0) != 0 {
            // Ceiling and floor agree when the windows tile the padded input exactly.
            let tiles = s.len() == 3
                && s[1..].iter().all(|&d| {
                    let d = d + 2 * pad;
                    d >= kernel && (d - kernel).is_multiple_of(stride)
                });
            if !tiles {
                return Err(cx.fail(format!(
                    "ceil_mode = 1 with windows that do not tile the {s:?} input padded by \
                     {pad} is not supported; use ceil_mode=False in the PyTorch model"
                )));
            }
        }
        Ok(pool)
    }

    pub(super) fn poly_act(
        &mut self,
        cx: &Cx,
        io: Inputs<'m>,
        attrs: &Attrs,
    ) -> Result<Val<'m>, NnError> {
        io.arity(1, 1).at(cx)?;
        attrs
            .only(&["coefficients", "range", "coefficients_f64", "range_f64"])
            .at(cx)?;
        let f32s = attrs.floats("coefficients").at(cx)?;
        let coefficients: Vec<f64> = match attrs.tensor("coefficients_f64").at(cx)? {
            Some(t) => {
                let v: Vec<f64> = (0..t.len()).filter_map(|i| t.get(i)).collect();
                if let Some(f) = f32s
                    && (f.len() != v.len() || f.iter().zip(&v).any(|(&a, &b)| a != b as f32))
                {
                    return Err(cx.fail(format!(
                        "coefficients {f:?} and coefficients_f64 {v:?} disagree"
                    )));
                }
                v
            }
            None => f32s
                .ok_or_else(|| cx.fail("has no coefficients attribute"))?
                .iter()
                .map(|&c| f64::from(c))
                .collect(),
        };
        let range = match attrs.tensor("range_f64").at(cx)? {
            Some(t) if t.len() == 1 => t.get(0).unwrap_or(0.0),
            Some(t) => return Err(cx.fail(format!("range_f64 of shape {:?}", t.dims))),
            None => match attrs.float("range").at(cx)? {
                Some(r) => f64::from(r),
                None => self.default_range,
            },
        };
        if !(range.is_finite() && range > 0.0) {
            return Err(cx.fail(format!("range {range} is not positive")));
        }
        let x = self.act(cx, io.first())?;
        let op = Op::PolyAct(PolyAct {
            coefficients,
            range,
        });
        Ok(Val::Poly(Poly::value(
            self.push(cx, op, vec![x])?,
            &cx.name,
        )))
    }

    /// `x` as an activation, with the zero padding a `Pad` before it left for the layer to
    /// take (0 if none).
    fn padded_act(&mut self, cx: &Cx, x: &str) -> Result<(ValueId, usize), NnError> {
        match self.values.get(x) {
            Some(&Val::Padded { value, pad }) => Ok((value, pad)),
            _ => Ok((self.act(cx, x)?, 0)),
        }
    }

    /// The error for a node that reads a `Pad`'s or a `Softmax`'s output where pillar cannot
    /// take it.
    pub(super) fn pending_misread(&self, cx: &Cx, x: &str) -> NnError {
        match self.values.get(x) {
            Some(Val::Transformed { transform, .. }) => cx.fail(format!(
                "reads {x:?}, the output of a {}; softmax is supported only as the last \
                 operator (apply it after the model, or leave it out of forward())",
                transform.name()
            )),
            _ => cx.fail(format!(
                "reads {x:?}, the output of a zero Pad; pillar folds a Pad only into the Conv or \
                 AveragePool that reads it: give that layer padding= in the PyTorch model \
                 instead of F.pad"
            )),
        }
    }

    /// The bounds of a `Clip`: inputs 1 and 2 from opset 11, attributes `min` and `max`
    /// before; an absent or infinite one is no bound.
    fn clip_bounds(&mut self, cx: &Cx, io: Inputs<'m>, attrs: &Attrs) -> Result<Clip, NnError> {
        attrs.only(&["min", "max"]).at(cx)?;
        let (amin, amax) = (attrs.float("min").at(cx)?, attrs.float("max").at(cx)?);
        let (min, max) = if amin.is_some() || amax.is_some() {
            io.arity(1, 1).at(cx)?;
            (amin, amax)
        } else {
            io.arity(1, 3).at(cx)?;
            let mut bound = |k: usize, what: &str| -> Result<Option<f32>, NnError> {
                let Some(name) = io.get(k) else {
                    return Ok(None);
                };
                let c = self.constant(cx, name, what)?;
                match c.get(0) {
                    Some(v) if c.len() == 1 => Ok(Some(v as f32)),
                    _ => Err(cx.fail(format!(
                        "its {what} has shape {:?}; pillar needs a scalar bound",
                        c.dims
                    ))),
                }
            };
            (bound(1, "min")?, bound(2, "max")?)
        };
        // Opsets before 11 write the float range's ends for an absent bound.
        let bound = |v: Option<f32>| v.filter(|v| v.is_finite() && v.abs() < f32::MAX);
        if let Some(v) = [min, max].into_iter().flatten().find(|v| v.is_nan()) {
            return Err(cx.fail(format!("bound {v} is not a number")));
        }
        let clip = Clip {
            min: bound(min),
            max: bound(max),
        };
        if let (Some(lo), Some(hi)) = (clip.min, clip.max)
            && lo > hi
        {
            return Err(cx.fail(format!(
                "min {lo} is above max {hi}; pillar clamps only to a nonempty range"
            )));
        }
        Ok(clip)
    }

    /// `Pad`: all-zero pads are an alias; zero padding of both spatial axes by the same amount
    /// on every side waits for the Conv or AveragePool that reads it, which takes it as its
    /// own padding (`Val::Padded`). The pads are `[x1_begin, x2_begin, ..., x1_end, ...]`,
    /// an attribute before opset 11 and input 1 after (with the value as input 2 and, from
    /// opset 18, the axes they apply to as input 3).
    pub(super) fn pad(
        &mut self,
        cx: &Cx,
        io: Inputs<'m>,
        attrs: &Attrs,
    ) -> Result<Val<'m>, NnError> {
        attrs.only(&["mode", "pads", "value"]).at(cx)?;
        let x = io.first();
        let (pads, value, axes) = match attrs.ints("pads").at(cx)? {
            Some(p) => {
                io.arity(1, 1).at(cx)?;
                (
                    p.to_vec(),
                    attrs.float("value").at(cx)?.unwrap_or(0.0),
                    None,
                )
            }
            None => {
                io.arity(2, 4).at(cx)?;
                let pads = known(cx, &self.ints(cx, io.second())?)?;
                let value = match io.get(2) {
                    None => 0.0,
                    Some(v) => {
                        let c = self.constant(cx, v, "constant_value")?;
                        match c.get(0) {
                            Some(v) if c.len() == 1 => v as f32,
                            _ => return Err(cx.fail("its constant_value is not a scalar")),
                        }
                    }
                };
                let axes = match io.get(3) {
                    None => None,
                    Some(a) => Some(known(cx, &self.ints(cx, a)?)?),
                };
                (pads, value, axes)
            }
        };
        if !matches!(
            self.values.get(x),
            Some(Val::Poly(_) | Val::Padded { .. } | Val::Transformed { .. })
        ) {
            // A constant: padded now, as any constant is folded.
            let mode = attrs.string("mode").at(cx)?.unwrap_or("constant");
            if mode != "constant" {
                return Err(cx.fail(format!(
                    "pads a constant in mode {mode}; pillar folds only mode constant"
                )));
            }
            let data = self.folded(cx, x)?;
            let per_axis = per_axis_pads(cx, &pads, axes.as_deref(), data.dims().len())?;
            let padded =
                constant::pad(&data, &per_axis, f64::from(value), &mut self.budget).at(cx)?;
            return Ok(match padded {
                Folded::Dense(c) => Val::Const(c),
                Folded::Ints(i) => Val::Ints(i),
                Folded::Fill(f) => Val::Fill(f),
            });
        }
        let shape = match self.values.get(x) {
            Some(Val::Poly(super::Poly { base: Some(v), .. })) => self.shapes[*v].clone(),
            Some(Val::Padded { value, pad }) => {
                let s = &self.shapes[*value];
                let mut s = s.clone();
                s.iter_mut().skip(1).for_each(|d| *d += 2 * pad);
                s
            }
            Some(Val::Transformed { .. }) => return Err(self.pending_misread(cx, x)),
            _ => {
                return Err(cx.fail(format!(
                    "pads {x:?}, which is not an activation; pillar folds only the padding of \
                     an activation into the layer after it"
                )));
            }
        };
        let rank = shape.len() + 1;
        let per_axis = per_axis_pads(cx, &pads, axes.as_deref(), rank)?;
        if per_axis.iter().all(|&p| p == (0, 0)) {
            return self.alias(cx, x);
        }
        let mode = attrs.string("mode").at(cx)?.unwrap_or("constant");
        if mode != "constant" {
            return Err(cx.fail(format!(
                "mode = {mode} is not supported: pillar folds only zero padding (mode constant) \
                 into the layer after it; use the layer's padding= in the PyTorch model"
            )));
        }
        if value != 0.0 {
            return Err(cx.fail(format!(
                "pads with the constant {value}; pillar folds only zero padding into the layer \
                 after it (F.pad(x, ..., value=0), or the layer's padding=)"
            )));
        }
        let what = format!("{pads:?}");
        if rank != 4 || per_axis[..2] != [(0, 0), (0, 0)] {
            return Err(cx.fail(format!(
                "pads {what} touch the batch or channel axis of [N, {}]; pillar folds only \
                 padding of the two spatial axes (F.pad(x, (p, p, p, p)), or the next layer's \
                 padding=)",
                super::join(&shape)
            )));
        }
        let p = per_axis[2].0;
        if per_axis[2..].iter().any(|&(b, e)| b != p || e != p) || !(1..=MAX_WINDOW).contains(&p) {
            return Err(cx.fail(format!(
                "pads {what} are not the same on all four sides of the image; pillar folds only \
                 symmetric zero padding: in PyTorch use padding=p on the next Conv or pool, or \
                 F.pad(x, (p, p, p, p))"
            )));
        }
        let p = p as usize;
        Ok(match self.values.get(x) {
            Some(&Val::Padded { value, pad }) => Val::Padded {
                value,
                pad: pad + p,
            },
            _ => Val::Padded {
                value: self.act(cx, x)?,
                pad: p,
            },
        })
    }

    /// `Softmax` or `LogSoftmax` over the classes of a flat output: the graph's output
    /// transform, if nothing but the graph output reads it (see `Importer::finish`).
    pub(super) fn softmax(
        &mut self,
        cx: &Cx,
        op_type: &str,
        io: Inputs<'m>,
        attrs: &Attrs,
    ) -> Result<Val<'m>, NnError> {
        io.arity(1, 1).at(cx)?;
        attrs.only(&["axis"]).at(cx)?;
        let transform = if op_type == "Softmax" {
            OutputTransform::Softmax
        } else {
            OutputTransform::LogSoftmax
        };
        let value = self.act(cx, io.first())?;
        let shape = &self.shapes[value];
        // Both the old default (1, over everything after the batch) and the new (-1, the last
        // axis) are the classes of `[N, K]`.
        let axis = attrs.int("axis").at(cx)?;
        if shape.len() != 1 || !matches!(axis, None | Some(1 | -1)) {
            return Err(cx.fail(format!(
                "over axis {} of [N, {}]; pillar supports a softmax only over the classes of a \
                 flat output [N, K] (dim=1), as the last operator",
                axis.map_or("(default)".to_string(), |a| a.to_string()),
                super::join(shape)
            )));
        }
        Ok(Val::Transformed { value, transform })
    }

    /// `act + c` as the bias of the layer producing `act`, when `c` is a constant tensor that
    /// is not a scalar and `act` is read by nothing else.
    pub(super) fn bias(&mut self, cx: &Cx, act: &str, c: &str) -> Result<Option<ValueId>, NnError> {
        let v = match self.values.get(act) {
            Some(Val::Poly(p)) if !p.computed && p.is_identity() => p.base.unwrap_or(0),
            _ => return Ok(None),
        };
        if !matches!(self.values.get(c), Some(Val::Init(_) | Val::Const(_))) {
            return Ok(None);
        }
        let c = self.constant(cx, c, "addend")?;
        if c.len() == 1 {
            return Ok(None);
        }
        let fresh = v == self.graph.nodes.len() && self.readers.get(act) == Some(&1);
        let node = self.graph.nodes.last_mut().filter(|_| fresh && v > 0);
        let (out, bias) = match node.map(|n| &mut n.op) {
            Some(Op::Linear(l)) => (l.weight.shape()[0], &mut l.bias),
            Some(Op::Conv2d(k)) => (k.weight.shape()[0], &mut k.bias),
            _ => {
                return Err(cx.fail(format!(
                    "adds a constant tensor of shape {:?}; pillar supports that only as the bias \
                     of the MatMul, Gemm or Conv right before it",
                    c.dims
                )));
            }
        };
        let conv = self.shapes[v].len() == 3;
        let fits = if conv {
            matches!(c.dims.as_slice(), [o, 1, 1] | [1, o, 1, 1] if *o == out)
        } else {
            matches!(c.dims.as_slice(), [o] | [1, o] if *o == out)
        };
        let data = match c.to_f32() {
            Some(d) if fits => d,
            _ => {
                return Err(cx.fail(format!(
                    "adds a constant of shape {:?}, not a bias for {out} channels",
                    c.dims
                )));
            }
        };
        let sum: Vec<f32> = match bias {
            Some(b) => b.data().iter().zip(&data).map(|(x, y)| x + y).collect(),
            None => data,
        };
        *bias = Some(Tensor::new(vec![out], sum)?);
        Ok(Some(v))
    }

    /// A float constant of rank at most `max_rank`, as pillar dimensions and f32 data.
    fn floats(
        &self,
        cx: &Cx,
        c: &Const,
        what: &str,
        max_rank: usize,
    ) -> Result<(Vec<usize>, Vec<f32>), NnError> {
        let data = c
            .to_f32()
            .ok_or_else(|| cx.fail(format!("its {what} is an integer tensor")))?;
        if c.dims.len() > max_rank || (max_rank == 1 && c.dims.len() != 1) {
            return Err(cx.fail(format!("its {what} has shape {:?}", c.dims)));
        }
        Ok((c.dims.clone(), data))
    }

    /// A 1-d float constant (BatchNorm parameters).
    fn vector(&mut self, cx: &Cx, x: Option<&str>, what: &str) -> Result<Vec<f32>, NnError> {
        let c = self.constant(cx, x.unwrap_or(""), what)?;
        Ok(self.floats(cx, &c, what, 1)?.1)
    }

    /// A 2-d constant as a `[out, in]` weight, transposing an `[in, out]` one.
    fn matrix(&self, cx: &Cx, c: &Const, transpose: bool) -> Result<Tensor, NnError> {
        let (dims, data) = self.floats(cx, c, "weight", 2)?;
        let &[r, k] = dims.as_slice() else {
            return Err(cx.fail(format!("weight of shape {dims:?}, expected a matrix")));
        };
        if !transpose {
            return Tensor::new(vec![r, k], data);
        }
        let mut t = vec![0f32; data.len()];
        for (i, row) in data.chunks(k.max(1)).enumerate().take(r) {
            for (j, &v) in row.iter().enumerate() {
                t[j * r + i] = v;
            }
        }
        Tensor::new(vec![k, r], t)
    }
}

/// Refuses `auto_pad` modes other than explicit padding.
fn auto_pad(attrs: &Attrs) -> Result<(), String> {
    match attrs.string("auto_pad")? {
        None | Some("NOTSET" | "VALID") => Ok(()),
        Some(other) => Err(format!(
            "auto_pad = {other} is not supported; export with explicit pads"
        )),
    }
}

/// The single value of a 2-d attribute that must be the same in every position (`len`
/// entries), or `default` if absent; `default < 0` makes it required.
fn symmetric(v: Option<&[i64]>, len: usize, default: i64, name: &str) -> Result<usize, String> {
    let Some(v) = v else {
        return usize::try_from(default).map_err(|_| format!("{name} is required"));
    };
    match v {
        [first, rest @ ..] if v.len() == len && rest.iter().all(|x| x == first) => {
            if (0..=MAX_WINDOW).contains(first) {
                Ok(*first as usize)
            } else {
                Err(format!("{name} = {v:?} is out of range"))
            }
        }
        _ => Err(format!(
            "{name} = {v:?} is not supported (pillar needs {len} equal values: square windows, \
             equal strides, symmetric padding)"
        )),
    }
}

/// `Pad`'s `pads` (`[begin..., end...]` over `axes`, all axes if none) as `(begin, end)` for
/// each axis of a rank-`rank` tensor.
fn per_axis_pads(
    cx: &Cx,
    pads: &[i64],
    axes: Option<&[i64]>,
    rank: usize,
) -> Result<Vec<(i64, i64)>, NnError> {
    let axes: Vec<usize> = match axes {
        None => (0..rank).collect(),
        Some(a) => a
            .iter()
            .map(|&k| {
                let k = if k < 0 { k + rank as i64 } else { k };
                usize::try_from(k).ok().filter(|&k| k < rank)
            })
            .collect::<Option<_>>()
            .ok_or_else(|| cx.fail(format!("axes {a:?} do not fit rank {rank}")))?,
    };
    if pads.len() != 2 * axes.len() {
        return Err(cx.fail(format!(
            "has {} pads for {} axes (pillar expects [begin..., end...])",
            pads.len(),
            axes.len()
        )));
    }
    let mut per_axis = vec![(0i64, 0i64); rank];
    for (j, &a) in axes.iter().enumerate() {
        per_axis[a] = (pads[j], pads[j + axes.len()]);
    }
    Ok(per_axis)
}
