//! ONNX model to [`Graph`]: one pass over the nodes in file order, mapping value names to
//! pillar values.
//!
//! A name stands for an activation (a pillar value, or a polynomial in one, see
//! [`super::fuse`]), a constant tensor (an initializer or `Constant` node, decoded when first
//! read, or computed from constants), a small integer vector (shape arithmetic, see
//! [`super::symbolic`]), or a tensor of equal elements whose shape may hold the batch size
//! (see [`super::constant`]). A node whose inputs are all constants is evaluated
//! ([`fold`]). Layers that pillar has become nodes; `Identity`, inference-mode `Dropout` and
//! casts to float are aliases; elementwise arithmetic is folded into polynomials, and an `Add`
//! of a constant tensor right after a `MatMul`, `Gemm` or `Conv` becomes that layer's bias.

mod fold;
mod layers;
mod values;

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::attrs::Attrs;
use super::constant::{Budget, Fill, Folded};
use super::error::OnnxError;
use super::external::External;
use super::fuse::{self, POLY_KEY_PREFIX, Poly, PolyMeta};
use super::proto::{DimensionValue, GraphProto, ModelProto, NodeProto, TensorProto, data_type};
use super::symbolic::{Ints, Sym};
use super::tensor::{self, Const};
use super::{DEFAULT_POLY_RANGE, POLY_DOMAIN, POLY_RANGE_KEY};
use crate::error::NnError;
use crate::graph::{Graph, Node, Op, OutputTransform, ValueId};
use crate::typed::TypedGraph;

/// Oldest default-domain opset read (`BatchNormalization` lost `spatial` and pools gained
/// their present attributes by 9; older models are rare and untested).
pub(crate) const MIN_OPSET: i64 = 9;
/// Newest default-domain opset read: the newest one whose operators pillar was checked
/// against. Newer ones are refused rather than guessed at.
pub(crate) const MAX_OPSET: i64 = 23;

/// Largest input dimension, and largest number of input elements per batch item.
const MAX_INPUT_DIM: i64 = 1 << 24;
const MAX_INPUT_ELEMENTS: usize = 1 << 31;
/// Largest activation (elements per batch item) a node may produce, so that no later shape
/// product overflows.
const MAX_ACTIVATION_ELEMENTS: usize = 1 << 36;

/// What an ONNX value name stands for.
#[derive(Debug, Clone)]
enum Val<'m> {
    /// An activation, or an elementwise polynomial in one.
    Poly(Poly),
    /// A constant not decoded yet.
    Init(&'m TensorProto),
    /// A decoded constant.
    Const(Rc<Const>),
    /// Shape arithmetic.
    Ints(Ints),
    /// A constant whose elements are all equal, of a shape that may hold the batch size.
    Fill(Fill),
    /// An activation with zero padding of `pad` on every side of its planes, waiting for the
    /// Conv or AveragePool that reads it (see `Importer::pad`).
    Padded { value: ValueId, pad: usize },
    /// An activation with a final softmax, which only the graph output may be.
    Transformed {
        value: ValueId,
        transform: OutputTransform,
    },
}

/// The node being imported, for errors.
struct Cx {
    name: String,
    op: String,
}

impl Cx {
    fn fail(&self, detail: impl Into<String>) -> NnError {
        NnError::Onnx(OnnxError::Node {
            node: self.name.clone(),
            op: self.op.clone(),
            detail: detail.into(),
        })
    }
}

/// Attaches the node to a message-only error.
trait At<T> {
    fn at(self, cx: &Cx) -> Result<T, NnError>;
}

impl<T> At<T> for Result<T, String> {
    fn at(self, cx: &Cx) -> Result<T, NnError> {
        self.map_err(|d| cx.fail(d))
    }
}

/// A node's inputs, where an empty name is an omitted optional input.
#[derive(Clone, Copy)]
struct Inputs<'m>(&'m NodeProto);

impl<'m> Inputs<'m> {
    /// Input `k`, unless absent or omitted.
    fn get(self, k: usize) -> Option<&'m str> {
        self.0
            .input
            .get(k)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Input 0, or "" (which no value has) if omitted.
    fn first(self) -> &'m str {
        self.get(0).unwrap_or("")
    }

    /// Input 1, or "".
    fn second(self) -> &'m str {
        self.get(1).unwrap_or("")
    }

    /// Checks that between `min` and `max` inputs are given, the first `min` of them present.
    fn arity(self, min: usize, max: usize) -> Result<(), String> {
        let given = self
            .0
            .input
            .iter()
            .rposition(|s| !s.is_empty())
            .map_or(0, |i| i + 1);
        if (min..=max).contains(&given) && (0..min).all(|k| self.get(k).is_some()) {
            Ok(())
        } else if min == max {
            Err(format!("takes {min} input(s), has {given}"))
        } else {
            Err(format!("takes {min} to {max} inputs, has {given}"))
        }
    }
}

/// Imports a decoded model, reading tensor data stored outside it from `external`.
pub(crate) fn import(
    model: &ModelProto,
    external: Option<External>,
    limits: &super::limits::Limits,
) -> Result<TypedGraph, NnError> {
    check_opsets(model)?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| model_err("the model has no graph"))?;
    let mut imp = Importer::new(model, graph)?;
    imp.external = external;
    imp.budget = Budget(limits.folded_bytes);
    for (i, node) in graph.node.iter().enumerate() {
        imp.node(i, node)?;
    }
    imp.finish(graph)
}

fn model_err(detail: impl Into<String>) -> NnError {
    NnError::Onnx(OnnxError::Model(detail.into()))
}

fn is_default_domain(d: &str) -> bool {
    d.is_empty() || d == "ai.onnx"
}

fn check_opsets(model: &ModelProto) -> Result<(), NnError> {
    let version = model
        .opset_import
        .iter()
        .find(|o| is_default_domain(o.domain.as_deref().unwrap_or("")))
        .and_then(|o| o.version)
        .ok_or_else(|| model_err("the model imports no version of the default ONNX opset"))?;
    if !(MIN_OPSET..=MAX_OPSET).contains(&version) {
        return Err(model_err(format!(
            "default opset {version} is not supported (pillar reads opsets {MIN_OPSET} to \
             {MAX_OPSET}; re-export with opset_version in that range)"
        )));
    }
    Ok(())
}

struct Importer<'m> {
    graph: Graph,
    /// Shape of every pillar value (without batch).
    shapes: Vec<Vec<usize>>,
    values: HashMap<&'m str, Val<'m>>,
    /// How many node inputs and graph outputs read each name.
    readers: HashMap<&'m str, usize>,
    node_names: HashSet<String>,
    /// The input's batch dimension, when the model fixes it.
    static_batch: Option<usize>,
    /// Exact polynomials recorded by pillar's exporter, by node name.
    poly_meta: HashMap<String, PolyMeta>,
    default_range: f64,
    /// The model's folder, for tensor data stored beside it.
    external: Option<External>,
    /// What constants computed while importing may still take.
    budget: Budget,
}

impl<'m> Importer<'m> {
    fn new(model: &'m ModelProto, graph: &'m GraphProto) -> Result<Self, NnError> {
        let mut values: HashMap<&'m str, Val<'m>> = HashMap::new();
        for t in &graph.initializer {
            let name = t.name.as_deref().unwrap_or("");
            if values.insert(name, Val::Init(t)).is_some() {
                return Err(model_err(format!("initializer {name:?} is defined twice")));
            }
        }
        let inputs: Vec<_> = graph
            .input
            .iter()
            .filter(|i| !values.contains_key(i.name.as_deref().unwrap_or("")))
            .collect();
        let [input] = inputs.as_slice() else {
            let names: Vec<_> = inputs
                .iter()
                .map(|i| i.name.as_deref().unwrap_or(""))
                .collect();
            return Err(model_err(format!(
                "the graph has {} inputs {names:?}; pillar supports exactly one",
                names.len()
            )));
        };
        let in_name = input.name.as_deref().unwrap_or("");
        let (static_batch, input_shape) = input_shape(input)?;
        values.insert(in_name, Val::Poly(Poly::value(0, in_name)));

        let mut readers: HashMap<&'m str, usize> = HashMap::new();
        for n in &graph.node {
            for i in n.input.iter().filter(|i| !i.is_empty()) {
                *readers.entry(i.as_str()).or_default() += 1;
            }
        }
        for o in &graph.output {
            *readers.entry(o.name.as_deref().unwrap_or("")).or_default() += 1;
        }

        let mut poly_meta = HashMap::new();
        let mut default_range = DEFAULT_POLY_RANGE;
        for entry in &model.metadata_props {
            let key = entry.key.as_deref().unwrap_or("");
            let value = entry.value.as_deref().unwrap_or("");
            if let Some(node) = key.strip_prefix(POLY_KEY_PREFIX) {
                poly_meta.insert(node.to_string(), fuse::parse_meta(key, value)?);
            } else if key == POLY_RANGE_KEY {
                default_range = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r > 0.0)
                    .ok_or_else(|| OnnxError::Metadata {
                        key: key.to_string(),
                        detail: format!("{value:?} is not a positive number"),
                    })?;
            }
        }
        Ok(Importer {
            shapes: vec![input_shape.clone()],
            graph: Graph::new(input_shape),
            values,
            readers,
            node_names: HashSet::new(),
            static_batch,
            poly_meta,
            default_range,
            external: None,
            budget: Budget(super::MAX_FOLDED_BYTES),
        })
    }

    fn node(&mut self, index: usize, n: &'m NodeProto) -> Result<(), NnError> {
        let op_type = n.op_type.as_deref().unwrap_or("");
        let domain = n.domain.as_deref().unwrap_or("");
        let op = if is_default_domain(domain) {
            op_type.to_string()
        } else {
            format!("{domain}.{op_type}")
        };
        let name = match n.name.as_deref() {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => format!("{op_type}_{index}"),
        };
        let cx = Cx { name, op };
        let out = match n.output.first() {
            Some(o) if !o.is_empty() => o.as_str(),
            _ => return Err(cx.fail("has no output")),
        };
        for (k, extra) in n.output.iter().enumerate().skip(1) {
            if !extra.is_empty() && self.readers.get(extra.as_str()).is_some_and(|&r| r > 0) {
                return Err(cx.fail(format!(
                    "its output {k} ({extra:?}) is read, but pillar supports only the first \
                     output"
                )));
            }
        }
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if self.values.contains_key(o.as_str()) {
                return Err(cx.fail(format!("redefines value {o:?}")));
            }
        }
        for i in n.input.iter().filter(|i| !i.is_empty()) {
            if !self.values.contains_key(i.as_str()) {
                return Err(cx.fail(format!(
                    "reads {i:?}, which no earlier node, initializer or graph input defines \
                     (nodes must be in topological order)"
                )));
            }
        }
        let attrs = Attrs(&n.attribute);
        let val = if is_default_domain(domain) {
            self.standard(&cx, op_type, n, &attrs)?
        } else if domain == POLY_DOMAIN && op_type == "PolyAct" {
            self.poly_act(&cx, Inputs(n), &attrs)?
        } else {
            return Err(cx.fail(format!(
                "unsupported operator (domain {domain:?}; pillar's own operators are in domain \
                 {POLY_DOMAIN:?})"
            )));
        };
        let ends_poly_act =
            matches!(&val, Val::Poly(p) if p.computed && self.poly_meta.contains_key(&p.origin));
        self.values.insert(out, val);
        if ends_poly_act {
            // The last node of a `PolyAct` that pillar wrote as standard operators: it becomes
            // a node here, where the original was, rather than merging into what reads it.
            self.act(&cx, out)?;
        }
        Ok(())
    }

    /// The default-domain operators: layers become nodes, the rest values.
    fn standard(
        &mut self,
        cx: &Cx,
        op_type: &str,
        n: &'m NodeProto,
        attrs: &Attrs,
    ) -> Result<Val<'m>, NnError> {
        let io = Inputs(n);
        if let Some(v) = self.fold(cx, op_type, io, attrs)? {
            return Ok(v);
        }
        match op_type {
            "Conv" | "BatchNormalization" | "Gemm" | "MatMul" | "Relu" | "AveragePool"
            | "MaxPool" | "GlobalAveragePool" | "ReduceMean" | "Flatten" | "Reshape" | "Clip" => {
                let v = self.layer(cx, op_type, io, attrs)?;
                Ok(Val::Poly(Poly::value(v, &cx.name)))
            }
            "Pad" => self.pad(cx, io, attrs),
            "Softmax" | "LogSoftmax" => self.softmax(cx, op_type, io, attrs),
            _ => self.value_op(cx, op_type, io, attrs),
        }
    }

    fn alias(&self, cx: &Cx, x: &str) -> Result<Val<'m>, NnError> {
        self.values
            .get(x)
            .cloned()
            .ok_or_else(|| cx.fail(format!("reads {x:?}, which is not defined")))
    }

    /// `x` as an activation, turning a computed polynomial into a `PolyAct` node (once: the
    /// name then stands for that node's value).
    fn act(&mut self, cx: &Cx, x: &str) -> Result<ValueId, NnError> {
        let p = match self.values.get(x) {
            Some(Val::Poly(p)) => p.clone(),
            Some(Val::Padded { .. } | Val::Transformed { .. }) => {
                return Err(self.pending_misread(cx, x));
            }
            _ => {
                return Err(cx.fail(format!(
                    "input {x:?} is a constant, where pillar expects an activation"
                )));
            }
        };
        let Some(base) = p.base else {
            return Err(cx.fail(format!(
                "input {x:?} is a constant expression, where pillar expects an activation"
            )));
        };
        let meta = self.poly_meta.get(&p.origin);
        if !p.computed || (p.is_identity() && meta.is_none()) {
            return Ok(base);
        }
        let key = format!("{POLY_KEY_PREFIX}{}", p.origin);
        let poly = fuse::resolve(
            p.trimmed(),
            meta.map(|m| (key.as_str(), m)),
            self.default_range,
        )?;
        let origin = Cx {
            name: p.origin.clone(),
            op: "PolyAct".into(),
        };
        let v = self.push(&origin, Op::PolyAct(poly), vec![base])?;
        if let Some(slot) = self.values.get_mut(x) {
            *slot = Val::Poly(Poly::value(v, &p.origin));
        }
        Ok(v)
    }

    /// `x` as a constant tensor, decoding an initializer on first use.
    fn constant(&mut self, cx: &Cx, x: &str, what: &str) -> Result<Rc<Const>, NnError> {
        match self.values.get(x) {
            Some(Val::Const(c)) => Ok(Rc::clone(c)),
            Some(Val::Init(t)) => {
                let c = tensor::decode_in(t, x, self.external.as_mut());
                let c = Rc::new(c.map_err(|e| cx.fail(e.to_string()))?);
                if let Some(slot) = self.values.get_mut(x) {
                    *slot = Val::Const(Rc::clone(&c));
                }
                Ok(c)
            }
            Some(Val::Fill(f)) => {
                let f = Folded::Fill(f.clone());
                let c = f.dense(&mut self.budget).map_err(|e| cx.fail(e))?;
                // Expanded once, however often it is read.
                if let Some(slot) = self.values.get_mut(x) {
                    *slot = Val::Const(Rc::clone(&c));
                }
                Ok(c)
            }
            Some(Val::Ints(i)) if !i.vals.contains(&Sym::Batch) => {
                let i = Folded::Ints(i.clone());
                i.dense(&mut self.budget).map_err(|e| cx.fail(e))
            }
            _ => Err(cx.fail(format!(
                "its {what} {x:?} is computed; pillar needs a constant (an initializer or a \
                 Constant node)"
            ))),
        }
    }

    /// `x` as shape arithmetic.
    fn ints(&mut self, cx: &Cx, x: &str) -> Result<Ints, NnError> {
        if let Some(Val::Ints(i)) = self.values.get(x) {
            return Ok(i.clone());
        }
        if let Some(Val::Fill(f)) = self.values.get(x) {
            let f = Folded::Fill(f.clone());
            return f.ints(&mut self.budget).ok_or_else(|| {
                cx.fail(format!(
                    "{x:?} should be an integer scalar or vector, has shape {}",
                    super::constant::show(&f.dims())
                ))
            });
        }
        let c = self.constant(cx, x, "shape operand")?;
        Ints::from_const(&c).ok_or_else(|| {
            cx.fail(format!(
                "{x:?} should be an integer scalar or vector, has shape {:?}",
                c.dims
            ))
        })
    }

    /// Appends a node (named after the ONNX node, made unique) and records its shape, with
    /// the shape checks of [`Graph::shapes`].
    fn push(&mut self, cx: &Cx, op: Op, inputs: Vec<ValueId>) -> Result<ValueId, NnError> {
        let mut name = cx.name.clone();
        let mut k = 1;
        while self.node_names.contains(&name) {
            name = format!("{}_{k}", cx.name);
            k += 1;
        }
        let shape = match (&op, inputs.as_slice()) {
            (Op::Add, &[a, b]) => {
                if self.shapes[a] != self.shapes[b] {
                    return Err(NnError::Node {
                        node: name,
                        op: "Add",
                        detail: format!("adds {:?} and {:?}", self.shapes[a], self.shapes[b]),
                    });
                }
                self.shapes[a].clone()
            }
            (_, &[x]) => Graph {
                input_shape: self.shapes[x].clone(),
                nodes: vec![Node {
                    name: name.clone(),
                    op: op.clone(),
                    inputs: vec![0],
                }],
                output: 1,
                output_transform: None,
            }
            .shapes()?
            .swap_remove(1),
            _ => return Err(cx.fail("internal: wrong number of inputs")),
        };
        if shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .is_none_or(|n| n > MAX_ACTIVATION_ELEMENTS)
        {
            return Err(cx.fail(format!(
                "its output of shape [N, {}] is too large",
                join(&shape)
            )));
        }
        self.node_names.insert(name.clone());
        self.shapes.push(shape);
        Ok(self.graph.push(name, op, inputs))
    }

    fn finish(mut self, graph: &'m GraphProto) -> Result<TypedGraph, NnError> {
        let [output] = graph.output.as_slice() else {
            return Err(model_err(format!(
                "the graph has {} outputs; pillar supports exactly one",
                graph.output.len()
            )));
        };
        let name = output.name.as_deref().unwrap_or("");
        let cx = Cx {
            name: format!("graph output {name:?}"),
            op: "output".into(),
        };
        if !self.values.contains_key(name) {
            return Err(model_err(format!(
                "the graph output {name:?} is never computed"
            )));
        }
        let v = match self.values.get(name) {
            Some(Val::Poly(Poly { base: Some(_), .. })) | Some(Val::Padded { .. }) => {
                self.act(&cx, name)?
            }
            Some(&Val::Transformed { value, transform }) => {
                self.graph.output_transform = Some(transform);
                value
            }
            _ => {
                return Err(model_err(format!(
                    "the graph output {name:?} is a constant, not computed from the input"
                )));
            }
        };
        self.graph.output = v;
        let declared = output
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .and_then(|t| t.shape.as_ref())
            .map(|s| {
                s.dim
                    .iter()
                    .skip(1)
                    .map(|d| match d.value {
                        Some(DimensionValue::DimValue(v)) => usize::try_from(v).ok(),
                        _ => None,
                    })
                    .collect::<Option<Vec<usize>>>()
            });
        if let Some(Some(declared)) = declared
            && declared != self.shapes[v]
        {
            return Err(model_err(format!(
                "the graph output {name:?} is declared [N, {}] but pillar computes [N, {}]",
                join(&declared),
                join(&self.shapes[v])
            )));
        }
        self.graph.typed()
    }
}

/// `[2, 3]` as `2, 3`.
fn join(dims: &[usize]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Integer values of shape arithmetic that must not depend on the batch.
fn known(cx: &Cx, i: &Ints) -> Result<Vec<i64>, NnError> {
    i.vals
        .iter()
        .map(|s| match s {
            Sym::Known(k) => Ok(*k),
            Sym::Batch => Err(cx.fail("uses the batch size where a constant is needed")),
        })
        .collect()
}

/// The graph input's shape without batch, and the batch size if fixed.
fn input_shape(
    input: &super::proto::ValueInfoProto,
) -> Result<(Option<usize>, Vec<usize>), NnError> {
    let name = input.name.as_deref().unwrap_or("");
    let bad = |detail: String| model_err(format!("graph input {name:?}: {detail}"));
    let tensor = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| bad("is not a tensor".into()))?;
    if let Some(t) = tensor.elem_type.filter(|&t| t != data_type::FLOAT) {
        return Err(bad(format!(
            "has element type {}; pillar needs float",
            tensor::type_name(t)
        )));
    }
    let dims = &tensor
        .shape
        .as_ref()
        .ok_or_else(|| bad("has no shape".into()))?
        .dim;
    let Some((batch, rest)) = dims.split_first().filter(|(_, rest)| !rest.is_empty()) else {
        return Err(bad(format!(
            "has rank {}; pillar needs a batch dimension and at least one more",
            dims.len()
        )));
    };
    let static_batch = match batch.value {
        Some(DimensionValue::DimValue(b)) => usize::try_from(b).ok().filter(|&b| b > 0),
        _ => None,
    };
    let mut shape = Vec::with_capacity(rest.len());
    for (i, d) in rest.iter().enumerate() {
        match &d.value {
            Some(DimensionValue::DimValue(v)) if (1..=MAX_INPUT_DIM).contains(v) => {
                shape.push(*v as usize);
            }
            Some(DimensionValue::DimValue(v)) => {
                return Err(bad(format!("dimension {} is {v}", i + 1)));
            }
            Some(DimensionValue::DimParam(p)) => {
                return Err(bad(format!(
                    "dimension {} is symbolic ({p:?}); pillar needs fixed sizes after the batch",
                    i + 1
                )));
            }
            None => return Err(bad(format!("dimension {} is unknown", i + 1))),
        }
    }
    if shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .is_none_or(|n| n > MAX_INPUT_ELEMENTS)
    {
        return Err(bad(format!("shape {shape:?} is too large")));
    }
    Ok((static_batch, shape))
}
