//! Training-step throughput, for `pillar bench train`: the same step the trainer takes
//! (forward with the activation tape, cross-entropy plus penalty, backward, SGD update) on
//! random images, so it compares directly with a PyTorch loop over the same model and batch.

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

use crate::activation::{Activation, Tape};
use crate::config::{ActivationKind, TrainConfig};
use crate::model::Architecture;
use crate::penalty::Penalty;
use crate::train::{cross_entropy, optimizer};

/// Seconds of each of `steps` timed training steps (after `warmup` untimed ones).
#[allow(clippy::too_many_arguments)]
pub fn training_steps(
    model: Architecture,
    activation: ActivationKind,
    input_shape: [usize; 3],
    classes: usize,
    batch: usize,
    warmup: usize,
    steps: usize,
    device: &Device,
) -> Result<Vec<f64>, String> {
    let device = device.clone().autodiff();
    let cfg = TrainConfig::recipe(model);
    let coefficients = cfg.coefficients.clone();
    let act = move || match activation {
        ActivationKind::Relu => Activation::relu(5.0),
        ActivationKind::Poly => Activation::poly(coefficients.clone(), 5.0, true),
        _ => Activation::poly(coefficients.clone(), 5.0, false),
    };
    device.seed(1);
    let mut net = model.build(input_shape, classes, &act, &device)?;
    let mut optim = optimizer(&cfg);
    let penalty = Penalty::default().at_epoch(10);
    let [c, h, w] = input_shape;
    let labels: Vec<i64> = (0..batch).map(|i| (i % classes) as i64).collect();
    let mut times = Vec::with_capacity(steps);
    for step in 0..warmup + steps {
        let t0 = Instant::now();
        let x = Tensor::<4>::random([batch, c, h, w], Distribution::Normal(0.0, 1.0), &device);
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [batch]), &device);
        let mut tape = if activation == ActivationKind::Poly {
            Tape::with_penalty(penalty, cfg.penalty.reg_range)
        } else {
            Tape::recording()
        };
        let logits = net.forward(x, &mut tape);
        let mut loss = cross_entropy(logits, y);
        if let Some(p) = tape.penalty_loss() {
            loss = loss.add(p);
        }
        let _ = tape.finish();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(0.01, net, grads);
        device.sync().map_err(|e| format!("{e:?}"))?;
        if step >= warmup {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    Ok(times)
}
