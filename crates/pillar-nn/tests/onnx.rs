//! ONNX import and export: PyTorch exports against PyTorch's own outputs, polynomial fusion,
//! save/load round trips, and malformed files.
#![allow(clippy::unwrap_used)]

use pillar_nn::exec::float;
use pillar_nn::onnx::{self, SaveOptions};
use pillar_nn::testing::{every_op, fixtures, max_error, pillar_poly, poly_acts, values};
use pillar_nn::{Graph, NnError, Op, PolyAct, Tensor, TypedGraph};
use proptest::prelude::*;

/// Every fixture's stem (`relu_cnn_op13`, ...).
fn fixture_stems() -> Vec<String> {
    let mut stems: Vec<String> = std::fs::read_dir(fixtures::dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "onnx").then(|| p.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    stems.sort();
    stems
}

#[test]
fn pytorch_exports_match_pytorch() {
    let stems = fixture_stems();
    assert!(stems.len() >= 12, "fixtures missing: {stems:?}");
    // The models users bring have a test each (below), against onnxruntime too.
    for stem in stems.iter().filter(|s| !USER_MODELS.contains(&s.as_str())) {
        let g = onnx::load(fixtures::dir().join(format!("{stem}.onnx")))
            .unwrap_or_else(|e| panic!("{stem}: {e}"));
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures::dir().join(format!("{stem}.json"))).unwrap(),
        )
        .unwrap();
        let (x, want) = (
            fixtures::json_tensor(&json["input"]),
            fixtures::json_tensor(&json["output"]),
        );
        let got = float::run(&g, &x).unwrap();
        let err = max_error(&got, &want);
        eprintln!("{stem}: {} nodes, largest error {err:.1e}", g.nodes.len());
        assert!(err < 1e-4, "{stem}: error {err} against PyTorch");
    }
}

/// The fixtures of models as users write and export them (`fixtures/README.md`), each with
/// PyTorch's and onnxruntime's output.
const USER_MODELS: [&str; 7] = [
    "resnet_op17",
    "resnet_dynamo",
    "mnist_example_op17",
    "mnist_example_dynamo",
    "minionn_clamp_op17",
    "minionn_clamp_dynamo",
    "pad_avgpool_op13",
];

/// Loads the fixture `stem` and checks that pillar's float reference computes, on its fixed
/// input, what onnxruntime computed (within 1e-4) and what PyTorch computed, if it made it.
fn user_model(stem: &str) -> TypedGraph {
    let f = fixtures::load(stem);
    let g = onnx::load(&f.model).unwrap_or_else(|e| panic!("{stem}: {e}"));
    let got = float::run(&g, &f.input).unwrap_or_else(|e| panic!("{stem}: {e}"));
    let ort = f.onnxruntime.as_ref().unwrap();
    let err = max_error(&got, ort);
    eprintln!("{stem}: {:?}, largest error {err:.1e}", ops(&g));
    assert!(err < 1e-4, "{stem}: error {err} against onnxruntime");
    if let Some(pytorch) = &f.pytorch {
        let err = max_error(&got, pytorch);
        assert!(err < 1e-4, "{stem}: error {err} against PyTorch");
    }
    g
}

#[test]
fn every_user_model_fixture_is_tested() {
    let with_ort: Vec<String> = fixture_stems()
        .into_iter()
        .filter(|s| fixtures::load(s).onnxruntime.is_some())
        .collect();
    let mut listed: Vec<String> = USER_MODELS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(with_ort, listed);
}

#[test]
fn resnet_with_padded_max_pool_stem_op17() {
    resnet("resnet_op17");
}

#[test]
fn resnet_with_padded_max_pool_stem_dynamo_external_data() {
    resnet("resnet_dynamo");
}

fn resnet(stem: &str) {
    let g = user_model(stem);
    assert_eq!(
        ops(&g).iter().filter(|&&o| o == "MaxPool").count(),
        1,
        "{stem}"
    );
}

#[test]
fn mnist_example_with_log_softmax_op17() {
    user_model("mnist_example_op17");
}

#[test]
fn mnist_example_with_log_softmax_dynamo_external_data() {
    user_model("mnist_example_dynamo");
}

#[test]
fn minionn_with_clamp_and_zeros_like_accumulator_op17() {
    minionn_clamp("minionn_clamp_op17");
}

#[test]
fn minionn_with_clamp_and_zeros_like_accumulator_dynamo_external_data() {
    minionn_clamp("minionn_clamp_dynamo");
}

/// The polynomial summed from `zeros_like` is one `PolyAct` per activation, with the
/// coefficients written in PyTorch (the zeros cost nothing).
fn minionn_clamp(stem: &str) {
    let g = user_model(stem);
    let polys: Vec<&PolyAct> = poly_acts(&g);
    assert_eq!(polys.len(), 2, "{stem}: {:?}", ops(&g));
    for p in polys {
        assert_eq!(
            p.coefficients,
            [0.314453125, 0.5, 0.15625, 0.0, -0.0029296875],
            "{stem}"
        );
        assert_eq!(p.range, onnx::DEFAULT_POLY_RANGE, "{stem}");
    }
}

#[test]
fn torch1_pad_then_average_pool_op13() {
    // The all-zero Pad folds away: nothing is left of it in the graph.
    let g = user_model("pad_avgpool_op13");
    assert_eq!(ops(&g), ["Conv", "AveragePool", "Flatten", "Gemm"]);
}

#[test]
fn external_data_missing_cut_short_or_outside_the_folder_is_named() {
    let dir = std::env::temp_dir().join(format!("pillar-external-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("resnet_dynamo.onnx");
    std::fs::copy(fixtures::dir().join("resnet_dynamo.onnx"), &model).unwrap();
    // The model without the file beside it.
    let err = onnx::load(&model).unwrap_err().to_string();
    assert!(err.contains("resnet_dynamo.onnx.data"), "{err}");
    // The file cut short: a tensor's offset and length reach past its end.
    let data = std::fs::read(fixtures::dir().join("resnet_dynamo.onnx.data")).unwrap();
    std::fs::write(dir.join("resnet_dynamo.onnx.data"), &data[..data.len() / 2]).unwrap();
    let err = onnx::load(&model).unwrap_err().to_string();
    assert!(err.contains("resnet_dynamo.onnx.data"), "{err}");
    // A location that leaves the model's folder (same length, so the protobuf stays whole).
    let bytes = std::fs::read(fixtures::dir().join("resnet_dynamo.onnx")).unwrap();
    let outside = patch(
        &bytes,
        b"resnet_dynamo.onnx.data",
        b"../../../../../etc/pass",
    );
    std::fs::write(&model, outside).unwrap();
    let err = onnx::load(&model).unwrap_err().to_string();
    assert!(err.contains("../../../../../etc/pass"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn ops(g: &Graph) -> Vec<&'static str> {
    g.nodes.iter().map(|n| n.op.name()).collect()
}

#[test]
fn pytorch_layers_map_onto_pillar_ops() {
    // The same model through the classic and the dynamo exporter.
    const POOLS: &[&str] = &[
        "Conv",
        "Relu",
        "MaxPool",
        "Conv",
        "Relu",
        "GlobalAveragePool",
        "Flatten",
        "Gemm",
    ];
    let load = |stem: &str| onnx::load(fixtures::dir().join(format!("{stem}.onnx"))).unwrap();
    // Constant folding off: BatchNorm stays, and x.view(x.size(0), -1) is Shape arithmetic.
    let expected = [
        (
            "relu_cnn_op13",
            &[
                "Conv",
                "BatchNormalization",
                "Relu",
                "AveragePool",
                "Flatten",
                "Gemm",
            ][..],
        ),
        (
            "relu_cnn_op18",
            &["Conv", "Relu", "AveragePool", "Flatten", "Gemm"],
        ),
        (
            "residual_op13",
            &[
                "Conv",
                "BatchNormalization",
                "Relu",
                "Conv",
                "BatchNormalization",
                "Relu",
                "Conv",
                "BatchNormalization",
                "Add",
                "Relu",
                "Flatten",
                "Gemm",
            ],
        ),
        ("pools_op18", POOLS),
        ("pools_dynamo18", POOLS),
        ("matmul_op13", &["Flatten", "Gemm", "PolyAct", "Gemm"]),
    ];
    for (stem, want) in expected {
        assert_eq!(ops(&load(stem)), want, "{stem}");
    }
    // A symbolic batch dimension is dropped from the input shape.
    assert_eq!(load("residual_op13").input_shape, [2, 6, 6]);
    // MatMul by [in, out] then Add of b: one Linear with the transposed weight and the bias.
    let g = load("matmul_op13");
    let Op::Linear(l) = &g.nodes[1].op else {
        panic!()
    };
    assert_eq!(l.weight.shape(), [8, 32]);
    assert_eq!(l.bias.as_ref().unwrap().shape(), [8]);
}

#[test]
fn pytorch_polynomial_fuses_into_one_poly_act() {
    let want = [0.314453125, 0.5, 0.15625, 0.0, -0.0029296875];
    for stem in [
        "poly_cnn_op13",
        "poly_cnn_op18",
        "poly_cnn_dynamo18",
        "matmul_op18",
    ] {
        let g = onnx::load(fixtures::dir().join(format!("{stem}.onnx"))).unwrap();
        let polys: Vec<&PolyAct> = poly_acts(&g);
        let expected = if stem.starts_with("matmul") { 1 } else { 2 };
        assert_eq!(polys.len(), expected, "{stem}: {:?}", ops(&g));
        for p in polys {
            assert_eq!(p.coefficients, want, "{stem}");
            assert_eq!(p.range, onnx::DEFAULT_POLY_RANGE);
        }
    }
    let g = onnx::load(fixtures::dir().join("poly_cnn_op13.onnx")).unwrap();
    assert_eq!(
        ops(&g),
        [
            "Conv",
            "BatchNormalization",
            "PolyAct",
            "AveragePool",
            "Flatten",
            "Gemm",
            "PolyAct",
            "Gemm"
        ]
    );
    // The fused node is named after the ONNX node that completes the polynomial.
    assert_eq!(g.nodes[2].name, "/act1/Sub");
}

fn typed(g: &Graph) -> TypedGraph {
    g.clone().typed().unwrap()
}

fn roundtrip(g: &Graph, opts: SaveOptions) -> Graph {
    onnx::from_bytes(&onnx::to_bytes_with(&typed(g), &opts).unwrap())
        .unwrap()
        .into_graph()
}

#[test]
fn save_then_load_gives_the_same_graph() {
    let g = every_op();
    for poly_as_subgraph in [false, true] {
        let opts = SaveOptions { poly_as_subgraph };
        assert_eq!(roundtrip(&g, opts), g, "{opts:?}");
    }
    let x = Tensor::new(vec![3, 2, 8, 8], values(3 * 128, 42)).unwrap();
    let y = float::run(&typed(&g), &x).unwrap();
    assert_eq!(y.shape(), [3, 3]);
    // By default only standard operators, which other runtimes run; pillar's own on request.
    let has_custom = |b: &[u8]| b.windows(7).any(|w| w == b"PolyAct");
    assert!(!has_custom(&onnx::to_bytes(&typed(&g)).unwrap()));
    let custom = SaveOptions {
        poly_as_subgraph: false,
    };
    assert!(has_custom(
        &onnx::to_bytes_with(&typed(&g), &custom).unwrap()
    ));
}

#[test]
fn save_and_load_through_a_file() {
    let dir = std::env::temp_dir().join(format!("pillar-onnx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("every_op.onnx");
    let g = every_op();
    onnx::save(&typed(&g), &path).unwrap();
    assert_eq!(onnx::load(&path).unwrap().into_graph(), g);
    // pillar's own operator, as pillar wrote it before, still reads back.
    onnx::save_with(
        &typed(&g),
        &path,
        &SaveOptions {
            poly_as_subgraph: false,
        },
    )
    .unwrap();
    assert_eq!(onnx::load(&path).unwrap().into_graph(), g);
    std::fs::remove_dir_all(&dir).unwrap();

    let missing = dir.join("missing.onnx");
    let err = onnx::load(&missing).unwrap_err().to_string();
    assert!(err.contains("missing.onnx"), "{err}");
}

#[test]
fn edge_graphs_round_trip() {
    // No nodes: the output is the input (an Identity node in ONNX).
    let g = Graph::new(vec![3]);
    assert_eq!(roundtrip(&g, SaveOptions::default()), g);
    // A polynomial that is the identity, a constant, and one without a linear term, as the
    // output and read twice.
    let mut g = Graph::new(vec![4]);
    let poly = |c: &[f64], r: f64| {
        Op::PolyAct(PolyAct {
            coefficients: c.to_vec(),
            range: r,
        })
    };
    let a = g.chain("id", poly(&[0.0, 1.0], 1.0));
    g.chain("const", poly(&[0.75], 3.0));
    let b = g.push("square", poly(&[0.0, 0.0, 0.1], 0.5), vec![a]);
    g.push("sum", Op::Add, vec![a, b]);
    g.chain("out", pillar_poly());
    for poly_as_subgraph in [false, true] {
        let opts = SaveOptions { poly_as_subgraph };
        assert_eq!(roundtrip(&g, opts), g, "{opts:?}");
    }
}

#[test]
fn save_refuses_an_invalid_graph() {
    let mut g = Graph::new(vec![3, 4, 4]);
    g.chain("fc", pillar_nn::testing::linear(2, 5, 1, true));
    // An invalid graph never becomes a typed one, and only typed graphs can be saved.
    let err = g
        .typed()
        .and_then(|g| onnx::to_bytes(&g))
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"fc\""), "{err}");
}

#[test]
fn polynomial_range_metadata_applies_to_pytorch_polynomials() {
    // Saved as a subgraph without pillar's per-node entry, a polynomial takes its range from
    // the model-wide key. The key and value bytes are swapped in place (same lengths).
    let mut g = Graph::new(vec![2]);
    g.chain("act", pillar_poly());
    let bytes = onnx::to_bytes_with(
        &typed(&g),
        &SaveOptions {
            poly_as_subgraph: true,
        },
    )
    .unwrap();
    let key = b"pillar.poly:act";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap();
    let mut edited = bytes.clone();
    edited[at..at + key.len()].copy_from_slice(b"pillar.poly_rng");
    let g2 = onnx::from_bytes(&edited).unwrap();
    let Op::PolyAct(p) = &g2.nodes[0].op else {
        panic!()
    };
    assert_eq!(p.range, onnx::DEFAULT_POLY_RANGE);
    assert_eq!(
        p.coefficients,
        [0.314453125, 0.5, 0.15625, 0.0, -0.0029296875]
    );
}

fn assert_error_names(bytes: &[u8], needles: &[&str]) {
    let err = onnx::from_bytes(bytes).unwrap_err().to_string();
    for n in needles {
        assert!(err.contains(n), "{err:?} should mention {n:?}");
    }
}

/// Replaces `from` by `to` (same length) wherever it occurs in `bytes`.
fn patch(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut found = false;
    for i in 0..=out.len() - from.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            found = true;
        }
    }
    assert!(found, "{from:?} not in the model");
    out
}

#[test]
fn unsupported_things_are_named() {
    let pytorch = std::fs::read(fixtures::dir().join("relu_cnn_op18.onnx")).unwrap();
    assert_error_names(
        &patch(&pytorch, b"Relu", b"Selu"),
        &["\"/Selu\"", "(Selu)", "unsupported operator"],
    );
    let mut g = Graph::new(vec![1, 4, 4]);
    g.chain("c", pillar_nn::testing::conv(2, 1, 3, 1, 0, 1));
    let ours = onnx::to_bytes(&typed(&g)).unwrap();
    // `group` 1 -> 2: the attribute's name, value (field 3) and type (field 20).
    assert_error_names(
        &patch(
            &ours,
            b"group\x18\x01\xa0\x01\x02",
            b"group\x18\x02\xa0\x01\x02",
        ),
        &["\"c\"", "(Conv)", "group = 2"],
    );
    assert_error_names(
        &patch(
            &ours,
            b"dilations\x40\x01\x40\x01",
            b"dilations\x40\x02\x40\x01",
        ),
        &["\"c\"", "dilations"],
    );
    // An initializer whose dims need more data than it holds: [2, 1, 3, 3] -> [2, 1, 3, 4].
    assert_error_names(
        &patch(
            &ours,
            b"\x08\x02\x08\x01\x08\x03\x08\x03",
            b"\x08\x02\x08\x01\x08\x03\x08\x04",
        ),
        &[
            "\"c\"",
            "(Conv)",
            "c.weight",
            "holds 18 elements",
            "need 24",
        ],
    );
    // The default opset moved out of range, and a pillar node in another domain.
    assert_error_names(&patch(&ours, b"\x10\x0d", b"\x10\x63"), &["opset 99"]);
    let mut p = Graph::new(vec![3]);
    p.chain("poly", pillar_poly());
    let custom = onnx::to_bytes_with(
        &typed(&p),
        &SaveOptions {
            poly_as_subgraph: false,
        },
    )
    .unwrap();
    assert_error_names(
        &patch(&custom, b"pillar", b"pillaz"),
        &["\"poly\"", "pillaz.PolyAct", "unsupported operator"],
    );
}

#[test]
fn truncated_models_are_errors() {
    for stem in ["relu_cnn_op13", "poly_cnn_dynamo18"] {
        let bytes = std::fs::read(fixtures::dir().join(format!("{stem}.onnx"))).unwrap();
        for n in 0..bytes.len() {
            assert!(
                onnx::from_bytes(&bytes[..n]).is_err(),
                "{stem}: prefix of {n} bytes loaded"
            );
        }
    }
    assert!(matches!(onnx::from_bytes(&[]), Err(NnError::Onnx(_))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = onnx::from_bytes(&bytes);
    }

    #[test]
    fn corrupted_models_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let bytes = onnx::to_bytes_with(&typed(&every_op()), &SaveOptions { poly_as_subgraph: true }).unwrap();
        load_corrupted(bytes, &edits);
    }

    #[test]
    fn corrupted_pytorch_exports_never_panic(
        stem in prop::sample::select(vec!["residual_op13", "poly_cnn_dynamo18", "pools_op18"]),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let bytes = std::fs::read(fixtures::dir().join(format!("{stem}.onnx"))).unwrap();
        load_corrupted(bytes, &edits);
    }

    #[test]
    fn polynomials_round_trip_through_standard_ops(
        coefficients in prop::collection::vec(-10.0f64..10.0, 1..7),
        range in 0.1f64..100.0,
    ) {
        let mut g = Graph::new(vec![3]);
        g.chain("p", Op::PolyAct(PolyAct { coefficients, range }));
        prop_assert_eq!(roundtrip(&g, SaveOptions::default()), g.clone());
        prop_assert_eq!(roundtrip(&g, SaveOptions { poly_as_subgraph: false }), g);
    }
}

/// Overwrites bytes of a model and loads it: it may fail, but must not panic, and whatever
/// loads is a valid graph.
fn load_corrupted(mut bytes: Vec<u8>, edits: &[(prop::sample::Index, u8)]) {
    for (at, b) in edits {
        let i = at.index(bytes.len());
        bytes[i] = *b;
    }
    if let Ok(g) = onnx::from_bytes(&bytes) {
        g.into_graph().typed().unwrap();
    }
}
