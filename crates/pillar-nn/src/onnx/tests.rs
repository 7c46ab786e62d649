//! Hand-built models: the patterns the importer accepts beyond what the fixtures show, and
//! an error, naming the node, for each thing it refuses.
#![allow(clippy::unwrap_used)]

use prost::Message;

use super::error::OnnxError;
use super::limits::Limits;
use super::proto::*;
use super::{from_bytes, from_bytes_within, tensor};
use crate::error::NnError;
use crate::graph::Op;
use crate::typed::TypedGraph;

pub(super) fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    output: &str,
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        name: (!name.is_empty()).then(|| name.to_string()),
        op_type: Some(op.to_string()),
        attribute: attrs,
        ..Default::default()
    }
}

pub(super) fn dims(d: &[DimensionValue]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some("x".into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeTensor {
                elem_type: Some(data_type::FLOAT),
                shape: Some(TensorShapeProto {
                    dim: d
                        .iter()
                        .map(|v| Dimension {
                            value: Some(v.clone()),
                            denotation: None,
                        })
                        .collect(),
                }),
            }),
            denotation: None,
        }),
        doc_string: None,
    }
}

/// An input `x` of shape `[N, ...shape]`.
pub(super) fn input(shape: &[i64]) -> ValueInfoProto {
    let mut d = vec![DimensionValue::DimParam("N".into())];
    d.extend(shape.iter().map(|&s| DimensionValue::DimValue(s)));
    dims(&d)
}

pub(super) fn model(
    input: ValueInfoProto,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    out: &str,
) -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: inits,
            input: vec![input],
            output: vec![ValueInfoProto {
                name: Some(out.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn f32s(name: &str, d: &[usize], v: &[f32]) -> TensorProto {
    tensor::encode_f32(name, d, v)
}

pub(super) fn scalar(name: &str, v: f32) -> TensorProto {
    f32s(name, &[], &[v])
}

pub(super) fn i64s(name: &str, v: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: vec![v.len() as i64],
        data_type: Some(data_type::INT64),
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

pub(super) fn load(m: &ModelProto) -> Result<TypedGraph, NnError> {
    from_bytes(&m.encode_to_vec())
}

#[track_caller]
pub(super) fn fails(m: &ModelProto, needles: &[&str]) {
    let err = load(m).unwrap_err().to_string();
    for n in needles {
        assert!(err.contains(n), "{err:?} should mention {n:?}");
    }
}

fn conv_model(attrs: Vec<AttributeProto>) -> ModelProto {
    model(
        input(&[1, 5, 5]),
        vec![node("Conv", "conv", &["x", "w"], "y", attrs)],
        vec![f32s("w", &[2, 1, 3, 3], &[0.1; 18])],
        "y",
    )
}

#[test]
fn unsupported_operators_and_attributes_are_named() {
    let m = model(
        input(&[4]),
        vec![node("Erf", "erf", &["x"], "y", vec![])],
        vec![],
        "y",
    );
    let err = load(&m).unwrap_err().to_string();
    assert!(
        err.starts_with("node \"erf\" (Erf): unsupported operator; "),
        "{err}"
    );
    assert!(
        err.contains("leave this operator out of forward()"),
        "{err}"
    );
    // An unnamed node is named after its operator and position.
    let m = model(
        input(&[4]),
        vec![
            node("Relu", "", &["x"], "r", vec![]),
            node("Tanh", "", &["r"], "y", vec![]),
        ],
        vec![],
        "y",
    );
    fails(&m, &["\"Tanh_1\" (Tanh)"]);
    fails(
        &conv_model(vec![super::attrs::int("group", 2)]),
        &["\"conv\" (Conv)", "group = 2"],
    );
    fails(
        &conv_model(vec![super::attrs::ints("pads", &[0, 0, 1, 1])]),
        &["\"conv\"", "pads = [0, 0, 1, 1]", "symmetric"],
    );
    fails(
        &conv_model(vec![super::attrs::ints("strides", &[1, 2])]),
        &["strides = [1, 2]"],
    );
    fails(
        &conv_model(vec![super::attrs::ints("dilations", &[2, 2])]),
        &["dilations = [2, 2]"],
    );
    let same = AttributeProto {
        name: Some("auto_pad".into()),
        r#type: Some(attribute_type::STRING),
        s: Some(b"SAME_UPPER".to_vec()),
        ..Default::default()
    };
    fails(&conv_model(vec![same]), &["auto_pad = SAME_UPPER"]);
    fails(
        &conv_model(vec![super::attrs::int("bogus", 1)]),
        &["attribute \"bogus\" is not supported"],
    );
    fails(
        &conv_model(vec![super::attrs::float("group", 1.0)]),
        &["\"group\" should be an int"],
    );
    let gemm = |a: Vec<AttributeProto>| {
        model(
            input(&[3]),
            vec![node("Gemm", "fc", &["x", "w"], "y", a)],
            vec![f32s("w", &[2, 3], &[0.5; 6])],
            "y",
        )
    };
    fails(
        &gemm(vec![super::attrs::float("alpha", 2.0)]),
        &["\"fc\" (Gemm)", "alpha = 2"],
    );
    fails(&gemm(vec![super::attrs::int("transA", 1)]), &["transA"]);
    let bn = model(
        input(&[2, 3, 3]),
        vec![node(
            "BatchNormalization",
            "bn",
            &["x", "s", "b", "m", "v"],
            "y",
            vec![super::attrs::int("training_mode", 1)],
        )],
        ["s", "b", "m", "v"]
            .iter()
            .map(|n| f32s(n, &[2], &[1.0, 1.0]))
            .collect(),
        "y",
    );
    fails(&bn, &["\"bn\" (BatchNormalization)", "eval mode"]);
    let mut custom = model(
        input(&[4]),
        vec![node("Gelu", "g", &["x"], "y", vec![])],
        vec![],
        "y",
    );
    custom.graph.as_mut().unwrap().node[0].domain = Some("com.microsoft".into());
    fails(
        &custom,
        &["\"g\" (com.microsoft.Gelu)", "unsupported operator"],
    );
}

#[test]
fn malformed_tensors_are_named() {
    let short = TensorProto {
        float_data: vec![0.0; 17],
        raw_data: None,
        ..f32s("w", &[2, 1, 3, 3], &[])
    };
    let m = model(
        input(&[1, 5, 5]),
        vec![node("Conv", "conv", &["x", "w"], "y", vec![])],
        vec![short],
        "y",
    );
    fails(
        &m,
        &[
            "\"conv\" (Conv)",
            "tensor \"w\"",
            "float_data holds 17 elements",
            "need 18",
        ],
    );
    let mut ragged = f32s("w", &[2, 1, 3, 3], &[0.0; 18]);
    ragged.raw_data.as_mut().unwrap().push(0);
    let m = model(
        input(&[1, 5, 5]),
        vec![node("Conv", "conv", &["x", "w"], "y", vec![])],
        vec![ragged],
        "y",
    );
    fails(&m, &["tensor \"w\"", "73 bytes"]);
    let mut external = f32s("w", &[2, 1, 3, 3], &[0.0; 18]);
    external.data_location = Some(1);
    let m = model(
        input(&[1, 5, 5]),
        vec![node("Conv", "conv", &["x", "w"], "y", vec![])],
        vec![external],
        "y",
    );
    fails(&m, &["tensor \"w\"", "external file"]);
    let huge = TensorProto {
        dims: vec![1 << 40, 1 << 40],
        ..f32s("w", &[], &[])
    };
    let m = model(
        input(&[1, 5, 5]),
        vec![node("Conv", "conv", &["x", "w"], "y", vec![])],
        vec![huge],
        "y",
    );
    fails(&m, &["tensor \"w\"", "overflow"]);
    let negative = TensorProto {
        dims: vec![-2],
        ..f32s("w", &[], &[])
    };
    let m = model(
        input(&[1, 5, 5]),
        vec![node("Conv", "conv", &["x", "w"], "y", vec![])],
        vec![negative],
        "y",
    );
    fails(&m, &["dimension -2"]);
    // float_data instead of raw_data loads.
    let typed = TensorProto {
        float_data: vec![0.25; 18],
        raw_data: None,
        ..f32s("w", &[2, 1, 3, 3], &[])
    };
    let m = model(
        input(&[1, 5, 5]),
        vec![node("Conv", "conv", &["x", "w"], "y", vec![])],
        vec![typed],
        "y",
    );
    let g = load(&m).unwrap();
    let Op::Conv2d(c) = &g.nodes[0].op else {
        panic!()
    };
    assert_eq!(c.weight.data(), [0.25; 18]);
}

#[test]
fn malformed_graphs_are_refused() {
    let relu = || vec![node("Relu", "r", &["x"], "y", vec![])];
    let mut two = model(input(&[4]), relu(), vec![], "y");
    two.graph.as_mut().unwrap().input.push(ValueInfoProto {
        name: Some("z".into()),
        ..input(&[4])
    });
    fails(&two, &["2 inputs", "exactly one"]);
    let unsorted = model(
        input(&[4]),
        vec![
            node("Relu", "b", &["a"], "y", vec![]),
            node("Relu", "a", &["x"], "a", vec![]),
        ],
        vec![],
        "y",
    );
    fails(
        &unsorted,
        &["\"b\" (Relu)", "reads \"a\"", "topological order"],
    );
    let twice = model(
        input(&[4]),
        vec![
            node("Relu", "a", &["x"], "y", vec![]),
            node("Relu", "b", &["x"], "y", vec![]),
        ],
        vec![],
        "y",
    );
    fails(&twice, &["\"b\"", "redefines value \"y\""]);
    let symbolic = dims(&[
        DimensionValue::DimParam("N".into()),
        DimensionValue::DimParam("H".into()),
    ]);
    fails(
        &model(symbolic, relu(), vec![], "y"),
        &["graph input \"x\"", "symbolic (\"H\")"],
    );
    fails(&model(input(&[]), relu(), vec![], "y"), &["rank 1"]);
    fails(
        &model(input(&[4]), relu(), vec![], "nowhere"),
        &["\"nowhere\" is never computed"],
    );
    let mut no_opset = model(input(&[4]), relu(), vec![], "y");
    no_opset.opset_import.clear();
    fails(&no_opset, &["no version of the default ONNX opset"]);
    let mut declared = model(input(&[4]), relu(), vec![], "y");
    declared.graph.as_mut().unwrap().output[0] = ValueInfoProto {
        name: Some("y".into()),
        ..input(&[5])
    };
    fails(&declared, &["declared [N, 5] but pillar computes [N, 4]"]);
    let constant_out = model(input(&[4]), relu(), vec![scalar("c", 1.0)], "c");
    fails(&constant_out, &["graph output \"c\" is a constant"]);
    // Sizes that would overflow shape arithmetic later are refused where they arise.
    let wide = model(
        input(&[1, 1, 1]),
        vec![node(
            "Conv",
            "wide",
            &["x", "w"],
            "y",
            vec![super::attrs::ints("pads", &[65536; 4])],
        )],
        vec![f32s("w", &[1024, 1, 1, 1], &[1.0; 1024])],
        "y",
    );
    fails(
        &wide,
        &["\"wide\" (Conv)", "[N, 1024, 131073, 131073] is too large"],
    );
    fails(
        &conv_model(vec![super::attrs::ints("pads", &[1 << 20; 4])]),
        &["out of range"],
    );
    // Shape errors come from shape inference, naming the node.
    let m = model(
        input(&[4]),
        vec![node(
            "Gemm",
            "fc",
            &["x", "w"],
            "y",
            vec![super::attrs::int("transB", 1)],
        )],
        vec![f32s("w", &[2, 3], &[0.0; 6])],
        "y",
    );
    fails(
        &m,
        &[
            "\"fc\" (Gemm)",
            "weight expects 3 features, the input has 4",
        ],
    );
}

#[test]
fn elementwise_arithmetic_that_is_not_one_polynomial_is_refused() {
    let two = |op: &str| {
        model(
            input(&[4]),
            vec![
                node("Relu", "r", &["x"], "r", vec![]),
                node(op, "op", &["x", "r"], "y", vec![]),
            ],
            vec![],
            "y",
        )
    };
    fails(&two("Mul"), &["\"op\" (Mul)", "two different activations"]);
    fails(&two("Sub"), &["\"op\" (Sub)", "no elementwise difference"]);
    fails(&two("Div"), &["\"op\" (Div)", "nonzero constant"]);
    // Add of two activations is a residual connection.
    assert_eq!(load(&two("Add")).unwrap().nodes[1].op, Op::Add);
    let pow = |e: f32| {
        model(
            input(&[4]),
            vec![node("Pow", "p", &["x", "e"], "y", vec![])],
            vec![scalar("e", e)],
            "y",
        )
    };
    fails(&pow(2.5), &["\"p\" (Pow)", "raises to 2.5"]);
    fails(&pow(40.0), &["raises to 40"]);
    let vector = model(
        input(&[4]),
        vec![node("Mul", "m", &["x", "c"], "y", vec![])],
        vec![f32s("c", &[4], &[1.0, 2.0, 3.0, 4.0])],
        "y",
    );
    fails(&vector, &["\"m\" (Mul)", "shape [4]", "scalar constants"]);
    // A constant vector added to an activation that is not a fresh layer output.
    let bias = model(
        input(&[4]),
        vec![
            node("Relu", "r", &["x"], "r", vec![]),
            node("Add", "add", &["r", "c"], "y", vec![]),
        ],
        vec![f32s("c", &[4], &[1.0, 2.0, 3.0, 4.0])],
        "y",
    );
    fails(
        &bias,
        &["\"add\" (Add)", "bias of the MatMul, Gemm or Conv"],
    );
    let reshape = model(
        input(&[2, 4, 4]),
        vec![node("Reshape", "rs", &["x", "s"], "y", vec![])],
        vec![i64s("s", &[0, 2, -1])],
        "y",
    );
    fails(
        &reshape,
        &["\"rs\" (Reshape)", "reshapes [N, 2, 4, 4] to [0, 2, -1]"],
    );
    let mut stale = model(
        input(&[4]),
        vec![node("Mul", "p", &["x", "c"], "y", vec![])],
        vec![scalar("c", 0.5)],
        "y",
    );
    stale.metadata_props.push(StringStringEntryProto {
        key: Some("pillar.poly:p".into()),
        value: Some("range=5;coefficients=0,0.25".into()),
    });
    fails(&stale, &["metadata \"pillar.poly:p\"", "[0.0, 0.5]"]);
}

#[test]
fn any_arrangement_of_the_arithmetic_fuses() {
    // 0.3 - (x * (-0.5 + x * (-0.25 + x * x / 8))) written as Horner's rule with Sub, Div,
    // Neg, a Cast and an Identity, then ReLU.
    let nodes = vec![
        node("Identity", "id", &["x"], "x1", vec![]),
        node("Mul", "sq", &["x1", "x1"], "x2", vec![]),
        node("Div", "div", &["x2", "eight"], "a", vec![]),
        node("Add", "h1", &["a", "m25"], "b", vec![]),
        node("Mul", "h2", &["b", "x"], "c", vec![]),
        node("Sub", "h3", &["c", "half"], "d", vec![]),
        node("Mul", "h4", &["x", "d"], "e", vec![]),
        node("Neg", "neg", &["e"], "f", vec![]),
        node(
            "Cast",
            "cast",
            &["f"],
            "g",
            vec![super::attrs::int("to", 1)],
        ),
        node("Add", "poly", &["thr", "g"], "h", vec![]),
        node("Relu", "relu", &["h"], "y", vec![]),
    ];
    let inits = vec![
        scalar("eight", 8.0),
        scalar("m25", -0.25),
        scalar("half", 0.5),
        scalar("thr", 0.3),
    ];
    let g = load(&model(input(&[4]), nodes, inits, "y")).unwrap();
    assert_eq!(g.nodes.len(), 2);
    assert_eq!(g.nodes[0].name, "poly");
    let Op::PolyAct(p) = &g.nodes[0].op else {
        panic!("{:?}", g.nodes[0].op)
    };
    assert_eq!(p.coefficients, [f64::from(0.3f32), 0.5, 0.25, 0.0, -0.125]);
    assert_eq!(p.range, super::DEFAULT_POLY_RANGE);
    assert_eq!(g.nodes[1].op, Op::Relu);
}

#[test]
fn layers_in_other_spellings_load() {
    // Gemm with transB = 0 stores [in, out]; a scalar C broadcasts.
    let m = model(
        input(&[2]),
        vec![node("Gemm", "fc", &["x", "w", "c"], "y", vec![])],
        vec![
            f32s("w", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            scalar("c", 0.5),
        ],
        "y",
    );
    let g = load(&m).unwrap();
    let Op::Linear(l) = &g.nodes[0].op else {
        panic!()
    };
    assert_eq!(l.weight.shape(), [3, 2]);
    assert_eq!(l.weight.data(), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    assert_eq!(l.bias.as_ref().unwrap().data(), [0.5; 3]);
    // A Constant node holding the flatten shape, a fixed batch of 1, and the model-wide
    // polynomial range.
    let fixed = dims(&[
        DimensionValue::DimValue(1),
        DimensionValue::DimValue(2),
        DimensionValue::DimValue(3),
    ]);
    let shape = AttributeProto {
        name: Some("value".into()),
        r#type: Some(attribute_type::TENSOR),
        t: Some(i64s("", &[1, -1])),
        ..Default::default()
    };
    let mut m = model(
        fixed,
        vec![
            node("Constant", "k", &[], "s", vec![shape]),
            node("Reshape", "rs", &["x", "s"], "f", vec![]),
            node("Mul", "sq", &["f", "f"], "y", vec![]),
        ],
        vec![],
        "y",
    );
    m.metadata_props.push(StringStringEntryProto {
        key: Some(super::POLY_RANGE_KEY.into()),
        value: Some("7.5".into()),
    });
    let g = load(&m).unwrap();
    assert_eq!(g.input_shape, [2, 3]);
    assert_eq!(g.nodes[0].op, Op::Flatten);
    let Op::PolyAct(p) = &g.nodes[1].op else {
        panic!()
    };
    assert_eq!(
        (p.coefficients.as_slice(), p.range),
        ([0.0, 0.0, 1.0].as_slice(), 7.5)
    );
}

/// `n` Relu nodes in a chain from `x`: the cheapest nodes to encode (a few bytes each).
fn relu_chain(n: usize) -> ModelProto {
    let nodes = (0..n)
        .map(|i| {
            let input = if i == 0 {
                "x".to_string()
            } else {
                format!("{}", i - 1)
            };
            node("Relu", "", &[&input], &i.to_string(), vec![])
        })
        .collect();
    model(input(&[4]), nodes, vec![], &(n - 1).to_string())
}

#[test]
fn a_model_with_more_nodes_than_the_limit_is_refused_before_decoding() {
    let bytes = relu_chain(super::MAX_NODES as usize + 1).encode_to_vec();
    // A small file: the limit is on what it decodes to, not on its bytes.
    assert!(bytes.len() < 4 << 20, "{}", bytes.len());
    let Err(err) = from_bytes(&bytes) else {
        panic!("a model of 100,001 nodes loaded");
    };
    assert!(
        matches!(err, NnError::Onnx(OnnxError::Limit { limit: 100_000, .. })),
        "{err}"
    );
    assert!(err.to_string().contains("100000 nodes"), "{err}");
    // The same chain within the limit loads.
    assert!(load(&relu_chain(1000)).is_ok());
}

/// The default limits with `f` applied.
fn within(m: &ModelProto, f: impl FnOnce(&mut Limits)) -> Result<TypedGraph, NnError> {
    let mut limits = Limits::DEFAULT;
    f(&mut limits);
    from_bytes_within(&m.encode_to_vec(), None, &limits)
}

#[track_caller]
fn over_limit(result: Result<TypedGraph, NnError>, needle: &str) {
    let Err(err) = result else {
        panic!("loaded past the limit on {needle:?}");
    };
    assert!(
        matches!(err, NnError::Onnx(OnnxError::Limit { .. })) && err.to_string().contains(needle),
        "{err} should be a limit on {needle:?}"
    );
}

#[test]
fn every_count_and_the_decoded_size_are_limited() {
    let chain = relu_chain(10);
    assert!(within(&chain, |l| l.nodes = 10).is_ok());
    over_limit(within(&chain, |l| l.nodes = 9), "9 nodes");
    over_limit(
        within(&chain, |l| l.value_infos = 1),
        "graph inputs, outputs and value infos",
    );
    // Attributes, values and names of one node.
    let attr = AttributeProto {
        name: Some("alpha".into()),
        f: Some(1.0),
        ..Default::default()
    };
    let mut m = relu_chain(2);
    let graph = m.graph.as_mut().unwrap();
    graph.node[0].attribute = vec![attr; 3];
    over_limit(within(&m, |l| l.attributes = 2), "attributes in one node");
    over_limit(
        within(&m, |l| l.node_values = 1),
        "inputs and outputs of one node",
    );
    let graph = m.graph.as_mut().unwrap();
    graph.node[1].name = Some("n".repeat(5000));
    over_limit(within(&m, |_| {}), "4096 bytes in one name");
    // Initializers, and packed int64 zeros: one byte each in the file, eight decoded.
    let m = model(
        input(&[4]),
        vec![node("Relu", "r", &["x"], "y", vec![])],
        vec![i64s("zeros", &vec![0; 1 << 20]), i64s("one", &[1])],
        "y",
    );
    over_limit(within(&m, |l| l.initializers = 1), "initializers");
    over_limit(
        within(&m, |l| l.overhead = 4 << 20),
        "MiB of decoded structures",
    );
    // Float data decodes to its own size: the same count of floats is not refused.
    let floats = model(
        input(&[4]),
        vec![node("Relu", "r", &["x"], "y", vec![])],
        vec![f32s("w", &[1 << 20], &vec![0.5; 1 << 20])],
        "y",
    );
    assert!(
        !matches!(
            within(&floats, |l| l.overhead = 4 << 20),
            Err(NnError::Onnx(OnnxError::Limit { .. }))
        ),
        "float data counted as overhead"
    );
}

#[test]
fn bytes_cut_short_are_refused_by_the_count_as_by_the_decoder() {
    let bytes = relu_chain(3).encode_to_vec();
    for end in [1, bytes.len() / 2, bytes.len() - 1] {
        let err = from_bytes(&bytes[..end]).unwrap_err().to_string();
        assert!(err.contains("not an ONNX model"), "{end}: {err}");
        // The count itself refuses them, before the decoder is reached.
        let counted = super::limits::check(&bytes[..end], &Limits::DEFAULT);
        assert!(
            matches!(counted, Err(OnnxError::Malformed(_))),
            "{end}: {counted:?}"
        );
    }
}

/// `Pad`, padded pools, `Clip` and the final softmax.
mod ops;
