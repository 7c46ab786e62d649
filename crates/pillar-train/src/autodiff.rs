//! Putting pillar's own CPU kernels into burn's autodiff graph: the float primitive of
//! `Autodiff<Flex>`, one helper that records a one-input operation with its handwritten
//! backward pass (the polynomial, the penalty, pooling), and a tensor's values as a slice.
//! The convolution, with its two or three inputs, records itself (`conv`).

use std::borrow::Cow;

use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::Tensor;

/// The autodiff float primitive of `Autodiff<Flex>`.
pub(crate) type AdTensor = <Autodiff<Flex> as burn::backend::BackendTypes>::FloatTensorPrimitive;

/// Puts the result `out` of a one-input operation on `x` into burn's autodiff graph, with
/// `op` as its backward pass; `state` (what the backward needs) is built only when the graph
/// tracks `x`.
pub(crate) fn track_unary<const D: usize, Op: Backward<Flex, 1>>(
    x: &AdTensor,
    op: Op,
    state: impl FnOnce() -> Op::State,
    out: FlexTensor,
) -> Tensor<D> {
    let out = match op
        .prepare::<NoCheckpointing>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state(), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive::<Autodiff<Flex>>(out)
}

/// A tensor's values in logical (row-major) order, borrowed when it is already laid out so.
pub(crate) fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(t.clone().into_data().iter::<f32>().collect()),
    }
}
