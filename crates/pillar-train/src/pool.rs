//! Average pooling (square window, no padding) on the CPU, straight on NCHW buffers, with a
//! handwritten backward pass registered in burn's autodiff graph (the mechanism of
//! [`crate::conv`]).
//!
//! Why: burn 0.22's CPU backend pools through its 3-D pooling in a channels-last layout; its
//! backward pass was 5% of a MiniONN training step after the convolutions, normalisation and
//! activations had been replaced. Here each `[H, W]` plane is pooled and unpooled by plain
//! loops, planes in parallel. Other backends and dtypes use burn's `avg_pool2d`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::ops::AvgPoolOptions;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use crate::autodiff::{track_unary, values};

/// `[N, C, H, W]` averaged over `kernel x kernel` windows `stride` apart (no padding, output
/// size rounded down): the same as burn's
/// `avg_pool2d(x, AvgPoolOptions::new([kernel, kernel]).with_stride([stride, stride]))`.
pub fn avg_pool2d(x: Tensor<4>, kernel: usize, stride: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let fallback = |x| {
        burn::tensor::module::avg_pool2d(
            x,
            AvgPoolOptions::new([kernel, kernel]).with_stride([stride, stride]),
        )
    };
    if kernel == 0 || stride == 0 || h < kernel || w < kernel || x.dtype() != DType::F32 {
        return fallback(x);
    }
    let g = Geometry {
        n,
        c,
        h,
        w,
        k: kernel,
        s: stride,
        ho: (h - kernel) / stride + 1,
        wo: (w - kernel) / stride + 1,
    };
    let out_dims = vec![n, c, g.ho, g.wo];
    if x.device().is_autodiff() {
        let Ok(xp) = x.clone().try_into_primitive::<Autodiff<Flex>>() else {
            return fallback(x);
        };
        drop(x);
        let out = FlexTensor::from_data(TensorData::new(
            forward(&g, &values(xp.primitive())),
            out_dims,
        ));
        track_unary(&xp, PoolBackward, || g, out)
    } else {
        let Ok(xp) = x.clone().try_into_primitive::<Flex>() else {
            return fallback(x);
        };
        let out = forward(&g, &values(&xp));
        Tensor::from_primitive::<Flex>(FlexTensor::from_data(TensorData::new(out, out_dims)))
    }
}

/// Batch, channels, plane size, window, stride and output size.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    ho: usize,
    wo: usize,
}

fn forward(g: &Geometry, x: &[f32]) -> Vec<f32> {
    let scale = 1.0 / (g.k * g.k) as f32;
    let mut out = vec![0.0f32; g.n * g.c * g.ho * g.wo];
    out.par_chunks_mut(g.ho * g.wo)
        .zip(x.par_chunks(g.h * g.w))
        .for_each(|(out, x)| {
            for (oh, out) in out.chunks_mut(g.wo).enumerate() {
                for i in 0..g.k {
                    let row = &x[(oh * g.s + i) * g.w..][..g.w];
                    for (ow, o) in out.iter_mut().enumerate() {
                        *o += row[ow * g.s..][..g.k].iter().sum::<f32>();
                    }
                }
                for o in out.iter_mut() {
                    *o *= scale;
                }
            }
        });
    out
}

/// The input's shape is in the geometry: the backward pass needs nothing else.
#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    type State = Geometry;

    fn backward(self, ops: Ops<Geometry, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let Some(node) = node else { return };
        let g = ops.state;
        let scale = 1.0 / (g.k * g.k) as f32;
        let dy = values(&grad);
        let mut dx = vec![0.0f32; g.n * g.c * g.h * g.w];
        dx.par_chunks_mut(g.h * g.w)
            .zip(dy.par_chunks(g.ho * g.wo))
            .for_each(|(dx, dy)| {
                for (oh, dy) in dy.chunks(g.wo).enumerate() {
                    for i in 0..g.k {
                        let row = &mut dx[(oh * g.s + i) * g.w..][..g.w];
                        for (ow, &d) in dy.iter().enumerate() {
                            for v in &mut row[ow * g.s..][..g.k] {
                                *v += d * scale;
                            }
                        }
                    }
                }
            });
        let dims = [g.n, g.c, g.h, g.w];
        grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dx, dims)));
    }
}
