//! 2-D convolution for CPU training: im2col + GEMM in NCHW (the Caffe scheme), with a
//! handwritten backward pass, registered in burn's autodiff graph as one operation.
//!
//! Why: burn 0.22's CPU backend (flex) convolves in NHWC, so every call and both of its
//! backward passes copy tensors between NCHW and NHWC, and it computes the input gradient as a
//! transposed convolution with GEMMs of awkward shapes. On MiniONN this was about half the
//! training step. Here every image is one well-shaped GEMM per pass, straight on the NCHW
//! buffers, with images spread over rayon's threads:
//!
//! - forward: `cols = im2col(x_n)` (`[C*kh*kw, Ho*Wo]`), `y_n = W cols (+ b)`;
//! - backward: `dW = sum_n dy_n cols_n^T` (one accumulator per task of a few images, then summed),
//!   `db = sum of dy`, `dx_n = col2im(W^T dy_n)`. `cols_n` is recomputed rather than kept:
//!   it is `kh*kw` times the size of the input.
//!
//! 1x1 convolutions with stride 1 and no padding skip im2col and col2im altogether.
//!
//! Only `f32` tensors on burn's flex backend (plain, or with autodiff without gradient
//! checkpointing, the default) with one group take this path; anything else (the wgpu GPU
//! backend, grouped convolutions, `Same` padding) goes to burn's own
//! [`burn::tensor::module::conv2d`], so behaviour there is unchanged. Dilation and asymmetric
//! padding are supported. The per-task accumulation of `dW` makes it independent of the
//! thread count only up to rounding.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use crate::autodiff::{AdTensor, values};

/// Applies `conv` to `x` (`[N, C, H, W]`): the same result as `conv.forward(x)`, through this
/// module's kernels where they apply.
pub fn forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        // Depends on the input size; burn's module knows how to resolve it.
        PaddingConfig2d::Same => return conv.forward(x),
    };
    let options = ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
    conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        options,
    )
}

/// `conv2d(x, weight, bias, options)` with the semantics of [`burn::tensor::module::conv2d`]:
/// `x` is `[N, C, H, W]`, `weight` `[O, C, kh, kw]`, `bias` `[O]`.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let fallback =
        |x, weight, bias, options| burn::tensor::module::conv2d(x, weight, bias, options);
    let Some(geometry) = Geometry::new(
        x.dims(),
        weight.dims(),
        bias.as_ref().map(|b| b.dims()[0]),
        &options,
    ) else {
        return fallback(x, weight, bias, options);
    };
    let all_f32 = x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && bias.as_ref().is_none_or(|b| b.dtype() == DType::F32);
    if !all_f32 {
        return fallback(x, weight, bias, options);
    }
    // The conversions consume their tensor, so they work on (cheap, shared) clones: on a
    // mismatch the originals go to burn.
    if x.device().is_autodiff() {
        type Ad = Autodiff<Flex>;
        let xp = x.clone().try_into_primitive::<Ad>();
        let wp = weight.clone().try_into_primitive::<Ad>();
        let bp = bias
            .clone()
            .map(|b| b.try_into_primitive::<Ad>())
            .transpose();
        match (xp, wp, bp) {
            (Ok(xp), Ok(wp), Ok(bp)) => {
                Tensor::from_primitive::<Ad>(autodiff_conv(xp, wp, bp, geometry))
            }
            _ => fallback(x, weight, bias, options),
        }
    } else {
        let xp = x.clone().try_into_primitive::<Flex>();
        let wp = weight.clone().try_into_primitive::<Flex>();
        let bp = bias
            .clone()
            .map(|b| b.try_into_primitive::<Flex>())
            .transpose();
        match (xp, wp, bp) {
            (Ok(xp), Ok(wp), Ok(bp)) => {
                Tensor::from_primitive::<Flex>(forward_flex(&xp, &wp, bp.as_ref(), &geometry))
            }
            _ => fallback(x, weight, bias, options),
        }
    }
}

/// Records the convolution as one node of the autodiff graph, as burn-autodiff does for its
/// own `conv2d` (`ops/module.rs`), with [`ConvBackward`] as its backward step.
fn autodiff_conv(x: AdTensor, w: AdTensor, b: Option<AdTensor>, g: Geometry) -> AdTensor {
    let out = forward_flex(
        x.primitive(),
        w.primitive(),
        b.as_ref().map(|b| b.primitive()),
        &g,
    );
    let state = || ConvState {
        x: x.primitive().clone(),
        weight: w.primitive().clone(),
        geometry: g,
    };
    match &b {
        Some(b) => match ConvBackward::<3>
            .prepare::<NoCheckpointing>([x.node(), w.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state(), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        },
        None => match ConvBackward::<2>
            .prepare::<NoCheckpointing>([x.node(), w.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state(), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        },
    }
}

/// What the backward pass needs: the input and the weight (the forward's im2col buffers are
/// recomputed, see the module docs).
#[derive(Debug, Clone)]
struct ConvState {
    x: FlexTensor,
    weight: FlexTensor,
    geometry: Geometry,
}

/// The backward step; `N` = 3 with a bias (parents x, weight, bias), 2 without.
#[derive(Debug)]
struct ConvBackward<const N: usize>;

impl<const N: usize> Backward<Flex, N> for ConvBackward<N> {
    type State = ConvState;

    fn backward(self, ops: Ops<ConvState, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let mut parents = ops.parents.into_iter();
        let node_x = parents.next().flatten();
        let node_w = parents.next().flatten();
        let node_b = parents.next().flatten();
        let grad = grads.consume::<Flex>(&ops.node);
        let ConvState {
            x,
            weight,
            geometry: g,
        } = ops.state;
        let (dx, dw, db) = {
            let x = values(&x);
            let w = values(&weight);
            let dy = values(&grad);
            backward_slices(
                &g,
                &x,
                &w,
                &dy,
                Wanted {
                    x: node_x.is_some(),
                    weight: node_w.is_some(),
                    bias: node_b.is_some(),
                },
            )
        };
        let tensor =
            |v: Vec<f32>, shape: Vec<usize>| FlexTensor::from_data(TensorData::new(v, shape));
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, tensor(dx, vec![g.n, g.c, g.h, g.w]));
        }
        if let (Some(node), Some(dw)) = (node_w, dw) {
            grads.register::<Flex>(node.id, tensor(dw, vec![g.o, g.c, g.kh, g.kw]));
        }
        if let (Some(node), Some(db)) = (node_b, db) {
            grads.register::<Flex>(node.id, tensor(db, vec![g.o]));
        }
    }
}

/// Shapes, strides, padding and dilation of one convolution call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    /// Zero padding before the first row / column (after the last ones only shapes `ho`, `wo`).
    pt: usize,
    pl: usize,
    dh: usize,
    dw: usize,
    ho: usize,
    wo: usize,
}

impl Geometry {
    /// `None` when this module does not handle the call (groups, mismatched shapes, an empty
    /// output): burn then does it, and reports errors its own way.
    fn new(
        x: [usize; 4],
        weight: [usize; 4],
        bias: Option<usize>,
        options: &ConvOptions<2>,
    ) -> Option<Geometry> {
        let [n, c, h, w] = x;
        let [o, ci, kh, kw] = weight;
        if options.groups != 1 || ci != c || bias.is_some_and(|b| b != o) {
            return None;
        }
        let [sh, sw] = options.stride;
        let [dh, dw] = options.dilation;
        let [(pt, pb), (pl, pr)] = options.padding;
        if sh == 0 || sw == 0 || dh == 0 || dw == 0 || kh == 0 || kw == 0 {
            return None;
        }
        let span_h = dh * (kh - 1) + 1;
        let span_w = dw * (kw - 1) + 1;
        let (ph, pw) = (h + pt + pb, w + pl + pr);
        if ph < span_h || pw < span_w || n == 0 || c == 0 || o == 0 {
            return None;
        }
        Some(Geometry {
            n,
            c,
            h,
            w,
            o,
            kh,
            kw,
            sh,
            sw,
            pt,
            pl,
            dh,
            dw,
            ho: (ph - span_h) / sh + 1,
            wo: (pw - span_w) / sw + 1,
        })
    }

    /// Rows of the im2col matrix (`C*kh*kw`, the GEMM's inner dimension in the forward pass).
    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Output positions per channel (`Ho*Wo`).
    fn p(&self) -> usize {
        self.ho * self.wo
    }

    /// Input elements per image.
    fn chw(&self) -> usize {
        self.c * self.h * self.w
    }

    /// A 1x1 kernel at stride 1 without padding: the input image already is its im2col matrix.
    fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.pt == 0
            && self.pl == 0
            && self.ho == self.h
            && self.wo == self.w
    }

    /// Output columns `ow` whose input column `ow*sw + offset - pl` lies inside `[0, w)`, as
    /// `lo..hi`.
    fn valid_columns(&self, offset: usize) -> (usize, usize) {
        valid_range(offset, self.pl, self.sw, self.w, self.wo)
    }
}

/// The `o` in `0..count` with `0 <= o*stride + offset - pad < len`, as `lo..hi`.
fn valid_range(
    offset: usize,
    pad: usize,
    stride: usize,
    len: usize,
    count: usize,
) -> (usize, usize) {
    let lo = if pad > offset {
        (pad - offset).div_ceil(stride)
    } else {
        0
    };
    let hi = if pad + len > offset {
        (pad + len - offset).div_ceil(stride).min(count)
    } else {
        0
    };
    (lo.min(count), hi.max(lo.min(count)))
}

/// The forward pass on flex tensors.
fn forward_flex(
    x: &FlexTensor,
    w: &FlexTensor,
    b: Option<&FlexTensor>,
    g: &Geometry,
) -> FlexTensor {
    let x = values(x);
    let w = values(w);
    let b = b.map(values);
    let out = forward_slices(g, &x, &w, b.as_deref());
    FlexTensor::from_data(TensorData::new(out, [g.n, g.o, g.ho, g.wo]))
}

/// Images per parallel task, and the GEMM's own parallelism: images are spread over the
/// threads; with fewer images than threads each GEMM uses them all instead.
fn schedule(n: usize) -> (usize, gemm::Parallelism) {
    let threads = rayon::current_num_threads().max(1);
    if n < threads {
        (1, gemm::Parallelism::Rayon(0))
    } else {
        // A few tasks per thread, so that a thread slowed by other work gets fewer.
        (n.div_ceil(threads * 4).max(1), gemm::Parallelism::None)
    }
}

/// `y = conv(x, w) + b` on NCHW buffers.
fn forward_slices(g: &Geometry, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
    let (k, p, chw) = (g.k(), g.p(), g.chw());
    let mut out = vec![0.0f32; g.n * g.o * p];
    let (per_task, par) = schedule(g.n);
    let weight = MatRef::new(w, k, 1);
    out.par_chunks_mut(per_task * g.o * p)
        .zip(x.par_chunks(per_task * chw))
        .for_each(|(out, x)| {
            let mut cols = if g.is_pointwise() {
                Vec::new()
            } else {
                vec![0.0f32; k * p]
            };
            for (y, x) in out.chunks_mut(g.o * p).zip(x.chunks(chw)) {
                let cols: &[f32] = if g.is_pointwise() {
                    x
                } else {
                    im2col(g, x, &mut cols);
                    &cols
                };
                if let Some(b) = b {
                    for (row, &bias) in y.chunks_mut(p).zip(b) {
                        row.fill(bias);
                    }
                }
                matmul(
                    g.o,
                    p,
                    k,
                    y,
                    p,
                    b.is_some(),
                    weight,
                    MatRef::new(cols, p, 1),
                    par,
                );
            }
        });
    out
}

/// Which gradients the graph asks for.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    x: bool,
    weight: bool,
    bias: bool,
}

/// Gradients with respect to the input, the weight and the bias, each if wanted.
type Grads = (Option<Vec<f32>>, Option<Vec<f32>>, Option<Vec<f32>>);

/// The backward pass on NCHW buffers, `dy` being the gradient of the output.
fn backward_slices(g: &Geometry, x: &[f32], w: &[f32], dy: &[f32], wanted: Wanted) -> Grads {
    let (k, p, chw) = (g.k(), g.p(), g.chw());
    let (per_task, par) = schedule(g.n);
    let weight_t = MatRef::new(w, 1, k);
    let mut dx = if wanted.x {
        vec![0.0f32; g.n * chw]
    } else {
        Vec::new()
    };
    // One mutable slice of `dx` per task (empty ones when the input needs no gradient).
    let tasks = g.n.div_ceil(per_task);
    let mut dx_parts: Vec<&mut [f32]> = dx.chunks_mut(per_task * chw).collect();
    dx_parts.resize_with(tasks, Default::default);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx_parts
        .into_par_iter()
        .enumerate()
        .map(|(task, dx)| {
            let first = task * per_task;
            let last = (first + per_task).min(g.n);
            let mut dw = if wanted.weight {
                vec![0.0f32; g.o * k]
            } else {
                Vec::new()
            };
            let mut db = if wanted.bias {
                vec![0.0f32; g.o]
            } else {
                Vec::new()
            };
            let pointwise = g.is_pointwise();
            let mut cols = if wanted.weight && !pointwise {
                vec![0.0f32; k * p]
            } else {
                Vec::new()
            };
            let mut dcols = if wanted.x && !pointwise {
                vec![0.0f32; k * p]
            } else {
                Vec::new()
            };
            for img in first..last {
                let x = &x[img * chw..(img + 1) * chw];
                let dy = &dy[img * g.o * p..(img + 1) * g.o * p];
                if wanted.bias {
                    for (acc, row) in db.iter_mut().zip(dy.chunks(p)) {
                        *acc += row.iter().sum::<f32>();
                    }
                }
                if wanted.weight {
                    let cols: &[f32] = if pointwise {
                        x
                    } else {
                        im2col(g, x, &mut cols);
                        &cols
                    };
                    // dW[O, K] += dy[O, P] cols^T[P, K]
                    matmul(
                        g.o,
                        k,
                        p,
                        &mut dw,
                        k,
                        true,
                        MatRef::new(dy, p, 1),
                        MatRef::new(cols, 1, p),
                        par,
                    );
                }
                if wanted.x {
                    let local = img - first;
                    let dx = &mut dx[local * chw..(local + 1) * chw];
                    // dcols[K, P] = W^T[K, O] dy[O, P]
                    let target: &mut [f32] = if pointwise { dx } else { &mut dcols };
                    matmul(
                        k,
                        p,
                        g.o,
                        target,
                        p,
                        false,
                        weight_t,
                        MatRef::new(dy, p, 1),
                        par,
                    );
                    if !pointwise {
                        col2im(g, &dcols, dx);
                    }
                }
            }
            (dw, db)
        })
        .collect();
    let (dws, dbs): (Vec<Vec<f32>>, Vec<Vec<f32>>) = partials.into_iter().unzip();
    (
        wanted.x.then_some(dx),
        wanted.weight.then(|| sum_parts(&dws, g.o * k)),
        wanted.bias.then(|| sum_parts(&dbs, g.o)),
    )
}

/// The element-wise sum of the per-task partial results (each `len` long).
fn sum_parts(parts: &[Vec<f32>], len: usize) -> Vec<f32> {
    let mut total = vec![0.0f32; len];
    for part in parts {
        for (t, v) in total.iter_mut().zip(part) {
            *t += v;
        }
    }
    total
}

/// Unfolds one image `[C, H, W]` into `cols` `[C*kh*kw, Ho*Wo]`: row `(c, i, j)` holds the
/// input pixel under kernel tap `(i, j)` for every output position (zero in the padding).
fn im2col(g: &Geometry, x: &[f32], cols: &mut [f32]) {
    let p = g.p();
    let mut rows = cols.chunks_mut(p);
    for plane in x.chunks(g.h * g.w) {
        for i in 0..g.kh {
            for j in 0..g.kw {
                let Some(row) = rows.next() else { return };
                let (lo, hi) = g.valid_columns(j * g.dw);
                for (oh, out) in row.chunks_mut(g.wo).enumerate() {
                    let ih = (oh * g.sh + i * g.dh)
                        .checked_sub(g.pt)
                        .filter(|&ih| ih < g.h);
                    let Some(ih) = ih else {
                        out.fill(0.0);
                        continue;
                    };
                    let src = &plane[ih * g.w..(ih + 1) * g.w];
                    out[..lo].fill(0.0);
                    out[hi..].fill(0.0);
                    if lo < hi {
                        let start = lo * g.sw + j * g.dw - g.pl;
                        if g.sw == 1 {
                            out[lo..hi].copy_from_slice(&src[start..start + hi - lo]);
                        } else {
                            for (o, s) in out[lo..hi]
                                .iter_mut()
                                .zip(src[start..].iter().step_by(g.sw))
                            {
                                *o = *s;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds every entry of `cols` back onto the input pixel it was
/// read from, into `dx` (`[C, H, W]`, zeroed by the caller).
fn col2im(g: &Geometry, cols: &[f32], dx: &mut [f32]) {
    let p = g.p();
    let mut rows = cols.chunks(p);
    for plane in dx.chunks_mut(g.h * g.w) {
        for i in 0..g.kh {
            for j in 0..g.kw {
                let Some(row) = rows.next() else { return };
                let (lo, hi) = g.valid_columns(j * g.dw);
                if lo >= hi {
                    continue;
                }
                for (oh, src) in row.chunks(g.wo).enumerate() {
                    let ih = (oh * g.sh + i * g.dh)
                        .checked_sub(g.pt)
                        .filter(|&ih| ih < g.h);
                    let Some(ih) = ih else { continue };
                    let dst = &mut plane[ih * g.w..(ih + 1) * g.w];
                    let start = lo * g.sw + j * g.dw - g.pl;
                    if g.sw == 1 {
                        for (d, s) in dst[start..start + hi - lo].iter_mut().zip(&src[lo..hi]) {
                            *d += s;
                        }
                    } else {
                        for (d, s) in dst[start..].iter_mut().step_by(g.sw).zip(&src[lo..hi]) {
                            *d += s;
                        }
                    }
                }
            }
        }
    }
}

/// A read-only matrix view: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Debug, Clone, Copy)]
struct MatRef<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    fn new(data: &'a [f32], rs: usize, cs: usize) -> Self {
        MatRef { data, rs, cs }
    }

    /// Whether a `rows x cols` matrix with these strides lies inside `data`.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst[m, n] = (dst if accumulate) + lhs[m, k] rhs[k, n]`, `dst` row-major with row stride
/// `dst_rs`, through the `gemm` crate (the GEMM burn's CPU backend uses).
///
/// # Panics
/// If a matrix does not fit its slice (a bug in this module, never a user input).
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    parallelism: gemm::Parallelism,
) {
    assert!(
        lhs.fits(m, k) && rhs.fits(k, n) && (m == 0 || n == 0 || (m - 1) * dst_rs + n <= dst.len()),
        "conv: GEMM operands do not fit their buffers"
    );
    assert!(m <= 1 || dst_rs >= n, "conv: GEMM output rows overlap");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_rs).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: the asserts above keep every element gemm reads (`lhs`, `rhs`: rows x cols at
    // the given strides) or writes (`dst`: m rows of n elements, `dst_rs` apart, which do not
    // overlap) inside its slice; `dst` is borrowed mutably, so it aliases neither operand.
    // Strides and sizes are far below isize::MAX (they index existing slices).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn valid_ranges() {
        // pad 1, stride 1, width 4, 4 outputs, tap 0: output 0 reads column -1.
        assert_eq!(valid_range(0, 1, 1, 4, 4), (1, 4));
        assert_eq!(valid_range(2, 1, 1, 4, 4), (0, 3));
        // stride 2: outputs 0..3 read columns -1, 1, 3.
        assert_eq!(valid_range(0, 1, 2, 4, 3), (1, 3));
        // a tap entirely in the padding
        assert_eq!(valid_range(9, 0, 1, 4, 2), (0, 0));
    }
}
