//! Constant folding: the tensors a model computes from its constants and the input's shape
//! alone (`torch.zeros_like(x)`, a weight reshaped, a shape computed for a `view`) are
//! evaluated while importing, so that they cost nothing at inference.
//!
//! Three forms keep this bounded. A dense [`Const`] holds its elements, counted against a
//! [`Budget`] whenever one is computed; an [`Ints`] vector may hold the batch size, unknown
//! until run time (shape arithmetic, see [`super::symbolic`]); and a [`Fill`], a tensor whose
//! elements all equal one value, holds only its shape, which may hold the batch size too
//! (`ConstantOfShape(Shape(x))`), and is never expanded unless a layer reads it as a weight. A
//! uniform constant whose shape broadcasts to an activation is a scalar to the polynomial
//! arithmetic of [`super::fuse`].

use std::rc::Rc;

use super::proto::data_type;
use super::symbolic::{Ints, Sym};
use super::tensor::{Const, Data, type_name};

type Res<T> = Result<T, String>;

/// One element, in the precision of its tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar {
    F32(f32),
    F64(f64),
    I64(i64),
}

impl Scalar {
    /// As f64 (integers as the nearest f64).
    pub(crate) fn get(self) -> f64 {
        match self {
            Scalar::F32(v) => f64::from(v),
            Scalar::F64(v) => v,
            Scalar::I64(v) => v as f64,
        }
    }

    fn of(data: &Data, i: usize) -> Option<Scalar> {
        match data {
            Data::F32(v) => v.get(i).map(|&x| Scalar::F32(x)),
            Data::F64(v) => v.get(i).map(|&x| Scalar::F64(x)),
            Data::I64(v) => v.get(i).map(|&x| Scalar::I64(x)),
        }
    }

    fn repeat(self, n: usize) -> Data {
        match self {
            Scalar::F32(v) => Data::F32(vec![v; n]),
            Scalar::F64(v) => Data::F64(vec![v; n]),
            Scalar::I64(v) => Data::I64(vec![v; n]),
        }
    }

    fn is_int(self) -> bool {
        matches!(self, Scalar::I64(_))
    }
}

/// A tensor whose elements all equal `value`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fill {
    /// Its shape, which may hold the batch size.
    pub dims: Vec<Sym>,
    /// Its one value.
    pub value: Scalar,
}

/// A constant in one of its three forms.
#[derive(Debug, Clone)]
pub(crate) enum Folded {
    Dense(Rc<Const>),
    Ints(Ints),
    Fill(Fill),
}

/// What the constants computed while importing may still take, in bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget(pub u64);

impl Budget {
    /// Reserves `n` elements of `size` bytes, refusing past the budget.
    fn take(&mut self, n: usize, size: u64) -> Res<()> {
        let bytes = (n as u64).saturating_mul(size);
        if bytes > self.0 {
            return Err(format!(
                "computes a constant of {n} elements, more than pillar folds (at most {} MiB \
                 of computed constants per model)",
                super::MAX_FOLDED_BYTES >> 20
            ));
        }
        self.0 -= bytes;
        Ok(())
    }
}

fn element_size(d: &Data) -> u64 {
    match d {
        Data::F32(_) => 4,
        _ => 8,
    }
}

/// `[N, 2, 3]` for messages.
pub(crate) fn show(dims: &[Sym]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|s| match s {
            Sym::Batch => "N".to_string(),
            Sym::Known(k) => k.to_string(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn known_dims(dims: &[usize]) -> Vec<Sym> {
    dims.iter().map(|&d| Sym::Known(d as i64)).collect()
}

/// The dimensions, if none is the batch size, checked to be sizes.
fn concrete(dims: &[Sym]) -> Res<Vec<usize>> {
    dims.iter()
        .map(|s| match s {
            Sym::Known(k) => usize::try_from(*k).map_err(|_| format!("dimension {k}")),
            Sym::Batch => Err(format!(
                "needs a constant of shape {} whose size depends on the batch; pillar folds \
                 such tensors only when all their elements are equal",
                show(dims)
            )),
        })
        .collect()
}

fn count(dims: &[usize]) -> Res<usize> {
    dims.iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("dimensions {dims:?} overflow"))
}

impl Folded {
    /// A decoded constant, as shape arithmetic when it is an integer vector.
    pub(crate) fn from_const(c: Rc<Const>) -> Folded {
        match Ints::from_const(&c) {
            Some(i) => Folded::Ints(i),
            None => Folded::Dense(c),
        }
    }

    /// Its shape.
    pub(crate) fn dims(&self) -> Vec<Sym> {
        match self {
            Folded::Dense(c) => known_dims(&c.dims),
            Folded::Ints(i) if i.scalar => vec![],
            Folded::Ints(i) => vec![Sym::Known(i.vals.len() as i64)],
            Folded::Fill(f) => f.dims.clone(),
        }
    }

    fn is_int(&self) -> bool {
        match self {
            Folded::Dense(c) => matches!(c.data, Data::I64(_)),
            Folded::Ints(_) => true,
            Folded::Fill(f) => f.value.is_int(),
        }
    }

    /// Its one value, if it has at least one element and all are equal.
    pub(crate) fn uniform(&self) -> Option<Scalar> {
        match self {
            Folded::Fill(f) => Some(f.value),
            Folded::Dense(c) => {
                let first = Scalar::of(&c.data, 0)?;
                let same = match &c.data {
                    Data::F32(v) => v.iter().all(|x| x.to_bits() == v[0].to_bits()),
                    Data::F64(v) => v.iter().all(|x| x.to_bits() == v[0].to_bits()),
                    Data::I64(v) => v.iter().all(|x| *x == v[0]),
                };
                same.then_some(first)
            }
            Folded::Ints(i) => match i.vals.first() {
                Some(Sym::Known(k)) if i.vals.iter().all(|v| *v == Sym::Known(*k)) => {
                    Some(Scalar::I64(*k))
                }
                _ => None,
            },
        }
    }

    /// Its elements, computing them if need be (within `budget`).
    pub(crate) fn dense(&self, budget: &mut Budget) -> Res<Rc<Const>> {
        match self {
            Folded::Dense(c) => Ok(Rc::clone(c)),
            Folded::Ints(i) => {
                let vals = i
                    .vals
                    .iter()
                    .map(|s| match s {
                        Sym::Known(k) => Ok(*k),
                        Sym::Batch => Err(
                            "uses the batch size where pillar needs a constant (a shape that \
                             depends on the batch can only be a reshape target)"
                                .to_string(),
                        ),
                    })
                    .collect::<Res<Vec<i64>>>()?;
                Ok(Rc::new(Const {
                    dims: if i.scalar { vec![] } else { vec![vals.len()] },
                    data: Data::I64(vals),
                }))
            }
            Folded::Fill(f) => {
                let dims = concrete(&f.dims)?;
                let n = count(&dims)?;
                let data = f.value.repeat(0);
                budget.take(n, element_size(&data))?;
                Ok(Rc::new(Const {
                    dims,
                    data: f.value.repeat(n),
                }))
            }
        }
    }

    /// Shape arithmetic, if it is an integer scalar or vector.
    pub(crate) fn ints(&self, budget: &mut Budget) -> Option<Ints> {
        match self {
            Folded::Ints(i) => Some(i.clone()),
            Folded::Dense(c) => Ints::from_const(c),
            Folded::Fill(f) if f.value.is_int() && f.dims.len() <= 1 => {
                Ints::from_const(&*self.dense(budget).ok()?)
            }
            Folded::Fill(_) => None,
        }
    }
}

/// `c` as the constant form it fits best: integer vectors as shape arithmetic.
fn finish(c: Const) -> Folded {
    Folded::from_const(Rc::new(c))
}

/// Elements of `c` taken along each axis at `lists[axis]` (an outer product of selections),
/// within `budget`. Every slicing, gathering and broadcasting below is one of these.
fn select(c: &Const, lists: &[Vec<usize>], budget: &mut Budget) -> Res<Const> {
    let dims: Vec<usize> = lists.iter().map(Vec::len).collect();
    let n = count(&dims)?;
    budget.take(n, element_size(&c.data))?;
    let mut strides = vec![1usize; c.dims.len()];
    for a in (0..c.dims.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * c.dims[a + 1];
    }
    let mut src = Vec::with_capacity(n);
    let mut at = vec![0usize; dims.len()];
    for _ in 0..n {
        src.push(
            at.iter()
                .zip(lists)
                .zip(&strides)
                .map(|((&i, l), s)| l[i] * s)
                .sum::<usize>(),
        );
        for a in (0..dims.len()).rev() {
            at[a] += 1;
            if at[a] < dims[a] {
                break;
            }
            at[a] = 0;
        }
    }
    let data = match &c.data {
        Data::F32(v) => Data::F32(src.iter().map(|&i| v[i]).collect()),
        Data::F64(v) => Data::F64(src.iter().map(|&i| v[i]).collect()),
        Data::I64(v) => Data::I64(src.iter().map(|&i| v[i]).collect()),
    };
    Ok(Const { dims, data })
}

/// An axis of a rank-`rank` tensor, negative ones counting from the end.
fn axis(a: i64, rank: usize) -> Res<usize> {
    let r = rank as i64;
    if (-r..r).contains(&a) {
        Ok((if a < 0 { a + r } else { a }) as usize)
    } else {
        Err(format!("axis {a} is out of range for rank {rank}"))
    }
}

/// The NumPy broadcast of two shapes.
pub(crate) fn broadcast(a: &[Sym], b: &[Sym]) -> Res<Vec<Sym>> {
    let rank = a.len().max(b.len());
    let at = |d: &[Sym], i: usize| {
        (i + d.len())
            .checked_sub(rank)
            .map_or(Sym::Known(1), |j| d[j])
    };
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Ok(x),
            (Sym::Known(1), y) => Ok(y),
            (x, Sym::Known(1)) => Ok(x),
            _ => Err(format!(
                "shapes {} and {} do not broadcast",
                show(a),
                show(b)
            )),
        })
        .collect()
}

/// Whether a tensor of shape `c` broadcasts to `act` without enlarging it: what lets a
/// uniform constant act as a scalar on the activation. A fixed batch `batch` matches `N`.
pub(crate) fn fits(c: &[Sym], act: &[Sym], batch: Option<usize>) -> bool {
    c.len() <= act.len()
        && c.iter().rev().zip(act.iter().rev()).all(|(x, y)| {
            x == y
                || *x == Sym::Known(1)
                || (*y == Sym::Batch && batch.is_some_and(|b| *x == Sym::Known(b as i64)))
        })
}

/// `c` broadcast to `dims` (all known).
fn expand_dense(c: &Const, dims: &[usize], budget: &mut Budget) -> Res<Const> {
    let pad = dims.len() - c.dims.len();
    let lists: Vec<Vec<usize>> = dims
        .iter()
        .enumerate()
        .map(|(i, &d)| match i.checked_sub(pad).map(|j| c.dims[j]) {
            Some(1) | None => vec![0; d],
            Some(_) => (0..d).collect(),
        })
        .collect();
    let mut out = select(
        &Const {
            dims: std::iter::repeat_n(1, pad).chain(c.dims.clone()).collect(),
            data: c.data.clone(),
        },
        &lists,
        budget,
    )?;
    out.dims = dims.to_vec();
    Ok(out)
}

/// `Pad(data)` in mode `constant` with `value`, where `per_axis[a]` is `(begin, end)` of axis
/// `a`: a constant padded before a layer reads it as a weight, or a tensor of equal elements
/// padded with that same value (which stays one).
pub(crate) fn pad(
    data: &Folded,
    per_axis: &[(i64, i64)],
    value: f64,
    budget: &mut Budget,
) -> Res<Folded> {
    let from = data.dims();
    if per_axis.len() != from.len() {
        return Err(format!(
            "has pads for {} axes, its input {} has {}",
            per_axis.len(),
            show(&from),
            from.len()
        ));
    }
    if per_axis.iter().any(|&(b, e)| b < 0 || e < 0) {
        return Err("crops its input (negative pads), which pillar does not fold".into());
    }
    let mut to = Vec::with_capacity(from.len());
    for (&d, &(b, e)) in from.iter().zip(per_axis) {
        to.push(match d {
            Sym::Known(k) => Sym::Known(
                k.checked_add(b)
                    .and_then(|k| k.checked_add(e))
                    .ok_or_else(|| format!("pads {per_axis:?} overflow"))?,
            ),
            Sym::Batch if (b, e) == (0, 0) => Sym::Batch,
            Sym::Batch => return Err("pads the batch axis of a constant".into()),
        });
    }
    if let Some(v) = data.uniform()
        && v.get() == value
    {
        return Ok(Folded::Fill(Fill { dims: to, value: v }));
    }
    let c = data.dense(budget)?;
    let dims = concrete(&to)?;
    let n = count(&dims)?;
    budget.take(n, element_size(&c.data))?;
    let mut strides = vec![1usize; dims.len()];
    for a in (0..dims.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * dims[a + 1];
    }
    // Where each element of `c` lands in the padded tensor, in `c`'s order.
    let mut at = vec![0usize; c.dims.len()];
    let mut targets = Vec::with_capacity(c.len());
    for _ in 0..c.len() {
        targets.push(
            at.iter()
                .zip(per_axis)
                .zip(&strides)
                .map(|((&i, &(b, _)), s)| (i + b as usize) * s)
                .sum::<usize>(),
        );
        for a in (0..at.len()).rev() {
            at[a] += 1;
            if at[a] < c.dims[a] {
                break;
            }
            at[a] = 0;
        }
    }
    let data = match &c.data {
        Data::F32(v) => {
            let mut out = vec![value as f32; n];
            targets.iter().zip(v).for_each(|(&t, &x)| out[t] = x);
            Data::F32(out)
        }
        Data::F64(v) => {
            let mut out = vec![value; n];
            targets.iter().zip(v).for_each(|(&t, &x)| out[t] = x);
            Data::F64(out)
        }
        Data::I64(v) => {
            let mut out = vec![value as i64; n];
            targets.iter().zip(v).for_each(|(&t, &x)| out[t] = x);
            Data::I64(out)
        }
    };
    Ok(finish(Const { dims, data }))
}

/// `Shape(t)[start..end]` of a tensor of shape `dims`.
pub(crate) fn shape_of(dims: &[Sym], start: Option<i64>, end: Option<i64>) -> Ints {
    let rank = dims.len() as i64;
    // ONNX clamps out-of-range bounds; negative ones count from the end.
    let clamp = |i: i64| (if i < 0 { i + rank } else { i }).clamp(0, rank) as usize;
    let (s, e) = (clamp(start.unwrap_or(0)), clamp(end.unwrap_or(rank)));
    Ints {
        scalar: false,
        vals: dims.get(s..e.max(s)).unwrap_or(&[]).to_vec(),
    }
}

/// `ConstantOfShape(shape)` with `value` (a one-element tensor, float 0 if absent).
pub(crate) fn constant_of_shape(shape: &Ints, value: Option<&Const>) -> Res<Folded> {
    if shape.scalar {
        return Err("its shape input is a scalar, not a vector".into());
    }
    if let Some(Sym::Known(k)) = shape
        .vals
        .iter()
        .find(|s| matches!(s, Sym::Known(k) if *k < 0))
    {
        return Err(format!("shape {} has negative size {k}", show(&shape.vals)));
    }
    let value = match value {
        None => Scalar::F32(0.0),
        Some(c) if c.len() == 1 => Scalar::of(&c.data, 0).ok_or("its value is empty")?,
        Some(c) => return Err(format!("its value has shape {:?}, not one element", c.dims)),
    };
    Ok(Folded::Fill(Fill {
        dims: shape.vals.clone(),
        value,
    }))
}

/// `Expand(data, shape)`: the bidirectional broadcast of `data` to `shape`.
pub(crate) fn expand(data: &Folded, shape: &Ints, budget: &mut Budget) -> Res<Folded> {
    if shape.scalar
        || shape
            .vals
            .iter()
            .any(|s| matches!(s, Sym::Known(k) if *k < 0))
    {
        return Err(format!("{} is not a shape", show(&shape.vals)));
    }
    let dims = broadcast(&data.dims(), &shape.vals)?;
    if let Some(value) = data.uniform() {
        return Ok(Folded::Fill(Fill { dims, value }));
    }
    let c = data.dense(budget)?;
    let dims = concrete(&dims)?;
    Ok(finish(expand_dense(&c, &dims, budget)?))
}

/// `Reshape(data, shape)`, with `0` copying a dimension unless `allowzero`.
pub(crate) fn reshape(
    data: &Folded,
    shape: &Ints,
    allowzero: bool,
    budget: &mut Budget,
) -> Res<Folded> {
    let from = data.dims();
    let mut to: Vec<Sym> = Vec::with_capacity(shape.vals.len());
    let mut infer = None;
    for (i, s) in shape.vals.iter().enumerate() {
        match *s {
            Sym::Known(0) if !allowzero => to.push(
                *from
                    .get(i)
                    .ok_or_else(|| format!("target {} copies a missing axis", show(&shape.vals)))?,
            ),
            Sym::Known(-1) if infer.is_none() => {
                infer = Some(i);
                to.push(Sym::Known(1));
            }
            Sym::Known(k) if k < 0 => {
                return Err(format!("target {} is not a shape", show(&shape.vals)));
            }
            s => to.push(s),
        }
    }
    // Sizes as (batch factors, known product): equal sizes have equal factors.
    let size = |d: &[Sym]| -> Res<(usize, i128)> {
        d.iter().try_fold((0usize, 1i128), |(b, k), s| match s {
            Sym::Batch => Ok((b + 1, k)),
            Sym::Known(v) => k
                .checked_mul(i128::from(*v))
                .filter(|p| *p <= i128::from(i64::MAX))
                .map(|p| (b, p))
                .ok_or_else(|| format!("shape {} is too large", show(d))),
        })
    };
    let (fb, fk) = size(&from)?;
    let (tb, tk) = size(&to)?;
    if let Some(i) = infer {
        to[i] = match (fb.checked_sub(tb), tk) {
            (Some(0), tk) if tk != 0 && fk % tk == 0 => Sym::Known((fk / tk) as i64),
            (Some(1), tk) if tk == fk => Sym::Batch,
            _ => {
                return Err(format!(
                    "cannot infer the -1 of target {} for a tensor of shape {}",
                    show(&shape.vals),
                    show(&from)
                ));
            }
        };
    } else if (fb, fk) != (tb, tk) {
        return Err(format!(
            "reshapes a tensor of shape {} to {}, which holds a different number of elements",
            show(&from),
            show(&to)
        ));
    }
    redim(data, to, budget)
}

/// `Unsqueeze(data, axes)`.
pub(crate) fn unsqueeze(data: &Folded, axes: &[i64], budget: &mut Budget) -> Res<Folded> {
    let from = data.dims();
    let rank = from.len() + axes.len();
    let mut ones = vec![false; rank];
    for &a in axes {
        let a = axis(a, rank)?;
        if std::mem::replace(&mut ones[a], true) {
            return Err(format!("axes {axes:?} repeat an axis"));
        }
    }
    let mut rest = from.iter();
    let to: Vec<Sym> = ones
        .iter()
        .map(|&one| {
            if one {
                Sym::Known(1)
            } else {
                rest.next().copied().unwrap_or(Sym::Known(1))
            }
        })
        .collect();
    redim(data, to, budget)
}

/// `Squeeze(data, axes)`: every axis of size 1 when `axes` is `None`.
pub(crate) fn squeeze(data: &Folded, axes: Option<&[i64]>, budget: &mut Budget) -> Res<Folded> {
    redim(data, squeeze_dims(&data.dims(), axes)?, budget)
}

/// The shape `Squeeze(axes)` leaves of `from`.
pub(crate) fn squeeze_dims(from: &[Sym], axes: Option<&[i64]>) -> Res<Vec<Sym>> {
    let drop: Vec<usize> = match axes {
        None => (0..from.len())
            .filter(|&i| from[i] == Sym::Known(1))
            .collect(),
        Some(axes) => axes
            .iter()
            .map(|&a| {
                let a = axis(a, from.len())?;
                if from[a] == Sym::Known(1) {
                    Ok(a)
                } else {
                    Err(format!(
                        "squeezes axis {a} of shape {}, which is not 1",
                        show(from)
                    ))
                }
            })
            .collect::<Res<_>>()?,
    };
    Ok((0..from.len())
        .filter(|i| !drop.contains(i))
        .map(|i| from[i])
        .collect())
}

/// `data` with the same elements in order and shape `to`.
fn redim(data: &Folded, to: Vec<Sym>, budget: &mut Budget) -> Res<Folded> {
    match data {
        Folded::Fill(f) => Ok(Folded::Fill(Fill {
            dims: to,
            value: f.value,
        })),
        Folded::Ints(i) if to.len() <= 1 => Ok(Folded::Ints(Ints {
            scalar: to.is_empty(),
            vals: i.vals.clone(),
        })),
        _ => {
            let c = data.dense(budget)?;
            budget.take(c.len(), element_size(&c.data))?;
            Ok(finish(Const {
                dims: concrete(&to)?,
                data: c.data.clone(),
            }))
        }
    }
}

/// `Gather(data, indices, axis)`.
pub(crate) fn gather(
    data: &Folded,
    indices: &Folded,
    axis_attr: i64,
    budget: &mut Budget,
) -> Res<Folded> {
    let from = data.dims();
    let a = axis(axis_attr, from.len())?;
    let idx = indices.dense(budget)?;
    let Data::I64(iv) = &idx.data else {
        return Err("its indices are not integers".into());
    };
    if let (Folded::Ints(d), Some(i)) = (data, indices.ints(budget))
        && !d.scalar
    {
        return super::symbolic::gather(d, &i).map(Folded::Ints);
    }
    let mut to: Vec<Sym> = from[..a].to_vec();
    to.extend(known_dims(&idx.dims));
    to.extend_from_slice(&from[a + 1..]);
    if let Folded::Fill(f) = data {
        if let Sym::Known(n) = from[a]
            && let Some(bad) = iv.iter().find(|&&i| !(-n..n).contains(&i))
        {
            return Err(format!("index {bad} is out of range for {n} elements"));
        }
        return Ok(Folded::Fill(Fill {
            dims: to,
            value: f.value,
        }));
    }
    let c = data.dense(budget)?;
    let n = c.dims[a] as i64;
    let picked = iv
        .iter()
        .map(|&i| {
            if (-n..n).contains(&i) {
                Ok((if i < 0 { i + n } else { i }) as usize)
            } else {
                Err(format!("index {i} is out of range for {n} elements"))
            }
        })
        .collect::<Res<Vec<usize>>>()?;
    let lists: Vec<Vec<usize>> = (0..c.dims.len())
        .map(|i| {
            if i == a {
                picked.clone()
            } else {
                (0..c.dims[i]).collect()
            }
        })
        .collect();
    let mut out = select(&c, &lists, budget)?;
    out.dims = concrete(&to)?;
    Ok(finish(out))
}

/// `Concat(parts, axis)`.
pub(crate) fn concat(parts: &[Folded], axis_attr: i64, budget: &mut Budget) -> Res<Folded> {
    let Some(first) = parts.first() else {
        return Err("concatenates nothing".into());
    };
    let rank = first.dims().len();
    if rank == 1 {
        let ints: Option<Vec<Ints>> = parts.iter().map(|p| p.ints(budget)).collect();
        if let Some(ints) = ints {
            axis(axis_attr, 1)?;
            return super::symbolic::concat(&ints).map(Folded::Ints);
        }
    }
    let a = axis(axis_attr, rank)?;
    let shapes: Vec<Vec<Sym>> = parts.iter().map(Folded::dims).collect();
    for s in &shapes {
        let same = s.len() == rank && (0..rank).all(|i| i == a || s[i] == shapes[0][i]);
        if !same {
            return Err(format!(
                "concatenates shapes {} and {} along axis {a}",
                show(&shapes[0]),
                show(s)
            ));
        }
    }
    let value = first.uniform();
    if value.is_some() && parts.iter().all(|p| p.uniform() == value) {
        let mut along = 0i64;
        for s in &shapes {
            match s[a] {
                Sym::Known(k) => along += k,
                Sym::Batch => return Err("concatenates along the batch axis".into()),
            }
        }
        let mut dims = shapes[0].clone();
        dims[a] = Sym::Known(along);
        return Ok(Folded::Fill(Fill {
            dims,
            value: value.unwrap_or(Scalar::F32(0.0)),
        }));
    }
    let dense = parts
        .iter()
        .map(|p| p.dense(budget))
        .collect::<Res<Vec<_>>>()?;
    let outer: usize = dense[0].dims[..a].iter().product();
    let total: usize = dense.iter().map(|c| c.len()).sum();
    budget.take(total, 8)?;
    let mut data = match dense[0].data {
        Data::F32(_) => Data::F32(Vec::with_capacity(total)),
        Data::F64(_) => Data::F64(Vec::with_capacity(total)),
        Data::I64(_) => Data::I64(Vec::with_capacity(total)),
    };
    for o in 0..outer {
        for c in &dense {
            let block = c.len() / outer.max(1);
            let range = o * block..(o + 1) * block;
            match (&mut data, &c.data) {
                (Data::F32(d), Data::F32(v)) => d.extend_from_slice(&v[range]),
                (Data::F64(d), Data::F64(v)) => d.extend_from_slice(&v[range]),
                (Data::I64(d), Data::I64(v)) => d.extend_from_slice(&v[range]),
                _ => return Err("concatenates tensors of different element types".into()),
            }
        }
    }
    let mut dims = dense[0].dims.clone();
    dims[a] = dense.iter().map(|c| c.dims[a]).sum();
    Ok(finish(Const { dims, data }))
}

/// `Slice(data, starts, ends, axes, steps)`.
pub(crate) fn slice(
    data: &Folded,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
    budget: &mut Budget,
) -> Res<Folded> {
    let from = data.dims();
    let axes: Vec<i64> = axes.map_or_else(|| (0..starts.len() as i64).collect(), <[i64]>::to_vec);
    if ends.len() != starts.len()
        || axes.len() != starts.len()
        || steps.is_some_and(|s| s.len() != starts.len())
    {
        return Err("its starts, ends, axes and steps differ in length".into());
    }
    let mut lists: Vec<Option<Vec<usize>>> = vec![None; from.len()];
    for (k, &ax) in axes.iter().enumerate() {
        let a = axis(ax, from.len())?;
        let Sym::Known(n) = from[a] else {
            return Err("slices the batch axis".into());
        };
        let step = steps.map_or(1, |s| s[k]);
        if step == 0 {
            return Err("a step is 0".into());
        }
        // ONNX clamps starts and ends (to [0, n] going forward, [-1, n - 1] going back).
        let norm = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
        let (lo, hi) = if step > 0 { (0, n) } else { (-1, n - 1) };
        let (mut i, end) = (norm(starts[k]).clamp(lo, hi), norm(ends[k]).clamp(lo, hi));
        let mut list = Vec::new();
        while (step > 0 && i < end) || (step < 0 && i > end) {
            list.push(i as usize);
            budget.take(1, 8)?;
            let Some(next) = i.checked_add(step) else {
                break;
            };
            i = next;
        }
        lists[a] = Some(list);
    }
    if let Folded::Ints(v) = data
        && !v.scalar
    {
        let list = lists[0]
            .take()
            .unwrap_or_else(|| (0..v.vals.len()).collect());
        return Ok(Folded::Ints(Ints {
            scalar: false,
            vals: list.iter().map(|&i| v.vals[i]).collect(),
        }));
    }
    if let Folded::Fill(f) = data {
        let dims = from
            .iter()
            .zip(&lists)
            .map(|(d, l)| l.as_ref().map_or(*d, |l| Sym::Known(l.len() as i64)))
            .collect();
        return Ok(Folded::Fill(Fill {
            dims,
            value: f.value,
        }));
    }
    let c = data.dense(budget)?;
    let lists: Vec<Vec<usize>> = lists
        .into_iter()
        .zip(&c.dims)
        .map(|(l, &d)| l.unwrap_or_else(|| (0..d).collect()))
        .collect();
    Ok(finish(select(&c, &lists, budget)?))
}

/// `Cast(data, to)`, for the types pillar folds.
pub(crate) fn cast(data: &Folded, to: i32, budget: &mut Budget) -> Res<Folded> {
    let int = matches!(to, data_type::INT64 | data_type::INT32);
    let float = matches!(to, data_type::FLOAT | data_type::DOUBLE);
    if !(int || float) {
        return Err(format!(
            "casts a constant to {}, which pillar does not fold",
            type_name(to)
        ));
    }
    if int && !data.is_int() {
        return Err(format!(
            "casts a float constant to {}, which pillar does not fold",
            type_name(to)
        ));
    }
    if int {
        return Ok(data.clone());
    }
    let conv = |s: Scalar| match to {
        data_type::FLOAT => Scalar::F32(s.get() as f32),
        _ => Scalar::F64(s.get()),
    };
    if let Folded::Fill(f) = data {
        return Ok(Folded::Fill(Fill {
            dims: f.dims.clone(),
            value: conv(f.value),
        }));
    }
    let c = data.dense(budget)?;
    budget.take(c.len(), 8)?;
    let vals = (0..c.len()).filter_map(|i| c.get(i));
    let data = match to {
        data_type::FLOAT => Data::F32(vals.map(|v| v as f32).collect()),
        _ => Data::F64(vals.collect()),
    };
    Ok(finish(Const {
        dims: c.dims.clone(),
        data,
    }))
}

/// The elementwise operators pillar folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

impl Arith {
    pub(crate) fn parse(op: &str) -> Option<Arith> {
        Some(match op {
            "Add" => Arith::Add,
            "Sub" => Arith::Sub,
            "Mul" => Arith::Mul,
            "Div" => Arith::Div,
            "Pow" => Arith::Pow,
            _ => return None,
        })
    }

    fn float(self, a: f64, b: f64) -> f64 {
        match self {
            Arith::Add => a + b,
            Arith::Sub => a - b,
            Arith::Mul => a * b,
            Arith::Div => a / b,
            Arith::Pow => a.powf(b),
        }
    }

    fn int(self, a: i64, b: i64) -> Res<i64> {
        match self {
            Arith::Add => a.checked_add(b),
            Arith::Sub => a.checked_sub(b),
            Arith::Mul => a.checked_mul(b),
            // ONNX integer division truncates.
            Arith::Div => a.checked_div(b),
            Arith::Pow => u32::try_from(b).ok().and_then(|b| a.checked_pow(b)),
        }
        .ok_or_else(|| format!("{self:?} of {a} and {b} overflows or divides by zero"))
    }

    /// On shape arithmetic, where the batch size is kept as long as it is only added 0 to,
    /// multiplied or divided by 1.
    fn sym(self, a: Sym, b: Sym) -> Res<Sym> {
        match (a, b) {
            (Sym::Known(a), Sym::Known(b)) => self.int(a, b).map(Sym::Known),
            (Sym::Batch, Sym::Known(0)) if matches!(self, Arith::Add | Arith::Sub) => {
                Ok(Sym::Batch)
            }
            (Sym::Known(0), Sym::Batch) if self == Arith::Add => Ok(Sym::Batch),
            (Sym::Batch, Sym::Known(1)) if matches!(self, Arith::Mul | Arith::Div) => {
                Ok(Sym::Batch)
            }
            (Sym::Known(1), Sym::Batch) if self == Arith::Mul => Ok(Sym::Batch),
            _ => Err(format!(
                "computes {self:?} with the batch size, which pillar keeps only as a reshape's \
                 batch dimension; use x.flatten(1) or x.view(x.size(0), -1)"
            )),
        }
    }

    fn scalar(self, a: Scalar, b: Scalar) -> Res<Scalar> {
        Ok(match (a, b) {
            (Scalar::I64(a), Scalar::I64(b)) => Scalar::I64(self.int(a, b)?),
            (Scalar::F64(_), _) | (_, Scalar::F64(_)) => Scalar::F64(self.float(a.get(), b.get())),
            _ => Scalar::F32(self.float(a.get(), b.get()) as f32),
        })
    }
}

/// `a op b` with NumPy broadcasting.
pub(crate) fn arith(op: Arith, a: &Folded, b: &Folded, budget: &mut Budget) -> Res<Folded> {
    let dims = broadcast(&a.dims(), &b.dims())?;
    if let (Folded::Ints(x), Folded::Ints(y)) = (a, b)
        && dims.len() <= 1
    {
        // Both are vectors or scalars, so the broadcast shape is their common length.
        let n = match dims.as_slice() {
            [Sym::Known(k)] => usize::try_from(*k).unwrap_or(0),
            _ => 1,
        };
        let pick = |v: &Ints, i: usize| v.vals[if v.vals.len() == 1 { 0 } else { i }];
        let vals = (0..n)
            .map(|i| op.sym(pick(x, i), pick(y, i)))
            .collect::<Res<Vec<_>>>()?;
        return Ok(Folded::Ints(Ints {
            scalar: dims.is_empty(),
            vals,
        }));
    }
    if let (Some(x), Some(y)) = (a.uniform(), b.uniform()) {
        return Ok(Folded::Fill(Fill {
            dims,
            value: op.scalar(x, y)?,
        }));
    }
    let out = concrete(&dims)?;
    let x = expand_dense(&*a.dense(budget)?, &out, budget)?;
    let y = expand_dense(&*b.dense(budget)?, &out, budget)?;
    let data = match (&x.data, &y.data) {
        (Data::I64(p), Data::I64(q)) => Data::I64(
            p.iter()
                .zip(q)
                .map(|(&p, &q)| op.int(p, q))
                .collect::<Res<_>>()?,
        ),
        (Data::F32(p), Data::F32(q)) => Data::F32(
            p.iter()
                .zip(q)
                .map(|(&p, &q)| op.float(f64::from(p), f64::from(q)) as f32)
                .collect(),
        ),
        _ => Data::F64(
            (0..x.len())
                .map(|i| op.float(x.get(i).unwrap_or(0.0), y.get(i).unwrap_or(0.0)))
                .collect(),
        ),
    };
    Ok(finish(Const { dims: out, data }))
}

/// `-a`.
pub(crate) fn neg(a: &Folded, budget: &mut Budget) -> Res<Folded> {
    let zero = if a.is_int() {
        Scalar::I64(0)
    } else {
        Scalar::F32(0.0)
    };
    let zero = Folded::Fill(Fill {
        dims: vec![],
        value: zero,
    });
    arith(Arith::Sub, &zero, a, budget)
}
