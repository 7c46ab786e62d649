//! The paper's architectures (parameter and activation counts of FACTS.md section 3) and their
//! export to the pillar-nn graph (same outputs as burn's inference forward).
#![allow(clippy::unwrap_used)]

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use pillar_train::activation::{Activation, Tape};
use pillar_train::config::default_coefficients;
use pillar_train::model::export::to_graph;
use pillar_train::{Architecture, Net};

fn build(arch: Architecture, shape: [usize; 3], classes: usize, poly: bool) -> Net {
    let device = Device::flex();
    let act = move || {
        if poly {
            Activation::poly(default_coefficients(4), 5.0, true)
        } else {
            Activation::relu(5.0)
        }
    };
    arch.build(shape, classes, &act, &device).unwrap()
}

/// Trainable parameters: what PyTorch's `sum(p.numel() for p in model.parameters())` counts
/// (BatchNorm's running statistics are buffers, not parameters).
fn parameters(net: &Net) -> usize {
    let graph = to_graph(net).unwrap();
    graph
        .nodes
        .iter()
        .map(|n| match &n.op {
            pillar_nn::Op::Conv2d(c) => c.weight.len() + c.bias.as_ref().map_or(0, |b| b.len()),
            pillar_nn::Op::Linear(l) => l.weight.len() + l.bias.as_ref().map_or(0, |b| b.len()),
            pillar_nn::Op::BatchNorm(b) => 2 * b.gamma.len(),
            _ => 0,
        })
        .sum()
}

#[test]
fn parameter_and_activation_counts_match_the_paper() {
    let cases = [
        (Architecture::Minionn, [3, 32, 32], 10, 165_754, 7),
        (Architecture::Resnet18, [3, 32, 32], 10, 11_173_962, 17),
        (Architecture::Resnet32, [3, 32, 32], 100, 472_756, 31),
        (Architecture::Resnet110, [3, 32, 32], 10, 1_730_714, 109),
        (Architecture::Vgg16, [3, 32, 32], 10, 15_253_578, 15),
        (Architecture::Resnet50, [3, 224, 224], 1000, 25_557_032, 49),
    ];
    for (arch, shape, classes, params, acts) in cases {
        let net = build(arch, shape, classes, false);
        assert_eq!(parameters(&net), params, "{arch} parameters");
        assert_eq!(net.activations().len(), acts, "{arch} activations");
    }
}

#[test]
fn minionn_on_mnist_ends_at_7x7() {
    let net = build(Architecture::Minionn, [1, 28, 28], 10, true);
    let graph = to_graph(&net).unwrap();
    let shapes = graph.shapes();
    let flat = graph
        .nodes
        .iter()
        .position(|n| n.name == "flatten1")
        .unwrap();
    assert_eq!(shapes[flat], vec![16, 7, 7]);
    assert_eq!(graph.output_shape(), [10]);
}

#[test]
fn too_small_inputs_are_refused_with_a_message() {
    let device = Device::flex();
    let err = Architecture::Vgg16
        .build([3, 16, 16], 10, &|| Activation::relu(5.0), &device)
        .err()
        .unwrap();
    assert!(err.contains("32x32"), "{err}");
    assert!(
        "resnet7"
            .parse::<Architecture>()
            .unwrap_err()
            .contains("resnet18")
    );
}

/// Exported graph and burn agree on random weights and inputs, for a plain chain, residual
/// blocks with projections, polynomial activations, and AMM in front of them; folding the
/// BatchNorms (AMM's included) changes nothing.
#[test]
fn exported_graph_computes_what_burn_computes() {
    for (arch, shape, poly, amm) in [
        (Architecture::Minionn, [1, 12, 12], true, false),
        (Architecture::Convnet, [3, 16, 16], false, false),
        (Architecture::Resnet20, [3, 8, 8], true, false),
        (Architecture::Minionn, [1, 12, 12], true, true),
        (Architecture::Convnet, [3, 16, 16], true, true),
        (Architecture::Resnet20, [3, 8, 8], true, true),
    ] {
        let device = Device::flex();
        let mut net = build(arch, shape, 10, poly);
        if amm {
            net = net.map_activations(&|a, c| a.with_amm(c, 1.0, &device));
        }
        // Non-trivial BatchNorm statistics: a few training-mode batches on an autodiff device.
        let train_device = device.clone().autodiff();
        let mut trained = net.fork(&train_device);
        for _ in 0..3 {
            let x = Tensor::<4>::random(
                [8, shape[0], shape[1], shape[2]],
                Distribution::Normal(0.0, 1.0),
                &train_device,
            );
            let _ = trained.forward(x, &mut Tape::recording());
        }
        trained = trained.fork(&device);
        let net = trained.valid();
        let x = Tensor::<4>::random(
            [3, shape[0], shape[1], shape[2]],
            Distribution::Normal(0.0, 0.5),
            &device,
        );
        let burn_out: Vec<f32> = net
            .forward(x.clone(), &mut Tape::recording())
            .into_data()
            .try_to_vec()
            .unwrap();
        let graph = to_graph(&net).unwrap();
        let input = pillar_nn::Tensor::new(
            vec![3, shape[0], shape[1], shape[2]],
            x.into_data().try_to_vec().unwrap(),
        )
        .unwrap();
        let amm_nodes =
            |g: &pillar_nn::Graph| g.nodes.iter().filter(|n| n.name.starts_with("amm")).count();
        assert_eq!(
            amm_nodes(&graph),
            if amm { net.activations().len() } else { 0 },
            "{arch}"
        );
        let folded = graph.fold_batchnorm().unwrap();
        if arch != Architecture::Resnet20 {
            // Every AMM follows a conv/linear (+ BN) here, so all of them fold away.
            assert_eq!(amm_nodes(&folded), 0, "{arch}");
        }
        let scale = burn_out.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for g in [&graph, &*folded] {
            let ours = pillar_nn::exec::float::run(g, &input).unwrap();
            for (a, b) in burn_out.iter().zip(ours.data()) {
                assert!(
                    (a - b).abs() <= 1e-4 * scale,
                    "{arch} amm={amm}: {a} vs {b}"
                );
            }
        }
    }
}
