//! Constant folding: the zero accumulator, constants computed from constants and computed
//! reshape targets cost nothing, and what still cannot be folded is named with what to change.
#![allow(clippy::unwrap_used)]

use prost::Message;

use super::attrs::{int, tensor};
use super::limits::Limits;
use super::proto::*;
use super::tests::{f32s, fails, i64s, input, load, model, node, scalar};
use crate::graph::{Op, PolyAct};
use crate::typed::TypedGraph;

/// An int64 scalar.
fn i64_scalar(name: &str, v: i64) -> TensorProto {
    TensorProto {
        dims: vec![],
        ..i64s(name, &[v])
    }
}

/// `0.3 + 0.5 x + 0.16 x^2 - 0.003 x^4` accumulated onto `zeros` (a value the caller's nodes
/// define) the way PyTorch writes `acc = acc + c_k * x**k`, after a Relu `r`.
fn accumulate(zeros_nodes: Vec<NodeProto>, extra: Vec<TensorProto>) -> ModelProto {
    let mut nodes = vec![node("Relu", "r", &["x"], "r", vec![])];
    nodes.extend(zeros_nodes);
    let mut inits = extra;
    let mut acc = "zeros".to_string();
    for (k, c) in [0.3f32, 0.5, 0.16, 0.0, -0.003].iter().enumerate() {
        inits.push(scalar(&format!("e{k}"), k as f32));
        inits.push(scalar(&format!("c{k}"), *c));
        nodes.push(node(
            "Pow",
            &format!("pow{k}"),
            &["r", &format!("e{k}")],
            &format!("p{k}"),
            vec![],
        ));
        nodes.push(node(
            "Mul",
            &format!("mul{k}"),
            &[&format!("p{k}"), &format!("c{k}")],
            &format!("m{k}"),
            vec![],
        ));
        let next = if k == 4 {
            "poly".to_string()
        } else {
            format!("a{k}")
        };
        nodes.push(node(
            "Add",
            &format!("add{k}"),
            &[&acc, &format!("m{k}")],
            &next,
            vec![],
        ));
        acc = next;
    }
    nodes.push(node("Relu", "out", &["poly"], "y", vec![]));
    model(input(&[2, 3, 3]), nodes, inits, "y")
}

/// The polynomial of [`accumulate`], as the importer fuses it.
fn expected_poly() -> Vec<f64> {
    [0.3f32, 0.5, 0.16, 0.0, -0.003]
        .iter()
        .map(|&c| f64::from(c))
        .collect()
}

#[track_caller]
fn one_polynomial(g: &TypedGraph) {
    let ops: Vec<&Op> = g.nodes.iter().map(|n| &n.op).collect();
    let [
        Op::Relu,
        Op::PolyAct(PolyAct { coefficients, .. }),
        Op::Relu,
    ] = ops.as_slice()
    else {
        panic!("{ops:?}");
    };
    assert_eq!(coefficients, &expected_poly());
}

fn value(t: TensorProto) -> AttributeProto {
    tensor("value", t)
}

#[test]
fn a_zero_accumulator_costs_nothing_in_every_spelling() {
    // TorchScript: ConstantOfShape(Shape(x)) with value [0.0].
    let torchscript = vec![
        node("Shape", "shape", &["r"], "s", vec![]),
        node(
            "ConstantOfShape",
            "zeros_like",
            &["s"],
            "zeros",
            vec![value(f32s("", &[1], &[0.0]))],
        ),
    ];
    one_polynomial(&load(&accumulate(torchscript, vec![])).unwrap());
    // Dynamo: Expand of a scalar 0 to Shape(x).
    let dynamo = vec![
        node("Shape", "shape", &["r"], "s", vec![int("start", 0)]),
        node("Expand", "zeros_like", &["zero", "s"], "zeros", vec![]),
    ];
    one_polynomial(&load(&accumulate(dynamo, vec![scalar("zero", 0.0)])).unwrap());
    // x * 0.
    let times_zero = vec![node("Mul", "zeros_like", &["r", "zero"], "zeros", vec![])];
    one_polynomial(&load(&accumulate(times_zero, vec![scalar("zero", 0.0)])).unwrap());
    // torch.zeros(x.size(0), 2, 3, 3): the shape assembled from the batch and constants, and
    // ConstantOfShape with no value (float 0).
    let assembled = vec![
        node("Shape", "shape", &["r"], "s", vec![]),
        node("Gather", "g", &["s", "zero_i"], "n", vec![int("axis", 0)]),
        node("Unsqueeze", "u", &["n", "axes"], "n1", vec![]),
        node("Concat", "cat", &["n1", "rest"], "s2", vec![int("axis", 0)]),
        node("ConstantOfShape", "zeros_like", &["s2"], "zeros", vec![]),
    ];
    let extra = vec![
        i64_scalar("zero_i", 0),
        i64s("axes", &[0]),
        i64s("rest", &[2, 3, 3]),
    ];
    one_polynomial(&load(&accumulate(assembled, extra)).unwrap());
    // A uniform constant of a shape that broadcasts to the activation: [1, 2, 1, 1] of 0.
    let broadcast = vec![node("Identity", "zeros_like", &["z"], "zeros", vec![])];
    let z = f32s("z", &[1, 2, 1, 1], &[0.0, 0.0]);
    one_polynomial(&load(&accumulate(broadcast, vec![z])).unwrap());
}

#[test]
fn a_symbolic_batch_or_huge_uniform_tensor_is_never_materialised() {
    // ConstantOfShape([2^40, 2^40]) of 0.5, indexed down to a scalar: no allocation, and
    // within a 1 KiB budget for computed constants.
    let nodes = vec![
        node(
            "ConstantOfShape",
            "huge",
            &["dims"],
            "h",
            vec![value(f32s("", &[1], &[0.5]))],
        ),
        node("Gather", "g0", &["h", "i"], "h0", vec![int("axis", 0)]),
        node("Gather", "g1", &["h0", "i"], "c", vec![int("axis", 0)]),
        node("Mul", "m", &["x", "c"], "y", vec![]),
    ];
    let m = model(
        input(&[4]),
        nodes,
        vec![i64s("dims", &[1 << 40, 1 << 40]), i64_scalar("i", 7)],
        "y",
    );
    let mut limits = Limits::DEFAULT;
    limits.folded_bytes = 1024;
    let g = super::from_bytes_within(&m.encode_to_vec(), None, &limits).unwrap();
    let Op::PolyAct(p) = &g.nodes[0].op else {
        panic!("{:?}", g.nodes[0].op)
    };
    assert_eq!(p.coefficients, [0.0, 0.5]);
    // Read as a weight, the same tensor would have to exist: refused by the budget.
    let weight = model(
        input(&[3]),
        vec![
            node(
                "ConstantOfShape",
                "w",
                &["dims"],
                "w",
                vec![value(f32s("", &[1], &[0.5]))],
            ),
            node("MatMul", "fc", &["x", "w"], "y", vec![]),
        ],
        vec![i64s("dims", &[3, 1 << 20])],
        "y",
    );
    let err = super::from_bytes_within(&weight.encode_to_vec(), None, &limits)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"fc\" (MatMul)") && err.contains("more than pillar folds"),
        "{err}"
    );
    // A symbolic-batch tensor read as a weight is named as such.
    let batch = model(
        input(&[3]),
        vec![
            node("Shape", "s", &["x"], "s", vec![]),
            node("ConstantOfShape", "w", &["s"], "w", vec![]),
            node("MatMul", "fc", &["x", "w"], "y", vec![]),
        ],
        vec![],
        "y",
    );
    fails(
        &batch,
        &["\"fc\" (MatMul)", "[N, 3]", "depends on the batch"],
    );
}

#[test]
fn constants_computed_from_constants_become_weights_and_scalars() {
    // A Gemm weight reshaped from a flat vector, its bias concatenated from two halves, then
    // a Conv-style bias unsqueezed to [C, 1, 1], and a scale expanded from a scalar.
    let nodes = vec![
        node("Reshape", "rw", &["flat", "wshape"], "w", vec![]),
        node("Concat", "cb", &["b1", "b2"], "b", vec![int("axis", 0)]),
        node("Gemm", "fc", &["x", "w", "b"], "h", vec![int("transB", 1)]),
        node("Expand", "ex", &["half", "four"], "halves", vec![]),
        node("Unsqueeze", "un", &["halves", "axes"], "h4", vec![]),
        node("Squeeze", "sq", &["h4", "axes"], "scale", vec![]),
        node("Mul", "scaled", &["h", "scale"], "y", vec![]),
    ];
    let inits = vec![
        f32s("flat", &[6], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        i64s("wshape", &[2, -1]),
        f32s("b1", &[1], &[0.25]),
        f32s("b2", &[1], &[-0.25]),
        scalar("half", 0.5),
        i64s("four", &[2]),
        i64s("axes", &[0]),
    ];
    let g = load(&model(input(&[3]), nodes, inits, "y")).unwrap();
    let Op::Linear(l) = &g.nodes[0].op else {
        panic!("{:?}", g.nodes[0].op)
    };
    assert_eq!(l.weight.shape(), [2, 3]);
    assert_eq!(l.weight.data(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(l.bias.as_ref().unwrap().data(), [0.25, -0.25]);
    let Op::PolyAct(p) = &g.nodes[1].op else {
        panic!("{:?}", g.nodes[1].op)
    };
    assert_eq!(p.coefficients, [0.0, 0.5]);
    // A conv bias given as Unsqueeze(b, [1, 2]) and a Slice of a constant.
    let nodes = vec![
        node("Conv", "conv", &["x", "w"], "c", vec![]),
        node("Slice", "sl", &["b4", "st", "en"], "b", vec![]),
        node("Unsqueeze", "un", &["b", "axes"], "b3", vec![]),
        node("Add", "bias", &["c", "b3"], "y", vec![]),
    ];
    let inits = vec![
        f32s("w", &[2, 1, 1, 1], &[1.0, 2.0]),
        f32s("b4", &[4], &[9.0, 0.5, 1.5, 9.0]),
        i64s("st", &[1]),
        i64s("en", &[-1]),
        i64s("axes", &[1, 2]),
    ];
    let g = load(&model(input(&[1, 2, 2]), nodes, inits, "y")).unwrap();
    let Op::Conv2d(c) = &g.nodes[0].op else {
        panic!("{:?}", g.nodes[0].op)
    };
    assert_eq!(g.nodes.len(), 1);
    assert_eq!(c.bias.as_ref().unwrap().data(), [0.5, 1.5]);
    // Arithmetic on constant tensors, with broadcasting: ([1, 2] + [[10], [20]]) * 2 as a
    // weight, and a Cast to float of an integer constant.
    let nodes = vec![
        node("Add", "a", &["row", "col"], "s", vec![]),
        node("Mul", "m", &["s", "two"], "w", vec![]),
        node("MatMul", "fc", &["x", "w"], "y", vec![]),
    ];
    let inits = vec![
        f32s("row", &[1, 2], &[1.0, 2.0]),
        f32s("col", &[2, 1], &[10.0, 20.0]),
        scalar("two", 2.0),
    ];
    let g = load(&model(input(&[2]), nodes, inits, "y")).unwrap();
    let Op::Linear(l) = &g.nodes[0].op else {
        panic!()
    };
    // MatMul's [in, out] = [[22, 24], [42, 44]], stored as [out, in].
    assert_eq!(l.weight.data(), [22.0, 42.0, 24.0, 44.0]);
}

#[test]
fn a_computed_reshape_target_flattens() {
    // x.view(x.size(0), x.size(1) * x.size(2) * x.size(3)), and x.view(x.shape[0], -1) with
    // the batch taken by a Slice of the shape.
    let product = vec![
        node("Shape", "shape", &["x"], "s", vec![]),
        node("Gather", "g0", &["s", "i0"], "n", vec![int("axis", 0)]),
        node("Gather", "g1", &["s", "i1"], "c", vec![int("axis", 0)]),
        node("Gather", "g2", &["s", "i2"], "h", vec![int("axis", 0)]),
        node("Gather", "g3", &["s", "i3"], "w", vec![int("axis", 0)]),
        node("Mul", "m1", &["c", "h"], "ch", vec![]),
        node("Mul", "m2", &["ch", "w"], "f", vec![]),
        node("Unsqueeze", "u0", &["n", "axes"], "n1", vec![]),
        node("Unsqueeze", "u1", &["f", "axes"], "f1", vec![]),
        node(
            "Concat",
            "cat",
            &["n1", "f1"],
            "target",
            vec![int("axis", 0)],
        ),
        node("Reshape", "view", &["x", "target"], "y", vec![]),
    ];
    let inits = vec![
        i64_scalar("i0", 0),
        i64_scalar("i1", 1),
        i64_scalar("i2", 2),
        i64_scalar("i3", 3),
        i64s("axes", &[0]),
    ];
    let g = load(&model(input(&[2, 3, 4]), product, inits, "y")).unwrap();
    assert_eq!(g.nodes.len(), 1);
    assert_eq!(g.nodes[0].op, Op::Flatten);
    assert_eq!(g.output_shape(), [24]);
    let sliced = vec![
        node("Shape", "shape", &["x"], "s", vec![]),
        node("Slice", "first", &["s", "st", "en"], "n", vec![]),
        node(
            "Concat",
            "cat",
            &["n", "minus"],
            "target",
            vec![int("axis", 0)],
        ),
        node("Reshape", "view", &["x", "target"], "y", vec![]),
    ];
    let inits = vec![i64s("st", &[0]), i64s("en", &[1]), i64s("minus", &[-1])];
    let g = load(&model(input(&[2, 3, 4]), sliced, inits, "y")).unwrap();
    assert_eq!(g.nodes[0].op, Op::Flatten);
}

#[test]
fn what_cannot_be_folded_is_named_with_what_to_change() {
    // A constant whose elements differ, in polynomial arithmetic.
    let m = model(
        input(&[2]),
        vec![
            node("Expand", "ex", &["c", "two"], "c2", vec![]),
            node("Mul", "m", &["x", "c2"], "y", vec![]),
        ],
        vec![f32s("c", &[2], &[1.0, 2.0]), i64s("two", &[2])],
        "y",
    );
    fails(
        &m,
        &[
            "\"m\" (Mul)",
            "shape [2] whose elements differ",
            "scalar constants",
            "Python number",
        ],
    );
    // A uniform constant larger than the activation.
    let m = model(
        input(&[2]),
        vec![node("Add", "a", &["x", "c"], "y", vec![])],
        vec![f32s("c", &[3, 2], &[1.0; 6])],
        "y",
    );
    fails(
        &m,
        &["\"a\" (Add)", "shape [3, 2]", "[N, 2] to a larger shape"],
    );
    // Shape operators on activations.
    let on_act = |op: &str, inputs: &[&str], attrs| {
        model(
            input(&[4]),
            vec![node(op, "op", inputs, "y", attrs)],
            vec![i64s("i", &[0]), i64s("j", &[1])],
            "y",
        )
    };
    fails(
        &on_act("Gather", &["x", "i"], vec![int("axis", 1)]),
        &[
            "\"op\" (Gather)",
            "applied to an activation",
            "x.flatten(1)",
        ],
    );
    fails(
        &on_act("Unsqueeze", &["x", "i"], vec![]),
        &["\"op\" (Unsqueeze)", "applied to an activation"],
    );
    fails(
        &on_act("Slice", &["x", "i", "j"], vec![]),
        &["\"op\" (Slice)", "applied to an activation"],
    );
    fails(
        &on_act("Concat", &["x", "x"], vec![int("axis", 1)]),
        &["\"op\" (Concat)", "torch.cat"],
    );
    // Squeeze of an activation: to [N, F] it is a flatten (x.squeeze() after a global
    // pool), to anything else refused.
    let squeeze = |shape: &[i64], axes: &[i64]| {
        model(
            input(shape),
            vec![node("Squeeze", "sq", &["x", "a"], "y", vec![])],
            vec![i64s("a", axes)],
            "y",
        )
    };
    let g = load(&squeeze(&[3, 1, 1], &[2, -1])).unwrap();
    assert_eq!(
        (g.nodes[0].op.clone(), g.output_shape()),
        (Op::Flatten, &[3][..])
    );
    fails(
        &squeeze(&[3, 2, 1], &[3]),
        &[
            "\"sq\" (Squeeze)",
            "[N, 3, 2, 1] to [N, 3, 2]",
            "x.flatten(1)",
        ],
    );
    fails(&squeeze(&[3, 2, 1], &[1]), &["squeezes axis 1", "not 1"]);
    // Expand that would enlarge an activation; to its own shape it is nothing.
    let expand = |shape: &[i64]| {
        model(
            input(&[4]),
            vec![node("Expand", "ex", &["x", "s"], "y", vec![])],
            vec![i64s("s", shape)],
            "y",
        )
    };
    fails(
        &expand(&[3, 1, 4]),
        &["\"ex\" (Expand)", "[N, 4] to [3, N, 4]", "cannot enlarge"],
    );
    let alias = model(
        input(&[4]),
        vec![
            node("Expand", "ex", &["x", "s"], "e", vec![]),
            node("Relu", "r", &["e"], "y", vec![]),
        ],
        vec![i64s("s", &[1, 4])],
        "y",
    );
    assert_eq!(load(&alias).unwrap().nodes.len(), 1);
    // Arithmetic with the batch size, where a reshape target needs a constant.
    let m = model(
        input(&[4]),
        vec![
            node("Shape", "shape", &["x"], "s", vec![]),
            node("Mul", "twice", &["s", "two"], "t", vec![]),
            node("Reshape", "view", &["x", "t"], "y", vec![]),
        ],
        vec![i64s("two", &[2, 1])],
        "y",
    );
    fails(
        &m,
        &["\"twice\" (Mul)", "with the batch size", "x.flatten(1)"],
    );
    // Bad folding inputs name the node.
    let m = model(
        input(&[4]),
        vec![
            node("Reshape", "rs", &["c", "s"], "c2", vec![]),
            node("Mul", "m", &["x", "c2"], "y", vec![]),
        ],
        vec![f32s("c", &[2, 3], &[1.0; 6]), i64s("s", &[4, -1])],
        "y",
    );
    fails(&m, &["\"rs\" (Reshape)", "cannot infer the -1"]);
    let m = model(
        input(&[4]),
        vec![
            node("Gather", "g", &["c", "i"], "c2", vec![]),
            node("Mul", "m", &["x", "c2"], "y", vec![]),
        ],
        vec![f32s("c", &[2], &[1.0; 2]), i64_scalar("i", 5)],
        "y",
    );
    fails(&m, &["\"g\" (Gather)", "index 5 is out of range"]);
    let m = model(
        input(&[4]),
        vec![
            node("Cast", "c", &["k"], "k2", vec![int("to", 7)]),
            node("Mul", "m", &["x", "k2"], "y", vec![]),
        ],
        vec![scalar("k", 1.0)],
        "y",
    );
    fails(&m, &["\"c\" (Cast)", "casts a float constant to int64"]);
}

/// The folding functions themselves, on the cases the models above do not reach.
#[test]
fn folding_follows_the_onnx_definitions() {
    use super::constant::{self, Arith, Budget, Fill, Folded, Scalar};
    use super::symbolic::{Ints, Sym};
    use super::tensor::{Const, Data};
    use std::rc::Rc;
    let mut budget = Budget(1 << 20);
    let dense = |dims: &[usize], v: Vec<f32>| {
        Folded::Dense(Rc::new(Const {
            dims: dims.to_vec(),
            data: Data::F32(v),
        }))
    };
    let values = |f: &Folded| match f {
        Folded::Dense(c) => (
            c.dims.clone(),
            (0..c.len()).map(|i| c.get(i).unwrap()).collect(),
        ),
        other => panic!("{other:?}"),
    };
    let ints = |v: &[i64]| Ints {
        scalar: false,
        vals: v.iter().map(|&k| Sym::Known(k)).collect(),
    };
    let m = dense(&[2, 3], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    // Slice backwards with a step, clamped ends: rows all, columns 2, 0.
    let s = constant::slice(&m, &[-1], &[-10], Some(&[1]), Some(&[-2]), &mut budget).unwrap();
    assert_eq!(values(&s), (vec![2, 2], vec![2.0, 0.0, 5.0, 3.0]));
    // Gather along axis 1 with 2-d indices.
    let idx = Folded::Dense(Rc::new(Const {
        dims: vec![1, 2],
        data: Data::I64(vec![2, -3]),
    }));
    let g = constant::gather(&m, &idx, 1, &mut budget).unwrap();
    assert_eq!(values(&g), (vec![2, 1, 2], vec![2.0, 0.0, 5.0, 3.0]));
    // Concat along the last axis.
    let c = constant::concat(
        &[m.clone(), dense(&[2, 1], vec![9.0, 8.0])],
        -1,
        &mut budget,
    )
    .unwrap();
    assert_eq!(
        values(&c),
        (vec![2, 4], vec![0.0, 1.0, 2.0, 9.0, 3.0, 4.0, 5.0, 8.0])
    );
    // A [N, 4, 6, 6] fill reshaped to [N, -1] (0 copies the batch) and to [-1, 144].
    let fill = Folded::Fill(Fill {
        dims: vec![Sym::Batch, Sym::Known(4), Sym::Known(6), Sym::Known(6)],
        value: Scalar::F32(0.0),
    });
    let r = constant::reshape(&fill, &ints(&[0, -1]), false, &mut budget).unwrap();
    assert_eq!(r.dims(), [Sym::Batch, Sym::Known(144)]);
    let r = constant::reshape(&fill, &ints(&[-1, 144]), true, &mut budget).unwrap();
    assert_eq!(r.dims(), [Sym::Batch, Sym::Known(144)]);
    assert!(constant::reshape(&fill, &ints(&[-1, 7]), true, &mut budget).is_err());
    // Integer division truncates; division by zero and overflow are errors, not panics.
    let i = |v: i64| {
        Folded::Dense(Rc::new(Const {
            dims: vec![],
            data: Data::I64(vec![v]),
        }))
    };
    let q = constant::arith(Arith::Div, &i(-7), &i(2), &mut budget).unwrap();
    assert_eq!(q.uniform(), Some(Scalar::I64(-3)));
    assert!(constant::arith(Arith::Div, &i(1), &i(0), &mut budget).is_err());
    assert!(constant::arith(Arith::Mul, &i(i64::MAX), &i(2), &mut budget).is_err());
    // An empty vector with a one-element one is empty; a negative size is no shape.
    let empty = constant::arith(
        Arith::Add,
        &Folded::Ints(ints(&[])),
        &Folded::Ints(ints(&[1])),
        &mut budget,
    )
    .unwrap();
    assert_eq!(empty.dims(), [Sym::Known(0)]);
    assert!(constant::expand(&m, &ints(&[-2, 3]), &mut budget).is_err());
    // A budget too small for what would be computed refuses it.
    let mut small = Budget(16);
    let big = constant::expand(&m, &ints(&[4, 2, 3]), &mut small).unwrap_err();
    assert!(big.contains("more than pillar folds"), "{big}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

    /// Any chain of folded operators on any mix of constants and shapes is folded or refused,
    /// never a panic.
    #[test]
    fn arbitrary_folding_chains_never_panic(
        steps in proptest::collection::vec(
            (0usize..16, 0usize..64, 0usize..64, 0usize..64, -4i64..4),
            1..8,
        )
    ) {
        const OPS: [&str; 16] = [
            "Shape", "Reshape", "Unsqueeze", "Squeeze", "Concat", "Gather", "Slice", "Expand",
            "ConstantOfShape", "Cast", "Add", "Sub", "Mul", "Div", "Pow", "Neg",
        ];
        let inits = vec![
            scalar("f0", 0.5),
            f32s("f2", &[2], &[1.0, -2.0]),
            f32s("f23", &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
            i64_scalar("i0", 0),
            i64s("i1", &[-1]),
            i64s("i2", &[2, 3]),
            i64s("i3", &[1, -1, 0]),
            i64s("empty", &[]),
        ];
        let mut names: Vec<String> = inits.iter().map(|t| t.name.clone().unwrap()).collect();
        names.push("s".into());
        let mut nodes = vec![node("Shape", "shape", &["x"], "s", vec![])];
        for (k, (op, a, b, c, axis)) in steps.iter().enumerate() {
            let pick = |i: usize| names[i % names.len()].clone();
            let op = OPS[*op];
            let inputs: Vec<String> = match op {
                "Shape" | "Cast" | "Neg" | "ConstantOfShape" => vec![pick(*a)],
                "Slice" => vec![pick(*a), pick(*b), pick(*c)],
                "Concat" => vec![pick(*a), pick(*b), pick(*c)],
                _ => vec![pick(*a), pick(*b)],
            };
            let attrs = match op {
                "Concat" | "Gather" => vec![int("axis", *axis)],
                "Cast" => vec![int("to", if *axis < 0 { 1 } else { 7 })],
                _ => vec![],
            };
            let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            let out = format!("v{k}");
            nodes.push(node(op, &out, &inputs, &out, attrs));
            names.push(out);
        }
        let last = names.last().unwrap().clone();
        nodes.push(node("Mul", "m", &["x", &last], "y", vec![]));
        let m = model(input(&[2, 3]), nodes, inits, "y");
        let mut limits = Limits::DEFAULT;
        limits.folded_bytes = 1 << 16;
        let _ = super::from_bytes_within(&m.encode_to_vec(), None, &limits);
    }
}
