//! The polynomial activation, PILLAR's penalty and the activation statistics as single passes
//! over the tensor on the CPU, with handwritten backward passes registered in burn's autodiff
//! graph (the same mechanism as [`crate::conv`]).
//!
//! Why: composed from burn tensor operations, a PolyReLU layer in training is about twenty
//! passes over its input forward (statistics, `|x/r|^e` by squaring, the clamp as two
//! comparisons and two masked fills, Horner's rule) and as many backward, each allocating a
//! tensor; on MiniONN that was over a third of the training step. Here:
//!
//! - [`poly`]: `p(clamp(x, -R, R))` forward, `dy * p'(clamp(x)) * [-R <= x <= R]` backward;
//! - [`penalty`]: `sum |x/r|^e` forward, `g * e/r * |x/r|^(e-1) * sign(x)` backward;
//! - [`stats`]: `[#{|x| >= range}, max |x|, sum |x|]`, detached.
//!
//! Each gives the same values as the composition it replaces (up to rounding, the tests
//! check), which stays the path for anything but `f32` tensors on burn's flex backend.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use crate::activation::{abs_pow, horner};
use crate::autodiff::{AdTensor, track_unary, values};

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

/// A float tensor's primitive on flex, with or without autodiff.
enum Primitive {
    Autodiff(AdTensor),
    Plain(FlexTensor),
}

impl Primitive {
    /// `None` for other backends and other dtypes.
    fn of<const D: usize>(x: &Tensor<D>) -> Option<Primitive> {
        if x.dtype() != DType::F32 {
            return None;
        }
        if x.device().is_autodiff() {
            x.clone()
                .try_into_primitive::<Autodiff<Flex>>()
                .ok()
                .map(Primitive::Autodiff)
        } else {
            x.clone()
                .try_into_primitive::<Flex>()
                .ok()
                .map(Primitive::Plain)
        }
    }

    fn flex(&self) -> &FlexTensor {
        match self {
            Primitive::Autodiff(t) => t.primitive(),
            Primitive::Plain(t) => t,
        }
    }
}

/// A flex tensor of `shape` holding `values`.
fn flex_tensor(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Elements per block: the kernels below work on fixed-size arrays, which the compiler keeps
/// in vector registers; the last block of a slice is padded with zeros.
const LANES: usize = 64;

/// A block of inputs: `x` (at most `LANES` values) copied into a zero-padded array.
#[inline]
fn block(x: &[f32]) -> [f32; LANES] {
    // A full block converts without a call to memcpy.
    if let Ok(b) = <[f32; LANES]>::try_from(x) {
        return b;
    }
    let mut b = [0.0f32; LANES];
    b[..x.len()].copy_from_slice(x);
    b
}

/// `out = f(a block, b block)` block by block over `a` and `b` (equal lengths; `b` may be
/// empty, then `f` sees zeros for it), in parallel.
fn par_blocks(
    a: &[f32],
    b: &[f32],
    f: impl Fn(&[f32; LANES], &[f32; LANES]) -> [f32; LANES] + Sync,
) -> Vec<f32> {
    let mut out = vec![0.0f32; a.len()];
    let zeros = [0.0f32; LANES];
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK))
        .enumerate()
        .for_each(|(i, (out, a))| {
            let b = b.get(i * CHUNK..i * CHUNK + a.len());
            for (k, (out, a)) in out.chunks_mut(LANES).zip(a.chunks(LANES)).enumerate() {
                let bb = match b {
                    Some(b) => block(&b[k * LANES..k * LANES + a.len()]),
                    None => zeros,
                };
                let y = f(&block(a), &bb);
                match <&mut [f32; LANES]>::try_from(&mut *out) {
                    Ok(full) => *full = y,
                    Err(_) => out.copy_from_slice(&y[..out.len()]),
                }
            }
        });
    out
}

/// `x` clamped to `[-r, r]`, NaN kept (as burn's clamp, which compares and masks).
#[inline]
fn clamp_to(x: f32, r: f32) -> f32 {
    if x > r {
        r
    } else if x < -r {
        -r
    } else {
        x
    }
}

/// A polynomial in `f32` by Horner's rule in the order [`horner`] uses (so values agree to
/// the last bit), and its derivative.
#[derive(Debug, Clone)]
struct Poly {
    /// `c_0..c_d`.
    c: Vec<f32>,
    /// `k c_k` for `k = 1..d`: the derivative's coefficients.
    dc: Vec<f32>,
}

impl Poly {
    fn new(coefficients: &[f64]) -> Poly {
        let c: Vec<f32> = coefficients.iter().map(|&c| c as f32).collect();
        let dc = c
            .iter()
            .enumerate()
            .skip(1)
            .map(|(k, &c)| k as f32 * c)
            .collect();
        Poly { c, dc }
    }

    /// `c(x)` for a block, by Horner's rule in the order [`horner`] uses (so values agree
    /// with it to the last bit).
    #[inline]
    fn eval(c: &[f32], x: &[f32; LANES]) -> [f32; LANES] {
        let mut rev = c.iter().rev();
        let Some(&top) = rev.next() else {
            return [0.0; LANES];
        };
        let Some(&next) = rev.next() else {
            return [top; LANES];
        };
        let mut y = [0.0f32; LANES];
        for (y, &x) in y.iter_mut().zip(x) {
            *y = x * top + next;
        }
        for &c in rev {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = *y * x + c;
            }
        }
        y
    }
}

/// `p(x)` with `p` given by `coefficients` (`c_0..c_d`), `x` clamped to `[-r, r]` first when
/// `clamp` is `Some(r)`: the same as `horner(x.clamp(-r, r), coefficients)`, in one pass.
pub fn poly<const D: usize>(x: Tensor<D>, coefficients: &[f64], clamp: Option<f64>) -> Tensor<D> {
    let Some(prim) = Primitive::of(&x) else {
        let x = match clamp {
            Some(r) => x.clamp(-r, r),
            None => x,
        };
        return horner(x, coefficients);
    };
    let shape = x.dims().to_vec();
    drop(x);
    let p = Poly::new(coefficients);
    let range = clamp.map(|r| r as f32);
    let out = {
        let xs = values(prim.flex());
        let c = &p.c;
        par_blocks(&xs, &[], |x, _| match range {
            Some(r) => Poly::eval(c, &x.map(|x| clamp_to(x, r))),
            None => Poly::eval(c, x),
        })
    };
    let out = flex_tensor(out, shape);
    match prim {
        Primitive::Plain(_) => Tensor::from_primitive::<Flex>(out),
        Primitive::Autodiff(x) => {
            let state = || PolyState {
                x: x.primitive().clone(),
                poly: p.clone(),
                range,
            };
            track_unary(&x, PolyBackward, state, out)
        }
    }
}

#[derive(Debug, Clone)]
struct PolyState {
    x: FlexTensor,
    poly: Poly,
    range: Option<f32>,
}

#[derive(Debug)]
struct PolyBackward;

impl Backward<Flex, 1> for PolyBackward {
    type State = PolyState;

    fn backward(self, ops: Ops<PolyState, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let Some(node) = node else { return };
        let PolyState { x, poly, range } = ops.state;
        let shape = x.layout().shape().to_vec();
        let dx = {
            let xs = values(&x);
            let dy = values(&grad);
            let dc = &poly.dc;
            par_blocks(&xs, &dy, |x, dy| {
                let mut d = Poly::eval(dc, x);
                for ((d, &dy), &x) in d.iter_mut().zip(dy).zip(x) {
                    // As burn's clamp: the gradient passes where `-r <= x <= r` (and NaN).
                    let outside = range.is_some_and(|r| x > r || x < -r);
                    *d = if outside { 0.0 } else { dy * *d };
                }
                d
            })
        };
        grads.register::<Flex>(node.id, flex_tensor(dx, shape));
    }
}

/// `|s|^e` for a block, by repeated squaring in the order [`abs_pow`] multiplies.
#[inline]
fn abs_pow_block(s: &[f32; LANES], e: u32) -> [f32; LANES] {
    let (mut base, mut e) = if e.is_multiple_of(2) {
        (s.map(|s| s * s), e / 2)
    } else {
        (s.map(f32::abs), e)
    };
    let mut acc: Option<[f32; LANES]> = None;
    while e > 0 {
        if e & 1 == 1 {
            acc = Some(match acc {
                Some(mut a) => {
                    for (a, b) in a.iter_mut().zip(&base) {
                        *a *= b;
                    }
                    a
                }
                None => base,
            });
        }
        e >>= 1;
        if e > 0 {
            for b in base.iter_mut() {
                *b *= *b;
            }
        }
    }
    acc.unwrap_or([1.0; LANES])
}

/// Adds a block's first `n` values to `LANES` partial sums.
#[inline]
fn add_block(acc: &mut [f32; LANES], v: &[f32; LANES], n: usize) {
    for (i, (a, &v)) in acc.iter_mut().zip(v).enumerate() {
        if i < n {
            *a += v;
        }
    }
}

/// PILLAR's penalty of one call without its weight, `sum |x/r|^e` as a `[1]` tensor: the same
/// as `abs_pow(x.div_scalar(r), e).sum()`, in one pass.
pub fn penalty<const D: usize>(x: Tensor<D>, reg_range: f64, exponent: u32) -> Tensor<1> {
    let Some(prim) = Primitive::of(&x) else {
        return abs_pow(x.div_scalar(reg_range), exponent).sum();
    };
    drop(x);
    let r = reg_range as f32;
    let total: f64 = {
        let xs = values(prim.flex());
        xs.par_chunks(CHUNK)
            .map(|c| {
                let mut acc = [0.0f32; LANES];
                for x in c.chunks(LANES) {
                    let s = block(x).map(|x| x / r);
                    add_block(&mut acc, &abs_pow_block(&s, exponent), x.len());
                }
                acc.iter().map(|&a| f64::from(a)).sum::<f64>()
            })
            .sum()
    };
    let out = flex_tensor(vec![total as f32], vec![1]);
    match prim {
        Primitive::Plain(_) => Tensor::from_primitive::<Flex>(out),
        Primitive::Autodiff(x) => {
            let state = || PenaltyState {
                x: x.primitive().clone(),
                r,
                exponent,
            };
            track_unary(&x, PenaltyBackward, state, out)
        }
    }
}

#[derive(Debug, Clone)]
struct PenaltyState {
    x: FlexTensor,
    r: f32,
    exponent: u32,
}

#[derive(Debug)]
struct PenaltyBackward;

impl Backward<Flex, 1> for PenaltyBackward {
    type State = PenaltyState;

    fn backward(self, ops: Ops<PenaltyState, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let Some(node) = node else { return };
        let PenaltyState { x, r, exponent } = ops.state;
        let shape = x.layout().shape().to_vec();
        let g = values(&grad).first().copied().unwrap_or(0.0);
        // d/dx |x/r|^e = e/r |x/r|^(e-1) sign(x)
        let scale = g * exponent as f32 / r;
        let dx = {
            let xs = values(&x);
            par_blocks(&xs, &[], |x, _| {
                if exponent == 0 {
                    return [0.0; LANES];
                }
                let s = x.map(|x| x / r);
                let mut d = abs_pow_block(&s, exponent - 1);
                for (d, &s) in d.iter_mut().zip(&s) {
                    let sign = if s > 0.0 {
                        1.0
                    } else if s < 0.0 {
                        -1.0
                    } else {
                        0.0
                    };
                    *d *= scale * sign;
                }
                d
            })
        };
        grads.register::<Flex>(node.id, flex_tensor(dx, shape));
    }
}

/// What the activation tape records of an input, detached, as a `[3]` tensor on `x`'s device:
/// the number of `|x| >= range`, the largest `|x|` (NaN if any input is NaN) and the sum of
/// `|x|`.
pub fn stats<const D: usize>(x: &Tensor<D>, range: f64) -> Tensor<1> {
    let Some(prim) = Primitive::of(x) else {
        let abs = x.clone().detach().abs().flatten::<1>(0, D - 1);
        let oor = abs.clone().greater_equal_elem(range).float().sum();
        return Tensor::cat(vec![oor, abs.clone().max(), abs.sum()], 0);
    };
    let range = range as f32;
    let (count, max, sum) = {
        let xs = values(prim.flex());
        xs.par_chunks(CHUNK)
            .map(|c| {
                let mut count = [0.0f32; LANES];
                let mut max = [0.0f32; LANES];
                let mut sum = [0.0f32; LANES];
                for x in c.chunks(LANES) {
                    // Zero padding adds nothing to any of the three.
                    let a = block(x).map(f32::abs);
                    for i in 0..LANES {
                        count[i] += if a[i] >= range { 1.0 } else { 0.0 };
                        max[i] = if a[i] > max[i] { a[i] } else { max[i] };
                        sum[i] += a[i];
                    }
                }
                let wide = |v: [f32; LANES]| v.iter().map(|&v| f64::from(v)).sum::<f64>();
                (
                    wide(count),
                    max.iter().fold(0.0f32, |m, &v| m.max(v)),
                    wide(sum),
                )
            })
            .reduce(
                || (0.0, 0.0, 0.0),
                |a, b| (a.0 + b.0, a.1.max(b.1), a.2 + b.2),
            )
    };
    // A NaN input makes the sum NaN; the maximum says so too.
    let max = if sum.is_nan() { f32::NAN } else { max };
    Tensor::from_data(
        TensorData::new(vec![count as f32, max, sum as f32], [3]),
        &x.device(),
    )
}
