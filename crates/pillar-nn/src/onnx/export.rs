//! [`TypedGraph`] to ONNX: opset 13, weights as raw little-endian f32 initializers, a symbolic
//! batch dimension `N`, node names kept. `PolyAct` becomes `Mul` and `Add` nodes over its
//! powers, which every runtime runs (see [`super::fuse`] for how the importer turns those back
//! into one node), or, if asked, pillar's own operator.

use std::collections::HashSet;

use super::attrs;
use super::fuse::{self, POLY_KEY_PREFIX};
use super::proto::{
    Dimension, DimensionValue, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorShapeProto, TypeProto, TypeTensor, ValueInfoProto, data_type,
};
use super::tensor::{encode_f32, encode_f64};
use super::{POLY_DOMAIN, SaveOptions};
use crate::error::NnError;
use crate::graph::{Op, PolyAct};
use crate::tensor::Tensor;
use crate::typed::TypedGraph;

/// The default-domain opset written.
pub(crate) const OPSET: i64 = 13;
/// The IR version that goes with opset 13.
const IR_VERSION: i64 = 7;

/// Builds the model for `g`.
pub(crate) fn export(g: &TypedGraph, opts: &SaveOptions) -> Result<ModelProto, NnError> {
    let shapes = g.shapes();
    let mut ex = Exporter {
        node_names: g.nodes.iter().map(|n| n.name.clone()).collect(),
        ..Exporter::default()
    };
    let input = ex.fresh("input");
    let output = ex.fresh("output");
    let mut values = vec![input.clone()];
    let transform = g.output_transform;
    if g.output == 0 && transform.is_none() {
        ex.node("output", "Identity", vec![input.clone()], &output, vec![]);
    }
    for (i, node) in g.nodes.iter().enumerate() {
        let out = if i + 1 == g.output && transform.is_none() {
            output.clone()
        } else {
            ex.fresh(&node.name)
        };
        let inputs: Vec<String> = node.inputs.iter().map(|&v| values[v].clone()).collect();
        ex.op(&node.name, &node.op, inputs, &out, opts);
        values.push(out);
    }
    if let Some(t) = transform {
        // Over the last axis of `[N, K]`: the default from opset 13 on, written anyway.
        let name = ex.fresh(&t.name().to_lowercase());
        let logits = values[g.output].clone();
        ex.node(
            &name,
            t.name(),
            vec![logits],
            &output,
            vec![attrs::int("axis", -1)],
        );
    }
    let graph = GraphProto {
        node: ex.nodes,
        name: Some("pillar".into()),
        initializer: ex.initializers,
        input: vec![value_info(&input, &g.input_shape)],
        output: vec![value_info(&output, &shapes[g.output])],
        ..Default::default()
    };
    let mut opset_import = vec![OperatorSetIdProto {
        domain: Some(String::new()),
        version: Some(OPSET),
    }];
    if ex.custom {
        opset_import.push(OperatorSetIdProto {
            domain: Some(POLY_DOMAIN.into()),
            version: Some(1),
        });
    }
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import,
        producer_name: Some("pillar".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(graph),
        metadata_props: ex.metadata,
        ..Default::default()
    })
}

/// `[N, ...shape]` float.
fn value_info(name: &str, shape: &[usize]) -> ValueInfoProto {
    let batch = Dimension {
        value: Some(DimensionValue::DimParam("N".into())),
        denotation: None,
    };
    let dims = shape.iter().map(|&d| Dimension {
        value: Some(DimensionValue::DimValue(d as i64)),
        denotation: None,
    });
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeTensor {
                elem_type: Some(data_type::FLOAT),
                shape: Some(TensorShapeProto {
                    dim: std::iter::once(batch).chain(dims).collect(),
                }),
            }),
            denotation: None,
        }),
        doc_string: None,
    }
}

#[derive(Default)]
struct Exporter {
    nodes: Vec<NodeProto>,
    initializers: Vec<super::proto::TensorProto>,
    metadata: Vec<StringStringEntryProto>,
    /// Value and initializer names in use.
    names: HashSet<String>,
    /// The graph's node names, which the nodes of a `PolyAct` written as standard operators
    /// must not take (the importer finds such a `PolyAct` by its node name).
    node_names: HashSet<String>,
    /// Whether a `pillar.PolyAct` node was written.
    custom: bool,
}

impl Exporter {
    /// `base`, or `base_1`, `base_2`, ... if taken.
    fn fresh(&mut self, base: &str) -> String {
        self.fresh_avoiding(base, false)
    }

    /// A name for a value and node inside a `PolyAct`'s standard-operator form, which must not
    /// be the name of one of the graph's nodes either.
    fn fresh_internal(&mut self, base: &str) -> String {
        self.fresh_avoiding(base, true)
    }

    fn fresh_avoiding(&mut self, base: &str, node_names: bool) -> String {
        let taken = |ex: &Self, n: &String| {
            ex.names.contains(n) || (node_names && ex.node_names.contains(n))
        };
        let mut name = base.to_string();
        let mut k = 1;
        while taken(self, &name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.names.insert(name.clone());
        name
    }

    fn node(
        &mut self,
        name: &str,
        op_type: &str,
        input: Vec<String>,
        output: &str,
        attribute: Vec<super::proto::AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            input,
            output: vec![output.into()],
            name: Some(name.into()),
            op_type: Some(op_type.into()),
            domain: None,
            attribute,
            doc_string: None,
        });
    }

    /// A weight initializer named after its node; returns the name.
    fn weight(&mut self, node: &str, what: &str, t: &Tensor) -> String {
        self.vector(node, what, t.shape(), t.data())
    }

    fn vector(&mut self, node: &str, what: &str, dims: &[usize], data: &[f32]) -> String {
        let name = self.fresh(&format!("{node}.{what}"));
        self.initializers.push(encode_f32(&name, dims, data));
        name
    }

    fn op(&mut self, name: &str, op: &Op, mut inputs: Vec<String>, out: &str, opts: &SaveOptions) {
        let pair = |k: usize| vec![k as i64; 2];
        match op {
            Op::Conv2d(c) => {
                inputs.push(self.weight(name, "weight", &c.weight));
                if let Some(b) = &c.bias {
                    inputs.push(self.weight(name, "bias", b));
                }
                let shape = c.weight.shape();
                let kernel = vec![shape[2] as i64, shape[3] as i64];
                let a = vec![
                    attrs::ints("kernel_shape", &kernel),
                    attrs::ints("strides", &pair(c.stride)),
                    attrs::ints("pads", &[c.padding as i64; 4]),
                    attrs::ints("dilations", &[1, 1]),
                    attrs::int("group", 1),
                ];
                self.node(name, "Conv", inputs, out, a);
            }
            Op::BatchNorm(bn) => {
                let n = bn.gamma.len();
                for (what, v) in [
                    ("scale", &bn.gamma),
                    ("bias", &bn.beta),
                    ("mean", &bn.mean),
                    ("var", &bn.var),
                ] {
                    inputs.push(self.vector(name, what, &[n], v));
                }
                let a = vec![attrs::float("epsilon", bn.eps)];
                self.node(name, "BatchNormalization", inputs, out, a);
            }
            Op::Linear(l) => {
                inputs.push(self.weight(name, "weight", &l.weight));
                if let Some(b) = &l.bias {
                    inputs.push(self.weight(name, "bias", b));
                }
                self.node(name, "Gemm", inputs, out, vec![attrs::int("transB", 1)]);
            }
            Op::AvgPool(p) | Op::MaxPool(p) => {
                let mut a = vec![
                    attrs::ints("kernel_shape", &pair(p.kernel)),
                    attrs::ints("strides", &pair(p.stride)),
                ];
                if p.pad > 0 {
                    a.push(attrs::ints("pads", &[p.pad as i64; 4]));
                    if matches!(op, Op::AvgPool(_)) {
                        a.push(attrs::int("count_include_pad", 1));
                    }
                }
                self.node(name, op.name(), inputs, out, a);
            }
            Op::Clip(c) => {
                // Opset 13: the bounds are optional inputs, "" where absent.
                for (what, bound) in [("min", c.min), ("max", c.max)] {
                    inputs.push(match bound {
                        Some(b) => self.vector(name, what, &[], &[b]),
                        None => String::new(),
                    });
                }
                while inputs.last().is_some_and(String::is_empty) {
                    inputs.pop();
                }
                self.node(name, "Clip", inputs, out, vec![]);
            }
            Op::Flatten => self.node(name, "Flatten", inputs, out, vec![attrs::int("axis", 1)]),
            Op::GlobalAvgPool | Op::Add | Op::Relu => {
                self.node(name, op.name(), inputs, out, vec![])
            }
            Op::PolyAct(p) if opts.poly_as_subgraph => {
                let x = inputs.swap_remove(0);
                self.poly_subgraph(name, p, x, out);
            }
            Op::PolyAct(p) => {
                let f32s: Vec<f32> = p.coefficients.iter().map(|&c| c as f32).collect();
                let a = vec![
                    attrs::floats("coefficients", &f32s),
                    attrs::float("range", p.range as f32),
                    attrs::tensor(
                        "coefficients_f64",
                        encode_f64(&[p.coefficients.len()], &p.coefficients),
                    ),
                    attrs::tensor("range_f64", encode_f64(&[], &[p.range])),
                ];
                self.node(name, "PolyAct", inputs, out, a);
                if let Some(n) = self.nodes.last_mut() {
                    n.domain = Some(POLY_DOMAIN.into());
                }
                self.custom = true;
            }
        }
    }

    /// `sum_k c_k x^k` as `x^k = x^(k-1) * x`, `t_k = x^k * c_k` (zero terms above the linear
    /// one left out), summed with `Add`; the last node carries the `PolyAct`'s name and output,
    /// and a metadata entry keeps the exact coefficients and the range.
    fn poly_subgraph(&mut self, name: &str, p: &PolyAct, x: String, out: &str) {
        let c = &p.coefficients;
        let mut terms: Vec<(usize, f32)> = (1..c.len().max(2))
            .map(|k| (k, c.get(k).copied().unwrap_or(0.0) as f32))
            .filter(|&(k, ck)| k == 1 || ck != 0.0)
            .collect();
        let c0 = c.first().copied().unwrap_or(0.0) as f32;
        // One `Mul` per term, one `Add` per term after the first, one `Add` for c0.
        let steps = 2 * terms.len() - 1 + usize::from(c0 != 0.0);
        let mut emitted = 0;
        // The value named `out` is whichever node comes last.
        let mut next = |ex: &mut Self, what: String| {
            emitted += 1;
            if emitted == steps {
                (name.to_string(), out.to_string())
            } else {
                let v = ex.fresh_internal(&format!("{name}/{what}"));
                (v.clone(), v)
            }
        };
        let mut power = x.clone();
        let mut degree = 1;
        let mut sum: Option<String> = None;
        for (k, ck) in terms.drain(..) {
            while degree < k {
                let v = self.fresh_internal(&format!("{name}/x{}", degree + 1));
                self.node(&v, "Mul", vec![power.clone(), x.clone()], &v, vec![]);
                power = v;
                degree += 1;
            }
            let coef = self.vector(name, &format!("c{k}"), &[], &[ck]);
            let (node, term) = next(self, format!("term{k}"));
            self.node(&node, "Mul", vec![power.clone(), coef], &term, vec![]);
            sum = Some(match sum {
                None => term,
                Some(s) => {
                    let (node, v) = next(self, format!("sum{k}"));
                    self.node(&node, "Add", vec![s, term], &v, vec![]);
                    v
                }
            });
        }
        if c0 != 0.0 {
            let coef = self.vector(name, "c0", &[], &[c0]);
            let (node, v) = next(self, "sum0".into());
            self.node(&node, "Add", vec![sum.unwrap_or(x), coef], &v, vec![]);
        }
        self.metadata.push(StringStringEntryProto {
            key: Some(format!("{POLY_KEY_PREFIX}{name}")),
            value: Some(fuse::format_meta(p)),
        });
    }
}
