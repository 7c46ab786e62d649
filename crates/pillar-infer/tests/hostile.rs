//! What a hostile server or a lying model file could hand the secure stage: architectures
//! whose steps would make the client allocate far beyond any machine, and parameters the ring
//! cannot hold. Each is refused by a check of its sizes, before anything is allocated for it.
#![allow(clippy::unwrap_used)]

use pillar_infer::{
    Architecture, FixedConfig, InferError, Layer, Parties, Plan, Step, UncheckedArchitecture,
};
use pillar_mpc::kernels::ConvGeometry;
use pillar_mpc::protocols::pool::Window;
use pillar_nn::testing::{conv, every_op, fold, linear};
use pillar_nn::{Graph, Op, Pool};

/// An architecture of `steps` (each with its declared output shape) over `input`, each step
/// reading the one before.
fn chain(
    input: Vec<usize>,
    steps: Vec<(&str, Layer, Vec<usize>)>,
    weight_shapes: Vec<Vec<usize>>,
) -> UncheckedArchitecture {
    let mut shapes = vec![input.clone()];
    let mut out = Vec::new();
    for (i, (name, layer, shape)) in steps.into_iter().enumerate() {
        shapes.push(shape);
        out.push(Step {
            name: name.to_string(),
            layer,
            inputs: vec![i],
        });
    }
    UncheckedArchitecture {
        input_shape: input,
        output: out.len(),
        shapes,
        steps: out,
        weight_shapes,
        options: FixedConfig::default(),
        output_transform: None,
    }
}

/// A one-image convolution of `[c, h, w]` to `o` channels by a `k x k` kernel.
fn conv_layer(c: usize, h: usize, w: usize, o: usize, k: usize, padding: usize) -> Layer {
    Layer::Conv {
        geometry: ConvGeometry::new([1, c, h, w], [o, k, k], 1, padding).unwrap(),
        weight: 0,
        bias: false,
    }
}

/// Asserts that `a` is refused, both checked and decoded as a hello carries it, with an
/// error that names `step` and the limit.
fn assert_refused(a: &UncheckedArchitecture, step: &str) {
    let e = match Architecture::try_from(a.clone()) {
        Ok(_) => panic!("the hostile architecture with step {step:?} was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains(step), "{e}");
    assert!(e.contains(&(1usize << 28).to_string()), "{e}");
    let json = serde_json::to_vec(a).unwrap();
    assert!(serde_json::from_slice::<Architecture>(&json).is_err());
}

#[test]
fn a_padded_convolution_then_a_huge_max_pool_window_is_refused() {
    // The attack: a 1x1 convolution padded by 8191 turns a 2x2 input into a 16384^2
    // plane (2^28 elements, within the per-value limit), then an 8192^2 max-pool window has
    // 8193^2 outputs of 2^26 candidates each: 2^55 bytes of index lists in the client's
    // offline phase, an abort before any limit applied.
    let a = chain(
        vec![1, 2, 2],
        vec![
            (
                "pad",
                conv_layer(1, 2, 2, 1, 1, 8191),
                vec![1, 16384, 16384],
            ),
            (
                "pool",
                Layer::MaxPool(Window::square(8192, 1)),
                vec![1, 8193, 8193],
            ),
        ],
        vec![vec![1, 1, 1, 1]],
    );
    assert_refused(&a, "pool");
}

#[test]
fn huge_windows_and_convolution_patches_are_refused() {
    // Average pooling of 16 channels of 4096^2 by 2048^2 windows: 2^48 gathered words.
    let a = chain(
        vec![16, 4096, 4096],
        vec![(
            "avg",
            Layer::AvgPool(Window::square(2048, 1)),
            vec![16, 2049, 2049],
        )],
        vec![],
    );
    assert_refused(&a, "avg");
    // A 64x64 kernel over the same input: its patch matrix (im2col) has 2^40 words.
    let a = chain(
        vec![16, 4096, 4096],
        vec![(
            "wide",
            conv_layer(16, 4096, 4096, 1, 64, 0),
            vec![1, 4033, 4033],
        )],
        vec![vec![1, 16, 64, 64]],
    );
    assert_refused(&a, "wide");
    // Many channels: 4096 of them under a 16x16 kernel, 2.5e9 patch words.
    let a = chain(
        vec![4096, 64, 64],
        vec![("deep", conv_layer(4096, 64, 64, 1, 16, 0), vec![1, 49, 49])],
        vec![vec![1, 4096, 16, 16]],
    );
    assert_refused(&a, "deep");
    // A convolution whose output alone is beyond the limit (refused before this work too).
    let a = chain(
        vec![1, 1, 1],
        vec![(
            "huge",
            conv_layer(1, 1, 1, 1, 1, 65536),
            vec![1, 131073, 131073],
        )],
        vec![vec![1, 1, 1, 1]],
    );
    assert!(Architecture::try_from(a).is_err());
}

/// An ImageNet-sized stem and body: what a real server sends.
fn imagenet_like() -> Graph {
    let mut g = Graph::new(vec![3, 224, 224]);
    g.chain("conv1", conv(64, 3, 7, 2, 3, 1));
    g.chain("relu1", Op::Relu);
    g.chain("maxpool", Op::MaxPool(Pool::new(3, 2)));
    g.chain("conv2", conv(64, 64, 3, 1, 1, 3));
    g.chain("relu2", Op::Relu);
    g.chain("gap", Op::GlobalAvgPool);
    g.chain("flatten", Op::Flatten);
    g.chain("fc", linear(1000, 64, 5, true));
    g
}

#[test]
fn real_architectures_pass_and_the_client_bounds_its_memory() {
    let limit = pillar_infer::remote::DEFAULT_MEMORY_LIMIT;
    // The ImageNet stem peaks at 636 MiB per image, mostly its exact ReLUs' correlations
    // (printed below), so one image of it, and 64 of the small network.
    for (g, batch) in [(imagenet_like(), 1), (every_op(), 64)] {
        let arch = Plan::compile(&fold(&g), FixedConfig::default())
            .unwrap()
            .architecture;
        let arch = Architecture::try_from(arch.into_unchecked()).unwrap();
        arch.check_memory(batch, limit).unwrap();
        let words = arch.peak_words(batch).unwrap();
        let input = batch * arch.input_shape.iter().product::<usize>();
        assert!(words > arch.setup_words() + input);
        let offline: usize = arch.needs(batch).unwrap().iter().map(|n| n.words()).sum();
        assert!(words >= offline, "{words} < {offline}");
    }
    let arch = Plan::compile(&fold(&imagenet_like()), FixedConfig::default())
        .unwrap()
        .architecture;
    let mib = arch.peak_words(1).unwrap() as f64 * 8.0 / f64::from(1 << 20);
    let estimate = arch.memory_bytes(1, Parties::Client).unwrap() as f64 / f64::from(1 << 20);
    eprintln!(
        "imagenet-like stem: {mib:.1} MiB per image at its peak, {estimate:.1} MiB estimated"
    );
    // What the README says, and what the 4 GiB default makes of it with the estimate's
    // measured margin (a quarter): 5 images, not 6.
    assert!((600.0..700.0).contains(&mib), "{mib} MiB");
    assert!((750.0..850.0).contains(&estimate), "{estimate} MiB");
    arch.check_memory(5, limit).unwrap();
    assert!(arch.check_memory(6, limit).is_err());
    // A batch beyond the client's budget is refused with the step and the sizes, and a
    // batch whose size overflows any count is refused, not wrapped.
    let e = arch.check_memory(1000, limit).unwrap_err().to_string();
    assert!(e.contains("1000 images") && e.contains("MiB"), "{e}");
    assert!(
        e.contains("conv1") || e.contains("relu1") || e.contains("maxpool"),
        "{e}"
    );
    assert!(arch.check_memory(usize::MAX / 2, limit).is_err());
}

/// A graph whose only linear layer holds `value` as one of its weights (or its bias).
fn with_parameter(value: f32, in_bias: bool) -> Graph {
    let mut g = Graph::new(vec![4]);
    let mut fc = linear(3, 4, 1, true);
    if let Op::Linear(l) = &mut fc {
        let target = if in_bias {
            l.bias.as_mut().unwrap()
        } else {
            &mut l.weight
        };
        let mut data = target.data().to_vec();
        data[1] = value;
        *target = pillar_nn::Tensor::new(target.shape().to_vec(), data).unwrap();
    }
    g.chain("fc", fc);
    g
}

#[test]
fn parameters_the_ring_cannot_hold_are_refused_naming_the_node() {
    for (value, in_bias) in [(3e38, false), (-3e38, false), (1e15, true), (1e9, false)] {
        let e = Plan::compile(
            &fold(&with_parameter(value, in_bias)),
            FixedConfig::default(),
        )
        .map(|_| ())
        .unwrap_err();
        assert!(matches!(e, InferError::Node { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("\"fc\"") && text.contains("beyond"), "{text}");
    }
    // A large but ordinary weight is served.
    Plan::compile(
        &fold(&with_parameter(1000.0, false)),
        FixedConfig::default(),
    )
    .unwrap();
}
