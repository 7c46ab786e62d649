//! Batch normalisation in training, on the CPU: batch statistics, normalisation and the
//! backward pass straight on the `[N, C, ...]` buffer, registered in burn's autodiff graph as
//! one operation (the mechanism of [`crate::conv`]).
//!
//! Why: burn 0.22's CPU backend computes a training batch norm, forward and backward, from
//! generic tensor operations that first swap the batch and channel axes (a full copy of the
//! tensor, several times per layer) and then make a dozen elementwise passes; on MiniONN that
//! was a sixth of the training step. Here the forward is three passes (mean, variance,
//! output) and the backward two (the two per-channel sums, then the input gradient), with
//! burn's formulas:
//!
//! - `y = (x - mean) / sqrt(var + eps) * gamma + beta`, `var` the biased batch variance;
//! - `dbeta = sum dy`, `dgamma = sum dy * xhat`,
//!   `dx = gamma / sqrt(var + eps) * (dy - mean(dy) - xhat * mean(dy * xhat))`.
//!
//! Inference, other backends and other dtypes use burn's [`BatchNorm::forward`] unchanged.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::nn::BatchNorm;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use crate::autodiff::values;

/// Applies `bn` to `x` (`[N, C, ...]`): the same as `bn.forward(x)`, including the update of
/// the running statistics in training, through this module's kernels where they apply.
pub fn forward<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let training = x.device().is_autodiff() && bn.training.is_enabled();
    if !training || D < 2 {
        return bn.forward(x);
    }
    let (gamma, beta) = (bn.gamma.val(), bn.beta.val());
    let channels = gamma.dims()[0];
    let flex_f32 = [x.dtype(), gamma.dtype(), beta.dtype()] == [DType::F32; 3];
    if !flex_f32 || x.dims()[1] != channels || beta.dims()[0] != channels {
        return bn.forward(x);
    }
    type Ad = Autodiff<Flex>;
    let (xp, gp, bp) = match (
        x.clone().try_into_primitive::<Ad>(),
        gamma.try_into_primitive::<Ad>(),
        beta.try_into_primitive::<Ad>(),
    ) {
        (Ok(xp), Ok(gp), Ok(bp)) => (xp, gp, bp),
        _ => return bn.forward(x),
    };
    let device = x.device();
    let dims = x.dims();
    drop(x);
    let shape = Shape::of(&dims);
    let gamma_v = values(gp.primitive()).into_owned();
    let beta_v = values(bp.primitive()).into_owned();
    let (out, mean, var) = {
        let xs = values(xp.primitive());
        train_forward(&shape, &xs, &gamma_v, &beta_v, bn.epsilon)
    };
    let out = FlexTensor::from_data(TensorData::new(out, dims.to_vec()));
    let state = || BnState {
        x: xp.primitive().clone(),
        gamma: gamma_v.clone(),
        mean: mean.clone(),
        var: var.clone(),
        epsilon: bn.epsilon,
        shape,
    };
    let out = match BnBackward
        .prepare::<NoCheckpointing>([xp.node(), gp.node(), bp.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state(), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    let output = Tensor::<D>::from_primitive::<Ad>(out);

    // The running statistics, exactly as burn's `BatchNorm::forward_train` updates them.
    let batch_mean = Tensor::<1>::from_data(TensorData::new(mean, [channels]), &device);
    let batch_var = Tensor::<1>::from_data(TensorData::new(var, [channels]), &device);
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    let running_mean = running_mean
        .mul_scalar(1.0 - bn.momentum)
        .add(batch_mean.mul_scalar(bn.momentum));
    let running_var = running_var
        .mul_scalar(1.0 - bn.momentum)
        .add(batch_var.mul_scalar(bn.momentum));
    bn.running_mean.update(running_mean.detach());
    bn.running_var.update(running_var.detach());
    output
}

/// `[N, C, inner]` view of an `[N, C, ...]` tensor.
#[derive(Debug, Clone, Copy)]
struct Shape {
    n: usize,
    c: usize,
    inner: usize,
}

impl Shape {
    fn of(dims: &[usize]) -> Shape {
        Shape {
            n: dims.first().copied().unwrap_or(1),
            c: dims.get(1).copied().unwrap_or(1),
            inner: dims.iter().skip(2).product(),
        }
    }

    /// Values per channel.
    fn count(&self) -> usize {
        self.n * self.inner
    }

    /// The `n` contiguous runs of channel `c` in a buffer of this shape.
    fn runs<'a>(&self, data: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        let (plane, inner) = (self.c * self.inner, self.inner);
        data.chunks(plane)
            .map(move |image| &image[c * inner..(c + 1) * inner])
    }
}

/// Per-channel sums of `f_c(a, b)` over the runs of `a` and `b` (`b` empty: zeros), with
/// `f_c = per_channel(c)` (so that the channel's constants are locals of the inner loop): in
/// `f64` across runs, in 16 `f32` partial sums within one.
fn channel_sums<G>(
    shape: &Shape,
    a: &[f32],
    b: &[f32],
    per_channel: impl Fn(usize) -> G + Sync,
) -> Vec<f64>
where
    G: Fn(f32, f32) -> f32,
{
    const L: usize = 16;
    let zeros = vec![0.0f32; shape.inner];
    (0..shape.c)
        .into_par_iter()
        .map(|c| {
            let f = per_channel(c);
            let mut total = 0.0f64;
            let mut b_runs = shape.runs(b, c);
            for ra in shape.runs(a, c) {
                let rb = b_runs.next().unwrap_or(&zeros);
                let mut lanes = [0.0f32; L];
                let (ca, cb) = (ra.chunks_exact(L), rb.chunks_exact(L));
                let (ra_rest, rb_rest) = (ca.remainder(), cb.remainder());
                for (ca, cb) in ca.zip(cb) {
                    for ((l, &a), &b) in lanes.iter_mut().zip(ca).zip(cb) {
                        *l += f(a, b);
                    }
                }
                for ((l, &a), &b) in lanes.iter_mut().zip(ra_rest).zip(rb_rest) {
                    *l += f(a, b);
                }
                total += lanes.iter().map(|&l| f64::from(l)).sum::<f64>();
            }
            total
        })
        .collect()
}

/// `out[i] = f_c(a[i], b[i])` over an `[N, C, inner]` buffer (`b` empty: zeros), with
/// `f_c = per_channel(c)` for the channel `c` of element `i`.
fn map_channels<G>(
    shape: &Shape,
    a: &[f32],
    b: &[f32],
    per_channel: impl Fn(usize) -> G + Sync,
) -> Vec<f32>
where
    G: Fn(f32, f32) -> f32,
{
    let mut out = vec![0.0f32; a.len()];
    let inner = shape.inner.max(1);
    let zeros = vec![0.0f32; inner];
    out.par_chunks_mut(inner)
        .zip(a.par_chunks(inner))
        .enumerate()
        .for_each(|(run, (out, a))| {
            let f = per_channel(run % shape.c);
            let b = b.get(run * inner..(run + 1) * inner).unwrap_or(&zeros);
            for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
                *o = f(a, b);
            }
        });
    out
}

/// Output, batch mean and biased batch variance.
fn train_forward(
    shape: &Shape,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let count = shape.count().max(1) as f64;
    let mean: Vec<f32> = channel_sums(shape, x, &[], |_| |x, _| x)
        .into_iter()
        .map(|s| (s / count) as f32)
        .collect();
    let var: Vec<f32> = channel_sums(shape, x, &[], |c| {
        let m = mean[c];
        move |x, _| (x - m) * (x - m)
    })
    .into_iter()
    .map(|s| (s / count) as f32)
    .collect();
    let scale: Vec<f32> = var
        .iter()
        .zip(gamma)
        .map(|(&v, &g)| g / (f64::from(v) + epsilon).sqrt() as f32)
        .collect();
    let out = map_channels(shape, x, &[], |c| {
        let (m, s, b) = (mean[c], scale[c], beta[c]);
        move |x, _| (x - m) * s + b
    });
    (out, mean, var)
}

#[derive(Debug, Clone)]
struct BnState {
    x: FlexTensor,
    gamma: Vec<f32>,
    mean: Vec<f32>,
    var: Vec<f32>,
    epsilon: f64,
    shape: Shape,
}

#[derive(Debug)]
struct BnBackward;

impl Backward<Flex, 3> for BnBackward {
    type State = BnState;

    fn backward(self, ops: Ops<BnState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let BnState {
            x,
            gamma,
            mean,
            var,
            epsilon,
            shape,
        } = ops.state;
        let dims = x.layout().shape().to_vec();
        let inv_std: Vec<f32> = var
            .iter()
            .map(|&v| 1.0 / (f64::from(v) + epsilon).sqrt() as f32)
            .collect();
        let xs = values(&x);
        let dy = values(&grad);
        let beta_grad = channel_sums(&shape, &dy, &[], |_| |dy, _| dy);
        let gamma_grad = channel_sums(&shape, &xs, &dy, |c| {
            let (m, s) = (mean[c], inv_std[c]);
            move |x, dy| dy * ((x - m) * s)
        });
        let count = shape.count().max(1) as f64;
        if let Some(node) = node_x {
            let mean_dy: Vec<f32> = beta_grad.iter().map(|&s| (s / count) as f32).collect();
            let mean_dy_xhat: Vec<f32> = gamma_grad.iter().map(|&s| (s / count) as f32).collect();
            let scale: Vec<f32> = gamma.iter().zip(&inv_std).map(|(g, s)| g * s).collect();
            let dx = map_channels(&shape, &xs, &dy, |c| {
                let (m, s, k) = (mean[c], inv_std[c], scale[c]);
                let (mdy, mdyx) = (mean_dy[c], mean_dy_xhat[c]);
                move |x, dy| k * (dy - mdy - (x - m) * s * mdyx)
            });
            grads.register::<Flex>(
                node.id,
                FlexTensor::from_data(TensorData::new(dx, dims.clone())),
            );
        }
        let to_tensor = |v: Vec<f64>| {
            let v: Vec<f32> = v.into_iter().map(|s| s as f32).collect();
            FlexTensor::from_data(TensorData::new(v, [shape.c]))
        };
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, to_tensor(gamma_grad));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, to_tensor(beta_grad));
        }
    }
}
