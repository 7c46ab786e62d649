//! The float reference: what the network computes, the way ONNX defines it. Weights and
//! results are f32 tensors; the arithmetic in between is f64, so that the reference is closer
//! to the exact value than any f32 runtime it is compared with.

use crate::error::NnError;
use crate::graph::{Conv2d, Linear, Op, Pool};
use crate::linalg::dgemm;
use crate::tensor::Tensor;
use crate::typed::TypedGraph;

/// Runs `g` on a batch `[N, ...input_shape]` and returns `[N, ...output_shape]`: what the
/// model computes, its output transform (a final softmax) included, as onnxruntime does.
pub fn run(g: &TypedGraph, input: &Tensor) -> Result<Tensor, NnError> {
    run_to(g, input, true)
}

/// The logits: [`run`] without the graph's output transform (the values a secure run opens;
/// the same as [`run`] for a graph without one).
pub fn logits(g: &TypedGraph, input: &Tensor) -> Result<Tensor, NnError> {
    run_to(g, input, false)
}

fn run_to(g: &TypedGraph, input: &Tensor, transform: bool) -> Result<Tensor, NnError> {
    let batch = g.check_input(input.shape())?;
    let shapes = g.shapes();
    let x: Vec<f64> = input.data().iter().map(|&v| f64::from(v)).collect();
    let out = g.schedule().run(x, |i, operands| {
        let node = &g.nodes[i];
        let x = operands[0];
        let in_shape = &shapes[node.inputs[0]];
        match &node.op {
            Op::Conv2d(c) => conv2d(c, x, batch, in_shape, &shapes[i + 1]),
            Op::BatchNorm(bn) => {
                let channels = in_shape[0];
                let inner: usize = in_shape[1..].iter().product();
                let affine = bn.affine();
                x.iter()
                    .enumerate()
                    .map(|(idx, v)| {
                        let (s, t) = affine[(idx / inner.max(1)) % channels.max(1)];
                        v * s + t
                    })
                    .collect()
            }
            Op::Linear(l) => linear(l, x, batch),
            Op::AvgPool(p) => pool(x, batch, in_shape, *p, false),
            Op::MaxPool(p) => pool(x, batch, in_shape, *p, true),
            Op::GlobalAvgPool => {
                let plane: usize = in_shape[1..].iter().product();
                x.chunks(plane.max(1))
                    .map(|c| c.iter().sum::<f64>() / plane as f64)
                    .collect()
            }
            Op::Add => x.iter().zip(operands[1]).map(|(a, b)| a + b).collect(),
            Op::Flatten => x.clone(),
            Op::Relu => x.iter().map(|v| v.max(0.0)).collect(),
            Op::PolyAct(p) => x.iter().map(|&v| p.eval(v)).collect(),
            Op::Clip(c) => x.iter().map(|&v| c.eval(v)).collect(),
        }
    });
    let mut out = out;
    if let Some(t) = g.output_transform.filter(|_| transform) {
        t.apply_rows(&mut out, g.output_shape().iter().product());
    }
    let shape = std::iter::once(batch)
        .chain(g.output_shape().iter().copied())
        .collect();
    Tensor::new(shape, out.into_iter().map(|v| v as f32).collect())
}

fn widen(t: &Tensor) -> Vec<f64> {
    t.data().iter().map(|&v| f64::from(v)).collect()
}

fn conv2d(
    c: &Conv2d,
    x: &[f64],
    batch: usize,
    in_shape: &[usize],
    out_shape: &[usize],
) -> Vec<f64> {
    let (ci, h, w) = (in_shape[0], in_shape[1], in_shape[2]);
    let (o, oh, ow) = (out_shape[0], out_shape[1], out_shape[2]);
    let (kh, kw) = (c.weight.shape()[2], c.weight.shape()[3]);
    let k = ci * kh * kw;
    let cols = oh * ow;
    let weight = widen(&c.weight);
    let bias = c.bias.as_ref().map(widen);
    let mut out = vec![0f64; batch * o * cols];
    let mut patches = vec![0f64; k * cols];
    for b in 0..batch {
        let image = &x[b * ci * h * w..(b + 1) * ci * h * w];
        patches.fill(0.0);
        for ch in 0..ci {
            for ky in 0..kh {
                for kx in 0..kw {
                    let row = (ch * kh + ky) * kw + kx;
                    for y in 0..oh {
                        let iy = (y * c.stride + ky) as isize - c.padding as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for xx in 0..ow {
                            let ix = (xx * c.stride + kx) as isize - c.padding as isize;
                            if ix >= 0 && (ix as usize) < w {
                                patches[row * cols + y * ow + xx] =
                                    image[(ch * h + iy as usize) * w + ix as usize];
                            }
                        }
                    }
                }
            }
        }
        let dst = &mut out[b * o * cols..(b + 1) * o * cols];
        dgemm(o, k, cols, &weight, (k, 1), &patches, (cols, 1), dst);
        if let Some(bias) = &bias {
            for (ch, plane) in dst.chunks_mut(cols).enumerate() {
                plane.iter_mut().for_each(|v| *v += bias[ch]);
            }
        }
    }
    out
}

fn linear(l: &Linear, x: &[f64], batch: usize) -> Vec<f64> {
    let (out, inp) = (l.weight.shape()[0], l.weight.shape()[1]);
    let weight = widen(&l.weight);
    let mut y = vec![0f64; batch * out];
    // W^T: element (i, o) is W[o][i]: row stride 1, column stride `inp`.
    dgemm(batch, inp, out, x, (inp, 1), &weight, (1, inp), &mut y);
    if let Some(bias) = &l.bias {
        for row in y.chunks_mut(out) {
            row.iter_mut()
                .zip(bias.data())
                .for_each(|(v, b)| *v += f64::from(*b));
        }
    }
    y
}

/// Max pooling over the elements of each window that lie in the input (the padding is never
/// a maximum); average pooling over the whole padded window, padding counted as zeros.
fn pool(x: &[f64], batch: usize, in_shape: &[usize], p: Pool, max: bool) -> Vec<f64> {
    let (c, h, w) = (in_shape[0], in_shape[1], in_shape[2]);
    // The typed graph has checked that the window fits.
    let (oh, ow) = p.output(h, w).unwrap_or((0, 0));
    let mut out = Vec::with_capacity(batch * c * oh * ow);
    let inside =
        |start: usize, d: usize, len: usize| (start + d).checked_sub(p.pad).filter(|&i| i < len);
    for plane in x.chunks(h * w).take(batch * c) {
        for y in 0..oh {
            for xx in 0..ow {
                let window = (0..p.kernel).flat_map(|dy| {
                    (0..p.kernel).filter_map(move |dx| {
                        let iy = inside(y * p.stride, dy, h)?;
                        let ix = inside(xx * p.stride, dx, w)?;
                        Some(plane[iy * w + ix])
                    })
                });
                out.push(if max {
                    window.fold(f64::NEG_INFINITY, f64::max)
                } else {
                    window.sum::<f64>() / (p.kernel * p.kernel) as f64
                });
            }
        }
    }
    out
}
