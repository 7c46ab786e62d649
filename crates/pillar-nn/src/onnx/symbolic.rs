//! Shape arithmetic: the `Shape -> Gather -> Unsqueeze -> Concat -> Reshape` chain that
//! `x.view(x.size(0), -1)` exports to. Integer vectors are evaluated with the batch size kept
//! symbolic, so that a `Reshape` can be recognised as a flatten whatever the batch; the other
//! operators on them are in [`super::constant`].

use super::tensor::Const;

/// One integer of a shape computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sym {
    /// The batch size, unknown until run time.
    Batch,
    /// A known value.
    Known(i64),
}

/// A scalar or 1-d integer tensor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ints {
    /// Whether it has rank 0.
    pub scalar: bool,
    /// Its elements (one if `scalar`).
    pub vals: Vec<Sym>,
}

type Res<T> = Result<T, String>;

impl Ints {
    /// An integer constant of rank 0 or 1.
    pub(super) fn from_const(c: &Const) -> Option<Ints> {
        let v = c.ints()?;
        if c.dims.len() > 1 {
            return None;
        }
        Some(Ints {
            scalar: c.dims.is_empty(),
            vals: v.iter().map(|&x| Sym::Known(x)).collect(),
        })
    }
}

/// `Gather(data, indices, axis = 0)` on a 1-d integer tensor.
pub(crate) fn gather(data: &Ints, indices: &Ints) -> Res<Ints> {
    if data.scalar {
        return Err("gathers from a scalar".into());
    }
    let n = data.vals.len() as i64;
    let vals = indices
        .vals
        .iter()
        .map(|i| match *i {
            Sym::Known(i) if (-n..n).contains(&i) => {
                Ok(data.vals[(if i < 0 { i + n } else { i }) as usize])
            }
            _ => Err(format!("index {i:?} is out of range for {n} elements")),
        })
        .collect::<Res<Vec<_>>>()?;
    Ok(Ints {
        scalar: indices.scalar,
        vals,
    })
}

/// `Concat(parts, axis = 0)` of 1-d integer tensors.
pub(crate) fn concat(parts: &[Ints]) -> Res<Ints> {
    if parts.iter().any(|p| p.scalar) {
        return Err("concatenates a scalar".into());
    }
    Ok(Ints {
        scalar: false,
        vals: parts.iter().flat_map(|p| p.vals.iter().copied()).collect(),
    })
}

/// Checks that `Reshape(x, target)` flattens `x` of shape `[N, ...shape]` to `[N, F]`: the
/// target is `[N, -1]`, `[N, F]` or `[-1, F]`, where `N` is the symbolic batch, `0` (copy the
/// batch, unless `allowzero`) or the model's fixed batch size.
pub(crate) fn is_flatten(
    target: &Ints,
    shape: &[usize],
    static_batch: Option<usize>,
    allowzero: bool,
) -> Res<()> {
    let f: usize = shape.iter().product();
    let f = f as i64;
    let batch_ok = |s: Sym| match s {
        Sym::Batch => true,
        Sym::Known(0) => !allowzero,
        Sym::Known(k) => static_batch.is_some_and(|b| b as i64 == k),
    };
    let ok = match target.vals.as_slice() {
        [n, Sym::Known(-1)] => batch_ok(*n),
        [n, Sym::Known(k)] if *k == f => batch_ok(*n) || *n == Sym::Known(-1),
        _ => false,
    };
    if !target.scalar && ok {
        Ok(())
    } else {
        let shown: Vec<String> = target
            .vals
            .iter()
            .map(|s| match s {
                Sym::Batch => "N".to_string(),
                Sym::Known(k) => k.to_string(),
            })
            .collect();
        Err(format!(
            "reshapes [N, {}] to [{}]; pillar supports only flattening to [N, -1] or [N, {f}]",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            shown.join(", ")
        ))
    }
}
