//! Typed access to a node's attributes. Each operator names the attributes it understands;
//! any other one is refused, so that no attribute that changes the result is silently
//! ignored.

use super::external::External;
use super::proto::{AttributeProto, attribute_type as ty};
use super::tensor::{self, Const};

/// A node's attributes, with what is wrong reported as a message for the node's error.
pub(crate) struct Attrs<'a>(pub &'a [AttributeProto]);

type Res<T> = Result<T, String>;

fn type_of(a: &AttributeProto) -> i32 {
    // IR version 1 files carry no type field: infer it from the field in use.
    if let Some(t) = a.r#type.filter(|&t| t != 0) {
        return t;
    }
    if a.f.is_some() {
        ty::FLOAT
    } else if a.i.is_some() {
        ty::INT
    } else if a.s.is_some() {
        ty::STRING
    } else if a.t.is_some() {
        ty::TENSOR
    } else if !a.floats.is_empty() {
        ty::FLOATS
    } else if !a.ints.is_empty() {
        ty::INTS
    } else {
        0
    }
}

impl<'a> Attrs<'a> {
    /// Errors on the first attribute not in `known`.
    pub(super) fn only(&self, known: &[&str]) -> Res<()> {
        for a in self.0 {
            let name = a.name.as_deref().unwrap_or("");
            if a.ref_attr_name.is_some() {
                return Err(format!("attribute {name:?} refers to a function attribute"));
            }
            if !known.contains(&name) {
                return Err(format!(
                    "attribute {name:?} is not supported (pillar understands {known:?})"
                ));
            }
        }
        Ok(())
    }

    fn find(&self, name: &str, want: i32, what: &str) -> Res<Option<&'a AttributeProto>> {
        match self.0.iter().find(|a| a.name.as_deref() == Some(name)) {
            None => Ok(None),
            Some(a) if type_of(a) == want => Ok(Some(a)),
            Some(_) => Err(format!("attribute {name:?} should be {what}")),
        }
    }

    /// An `INT` attribute.
    pub(super) fn int(&self, name: &str) -> Res<Option<i64>> {
        Ok(self
            .find(name, ty::INT, "an int")?
            .map(|a| a.i.unwrap_or(0)))
    }

    /// An `INTS` attribute.
    pub(super) fn ints(&self, name: &str) -> Res<Option<&'a [i64]>> {
        Ok(self
            .find(name, ty::INTS, "a list of ints")?
            .map(|a| a.ints.as_slice()))
    }

    /// A `FLOAT` attribute.
    pub(super) fn float(&self, name: &str) -> Res<Option<f32>> {
        Ok(self
            .find(name, ty::FLOAT, "a float")?
            .map(|a| a.f.unwrap_or(0.0)))
    }

    /// A `FLOATS` attribute.
    pub(super) fn floats(&self, name: &str) -> Res<Option<&'a [f32]>> {
        Ok(self
            .find(name, ty::FLOATS, "a list of floats")?
            .map(|a| a.floats.as_slice()))
    }

    /// A `STRING` attribute, as UTF-8.
    pub(super) fn string(&self, name: &str) -> Res<Option<&'a str>> {
        match self.find(name, ty::STRING, "a string")? {
            None => Ok(None),
            Some(a) => std::str::from_utf8(a.s.as_deref().unwrap_or(&[]))
                .map(Some)
                .map_err(|_| format!("attribute {name:?} is not UTF-8")),
        }
    }

    /// A `TENSOR` attribute, decoded.
    pub(super) fn tensor(&self, name: &str) -> Res<Option<Const>> {
        self.tensor_in(name, None)
    }

    /// A `TENSOR` attribute, decoded, its data read from `external` if it is stored there
    /// (`onnx.save(..., convert_attribute=True)` moves `Constant` values out of the model).
    pub(super) fn tensor_in(
        &self,
        name: &str,
        external: Option<&mut External>,
    ) -> Res<Option<Const>> {
        match self.find(name, ty::TENSOR, "a tensor")? {
            None => Ok(None),
            Some(a) => match &a.t {
                None => Err(format!("attribute {name:?} holds no tensor")),
                Some(t) => tensor::decode_in(t, name, external)
                    .map(Some)
                    .map_err(|e| e.to_string()),
            },
        }
    }

    /// An `INTS` attribute that must hold only `value` (or be absent).
    pub(super) fn all_equal(&self, name: &str, value: i64) -> Res<()> {
        match self.ints(name)? {
            Some(v) if v.iter().any(|&x| x != value) => {
                Err(format!("{name} = {v:?} is not supported (only {value})"))
            }
            _ => Ok(()),
        }
    }
}

/// An `INT` attribute.
pub(crate) fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(ty::INT),
        i: Some(i),
        ..Default::default()
    }
}

/// An `INTS` attribute.
pub(crate) fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(ty::INTS),
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A `FLOAT` attribute.
pub(crate) fn float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(ty::FLOAT),
        f: Some(f),
        ..Default::default()
    }
}

/// A `FLOATS` attribute.
pub(crate) fn floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(ty::FLOATS),
        floats: v.to_vec(),
        ..Default::default()
    }
}

/// A `TENSOR` attribute.
pub(crate) fn tensor(name: &str, t: super::proto::TensorProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(ty::TENSOR),
        t: Some(t),
        ..Default::default()
    }
}
