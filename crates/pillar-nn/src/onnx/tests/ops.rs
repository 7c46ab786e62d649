//! The operators PyTorch's CNNs bring: `Pad` folded into the layer after it, padded
//! `MaxPool` and `AveragePool`, `Clip`, and `Softmax`/`LogSoftmax` as the last operator; each
//! accepted form and each refusal, named.

use super::super::attrs::{float, int, ints};
use super::*;
use crate::graph::{Clip, OutputTransform, Pool};

fn string_attr(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::STRING),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

fn with_opset(mut m: ModelProto, version: i64) -> ModelProto {
    m.opset_import[0].version = Some(version);
    m
}

/// The ops of the graph, in order.
fn ops(g: &TypedGraph) -> Vec<Op> {
    g.nodes.iter().map(|n| n.op.clone()).collect()
}

fn pool_model(op: &str, attrs: Vec<AttributeProto>) -> ModelProto {
    model(
        input(&[1, 5, 5]),
        vec![node(op, "pool", &["x"], "y", attrs)],
        vec![],
        "y",
    )
}

fn window(k: i64, s: i64) -> Vec<AttributeProto> {
    vec![ints("kernel_shape", &[k, k]), ints("strides", &[s, s])]
}

#[test]
fn padded_pools_load_as_pytorch_defines_them() {
    // torchvision's ResNet stem: MaxPool2d(3, 2, padding=1).
    let mut a = window(3, 2);
    a.push(ints("pads", &[1, 1, 1, 1]));
    let g = load(&pool_model("MaxPool", a.clone())).unwrap();
    assert_eq!(
        ops(&g),
        [Op::MaxPool(Pool {
            kernel: 3,
            stride: 2,
            pad: 1
        })]
    );
    assert_eq!(g.output_shape(), [1, 3, 3]);
    // AvgPool2d(3, 2, padding=1) exports count_include_pad = 1.
    a.push(int("count_include_pad", 1));
    let g = load(&pool_model("AveragePool", a)).unwrap();
    assert!(matches!(ops(&g)[..], [Op::AvgPool(Pool { pad: 1, .. })]));
    // ceil_mode = 1 where it changes nothing: (5 + 2 - 3) is a multiple of 2.
    let mut a = window(3, 2);
    a.extend([ints("pads", &[1; 4]), int("ceil_mode", 1)]);
    assert!(load(&pool_model("MaxPool", a)).is_ok());
}

#[test]
fn padded_pools_pytorch_would_not_write_are_refused_saying_what_to_change() {
    // count_include_pad = 0 (its default) with padding: the mean of fewer elements.
    let mut a = window(3, 2);
    a.push(ints("pads", &[1; 4]));
    fails(
        &pool_model("AveragePool", a.clone()),
        &[
            "\"pool\" (AveragePool)",
            "count_include_pad = 0",
            "count_include_pad=True",
        ],
    );
    a.push(int("count_include_pad", 0));
    fails(&pool_model("AveragePool", a), &["count_include_pad = 0"]);
    // More than half the window.
    let mut a = window(3, 1);
    a.push(ints("pads", &[2; 4]));
    fails(
        &pool_model("MaxPool", a),
        &["\"pool\" (MaxPool)", "more than half", "padding=1"],
    );
    // ceil_mode = 1 that adds a window: (5 + 2 - 2) / 2 is not whole.
    let mut a = window(2, 2);
    a.extend([ints("pads", &[1; 4]), int("ceil_mode", 1)]);
    fails(
        &pool_model("MaxPool", a),
        &["ceil_mode = 1", "ceil_mode=False"],
    );
    // Asymmetric pool padding.
    let mut a = window(3, 2);
    a.push(ints("pads", &[0, 0, 1, 1]));
    fails(
        &pool_model("MaxPool", a),
        &["pads = [0, 0, 1, 1]", "symmetric"],
    );
}

/// `x -> Pad(pads) -> reader`, opset 17 (pads as an input).
fn pad_then(reader: NodeProto, pads: &[i64], extra: Vec<TensorProto>) -> ModelProto {
    let mut inits = vec![i64s("pads", pads)];
    inits.extend(extra);
    model(
        input(&[1, 5, 5]),
        vec![node("Pad", "pad", &["x", "pads"], "p", vec![]), reader],
        inits,
        "y",
    )
}

fn conv_reading(x: &str, attrs: Vec<AttributeProto>) -> NodeProto {
    node("Conv", "conv", &[x, "w"], "y", attrs)
}

fn conv_weight() -> TensorProto {
    f32s("w", &[2, 1, 3, 3], &[0.1; 18])
}

#[test]
fn a_zero_pad_folds_into_the_conv_or_average_pool_after_it() {
    let spatial = [0, 0, 1, 1, 0, 0, 1, 1];
    let g = load(&pad_then(
        conv_reading("p", vec![]),
        &spatial,
        vec![conv_weight()],
    ))
    .unwrap();
    assert!(matches!(&ops(&g)[..], [Op::Conv2d(c)] if c.padding == 1));
    assert_eq!(g.output_shape(), [2, 5, 5]);
    // The Pad's padding adds to the layer's own.
    let g = load(&pad_then(
        conv_reading("p", vec![ints("pads", &[1; 4])]),
        &spatial,
        vec![conv_weight()],
    ))
    .unwrap();
    assert!(matches!(&ops(&g)[..], [Op::Conv2d(c)] if c.padding == 2));
    // torch 1.x: an all-zero Pad before every AveragePool is nothing.
    let avg = node("AveragePool", "avg", &["p"], "y", window(2, 2));
    let g = load(&pad_then(avg.clone(), &[0; 8], vec![])).unwrap();
    assert_eq!(ops(&g), [Op::AvgPool(Pool::new(2, 2))]);
    // torch 1.x's AvgPool2d(3, 2, padding=1): a Pad, then an unpadded AveragePool; the Pad's
    // zeros count, as count_include_pad = 1 counts them.
    let avg3 = node("AveragePool", "avg", &["p"], "y", window(3, 2));
    let g = load(&pad_then(avg3, &spatial, vec![])).unwrap();
    assert_eq!(
        ops(&g),
        [Op::AvgPool(Pool {
            kernel: 3,
            stride: 2,
            pad: 1
        })]
    );
    // An explicit zero constant_value and the opset-18 axes input.
    let m = model(
        input(&[1, 5, 5]),
        vec![
            node("Pad", "pad", &["x", "pads", "zero", "axes"], "p", vec![]),
            conv_reading("p", vec![]),
        ],
        vec![
            i64s("pads", &[1, 1, 1, 1]),
            scalar("zero", 0.0),
            i64s("axes", &[2, -1]),
            conv_weight(),
        ],
        "y",
    );
    assert!(matches!(&ops(&load(&m).unwrap())[..], [Op::Conv2d(c)] if c.padding == 1));
    // Opsets before 11: pads and value are attributes.
    let m = with_opset(
        model(
            input(&[1, 5, 5]),
            vec![
                node(
                    "Pad",
                    "pad",
                    &["x"],
                    "p",
                    vec![ints("pads", &spatial), float("value", 0.0)],
                ),
                conv_reading("p", vec![]),
            ],
            vec![conv_weight()],
            "y",
        ),
        10,
    );
    assert!(matches!(&ops(&load(&m).unwrap())[..], [Op::Conv2d(c)] if c.padding == 1));
}

#[test]
fn a_pad_pillar_cannot_fold_is_refused_saying_what_to_change() {
    let conv = || conv_reading("p", vec![]);
    fails(
        &pad_then(conv(), &[0, 0, 0, 1, 0, 0, 1, 1], vec![conv_weight()]),
        &[
            "\"pad\" (Pad)",
            "not the same on all four sides",
            "padding=",
        ],
    );
    fails(
        &pad_then(conv(), &[0, 1, 1, 1, 0, 1, 1, 1], vec![conv_weight()]),
        &["\"pad\" (Pad)", "batch or channel axis"],
    );
    let m = model(
        input(&[1, 5, 5]),
        vec![
            node("Pad", "pad", &["x", "pads", "one"], "p", vec![]),
            conv(),
        ],
        vec![
            i64s("pads", &[0, 0, 1, 1, 0, 0, 1, 1]),
            scalar("one", 1.0),
            conv_weight(),
        ],
        "y",
    );
    fails(&m, &["\"pad\" (Pad)", "pads with the constant 1"]);
    let mut reflect = pad_then(conv(), &[0, 0, 1, 1, 0, 0, 1, 1], vec![conv_weight()]);
    reflect.graph.as_mut().unwrap().node[0]
        .attribute
        .push(string_attr("mode", "reflect"));
    fails(&reflect, &["\"pad\" (Pad)", "mode = reflect"]);
    // A zero Pad is not max-pool padding, which is -inf.
    let max = node("MaxPool", "max", &["p"], "y", window(3, 1));
    fails(
        &pad_then(max, &[0, 0, 1, 1, 0, 0, 1, 1], vec![]),
        &["\"max\" (MaxPool)", "-inf", "MaxPool2d(..., padding=1)"],
    );
    // Anything else reading it.
    let relu = node("Relu", "relu", &["p"], "y", vec![]);
    fails(
        &pad_then(relu, &[0, 0, 1, 1, 0, 0, 1, 1], vec![]),
        &["\"relu\" (Relu)", "zero Pad", "instead of F.pad"],
    );
    // Padding beyond half the pool's window once the Pad's is added.
    let avg = node("AveragePool", "avg", &["p"], "y", window(2, 2));
    fails(
        &pad_then(avg, &[0, 0, 2, 2, 0, 0, 2, 2], vec![]),
        &[
            "\"avg\" (AveragePool)",
            "padding 2 (2 of it from the Pad before it)",
        ],
    );
}

fn clip_model(inputs: &[&str], attrs: Vec<AttributeProto>, inits: Vec<TensorProto>) -> ModelProto {
    model(
        input(&[4]),
        vec![node("Clip", "clamp", inputs, "y", attrs)],
        inits,
        "y",
    )
}

#[test]
fn clip_loads_with_either_bound_in_either_spelling() {
    let both = clip_model(
        &["x", "lo", "hi"],
        vec![],
        vec![scalar("lo", -5.0), scalar("hi", 5.0)],
    );
    let clip = |min, max| Op::Clip(Clip { min, max });
    assert_eq!(ops(&load(&both).unwrap()), [clip(Some(-5.0), Some(5.0))]);
    let max_only = clip_model(&["x", "", "hi"], vec![], vec![scalar("hi", 6.0)]);
    assert_eq!(ops(&load(&max_only).unwrap()), [clip(None, Some(6.0))]);
    let min_only = clip_model(&["x", "lo"], vec![], vec![scalar("lo", 0.0)]);
    assert_eq!(ops(&load(&min_only).unwrap()), [clip(Some(0.0), None)]);
    // Opset 6: attributes, an absent bound written as the float range's end.
    let old = with_opset(
        clip_model(
            &["x"],
            vec![float("min", -1.0), float("max", f32::MAX)],
            vec![],
        ),
        9,
    );
    assert_eq!(ops(&load(&old).unwrap()), [clip(Some(-1.0), None)]);
    // No bound at all is the identity, which needs no node.
    let none = clip_model(&["x"], vec![], vec![]);
    assert!(load(&none).unwrap().nodes.is_empty());
}

#[test]
fn clip_bounds_pillar_cannot_run_are_refused() {
    fails(
        &clip_model(
            &["x", "lo", "hi"],
            vec![],
            vec![scalar("lo", 2.0), scalar("hi", 1.0)],
        ),
        &["\"clamp\" (Clip)", "min 2 is above max 1"],
    );
    fails(
        &clip_model(&["x", "lo"], vec![], vec![f32s("lo", &[2], &[0.0, 1.0])]),
        &["\"clamp\" (Clip)", "scalar bound"],
    );
    fails(
        &clip_model(&["x", "lo"], vec![], vec![scalar("lo", f32::NAN)]),
        &["\"clamp\" (Clip)", "not a number"],
    );
}

/// `x (K features) -> Gemm -> op`, with `tail` after it.
fn classifier(op: &str, attrs: Vec<AttributeProto>, tail: Vec<NodeProto>, out: &str) -> ModelProto {
    let mut nodes = vec![
        node("Gemm", "fc", &["x", "w"], "z", vec![int("transB", 1)]),
        node(op, "sm", &["z"], "p", attrs),
    ];
    nodes.extend(tail);
    model(input(&[3]), nodes, vec![f32s("w", &[2, 3], &[0.5; 6])], out)
}

#[test]
fn a_final_softmax_becomes_the_output_transform() {
    let g = load(&classifier("Softmax", vec![], vec![], "p")).unwrap();
    assert_eq!(g.output_transform, Some(OutputTransform::Softmax));
    assert_eq!(g.nodes.len(), 1);
    let g = load(&classifier("LogSoftmax", vec![int("axis", 1)], vec![], "p")).unwrap();
    assert_eq!(g.output_transform, Some(OutputTransform::LogSoftmax));
    // An Identity after it is still the end.
    let id = node("Identity", "id", &["p"], "y", vec![]);
    let g = load(&classifier("Softmax", vec![int("axis", -1)], vec![id], "y")).unwrap();
    assert_eq!(g.output_transform, Some(OutputTransform::Softmax));
}

#[test]
fn a_softmax_anywhere_but_last_is_refused() {
    let relu = node("Relu", "relu", &["p"], "y", vec![]);
    fails(
        &classifier("Softmax", vec![], vec![relu], "y"),
        &[
            "\"relu\" (Relu)",
            "softmax is supported only as the last operator",
        ],
    );
    let twice = node("Softmax", "again", &["p"], "y", vec![]);
    fails(
        &classifier("LogSoftmax", vec![], vec![twice], "y"),
        &["\"again\" (Softmax)", "only as the last operator"],
    );
    fails(
        &classifier("Softmax", vec![int("axis", 0)], vec![], "p"),
        &["\"sm\" (Softmax)", "over axis 0", "dim=1"],
    );
    let image = model(
        input(&[2, 3, 3]),
        vec![node("Softmax", "sm", &["x"], "y", vec![int("axis", 1)])],
        vec![],
        "y",
    );
    fails(&image, &["\"sm\" (Softmax)", "flat output"]);
}

#[test]
fn a_clip_before_a_polynomial_is_warned_about() {
    // clamp(x, -5, 5), then 0.5 x^2 + x: the training clamp left in forward().
    let m = model(
        input(&[4]),
        vec![
            node("Clip", "clamp", &["x", "lo", "hi"], "c", vec![]),
            node("Mul", "sq", &["c", "c"], "s", vec![]),
            node("Mul", "half", &["s", "h"], "t", vec![]),
            node("Add", "poly", &["t", "c"], "y", vec![]),
        ],
        vec![scalar("lo", -5.0), scalar("hi", 5.0), scalar("h", 0.5)],
        "y",
    );
    let g = load(&m).unwrap();
    assert!(matches!(ops(&g)[..], [Op::Clip(_), Op::PolyAct(_)]));
    let warnings = g.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    for needle in ["\"clamp\" (Clip)", "comparison rounds", "forward()"] {
        assert!(warnings[0].contains(needle), "{warnings:?}: {needle}");
    }
    // A clip before a ReLU is the model's own business.
    let m = model(
        input(&[4]),
        vec![
            node("Clip", "clamp", &["x", "lo"], "c", vec![]),
            node("Relu", "relu", &["c"], "y", vec![]),
        ],
        vec![scalar("lo", -5.0)],
        "y",
    );
    assert!(load(&m).unwrap().warnings().is_empty());
}

#[test]
fn a_pad_of_a_constant_is_evaluated() {
    // A 1x1 kernel padded to 3x3 with zeros (a weight built in forward()) is the same
    // convolution as the 3x3 kernel with zeros written out.
    let small = [0.5, -2.0];
    let m = model(
        input(&[1, 5, 5]),
        vec![
            node("Pad", "pad", &["w1", "pads"], "w", vec![]),
            node("Conv", "conv", &["x", "w"], "y", vec![]),
        ],
        vec![
            f32s("w1", &[2, 1, 1, 1], &small),
            i64s("pads", &[0, 0, 1, 1, 0, 0, 1, 1]),
        ],
        "y",
    );
    let g = load(&m).unwrap();
    let [Op::Conv2d(c)] = &ops(&g)[..] else {
        panic!("{:?}", ops(&g))
    };
    let mut want = vec![0.0; 18];
    want[4] = small[0];
    want[9 + 4] = small[1];
    assert_eq!(c.weight.shape(), [2, 1, 3, 3]);
    assert_eq!(c.weight.data(), want);
    // Another pad value fills the border with it.
    let m = model(
        input(&[1, 5, 5]),
        vec![
            node("Pad", "pad", &["w1", "pads", "v"], "w", vec![]),
            node("Conv", "conv", &["x", "w"], "y", vec![]),
        ],
        vec![
            f32s("w1", &[2, 1, 1, 1], &small),
            i64s("pads", &[0, 0, 1, 1, 0, 0, 1, 1]),
            scalar("v", 0.25),
        ],
        "y",
    );
    let g = load(&m).unwrap();
    let [Op::Conv2d(c)] = &ops(&g)[..] else {
        panic!("{:?}", ops(&g))
    };
    assert_eq!(c.weight.data().iter().filter(|&&w| w == 0.25).count(), 16);
    // A zero accumulator padded with zeros stays a scalar: `zeros(...)` padded, then `+ x`.
    let m = model(
        input(&[3]),
        vec![
            node("Pad", "pad", &["z", "pads"], "zp", vec![]),
            node("Add", "acc", &["zp", "x"], "y", vec![]),
        ],
        vec![f32s("z", &[1, 1], &[0.0]), i64s("pads", &[0, 1, 0, 1])],
        "y",
    );
    assert!(load(&m).is_ok());
    // Crops (negative pads) and pads for other ranks are named.
    let crop = |pads: &[i64]| {
        model(
            input(&[1, 5, 5]),
            vec![
                node("Pad", "pad", &["w1", "pads"], "w", vec![]),
                node("Conv", "conv", &["x", "w"], "y", vec![]),
            ],
            vec![f32s("w1", &[2, 1, 3, 3], &[0.1; 18]), i64s("pads", pads)],
            "y",
        )
    };
    fails(
        &crop(&[0, 0, -1, 0, 0, 0, 0, 0]),
        &["\"pad\" (Pad)", "negative pads"],
    );
    fails(
        &crop(&[0, 0, 1, 1]),
        &["\"pad\" (Pad)", "4 pads for 4 axes"],
    );
}
