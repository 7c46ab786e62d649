//! Bounds on what an ONNX file may ask the decoder to build, checked on the encoded bytes
//! before anything is decoded.
//!
//! The file-size limit alone does not bound memory: protobuf spends a byte or two on an empty
//! node or name, which decodes to a struct of hundreds of bytes and a heap allocation (200 MB
//! of `Relu` nodes decode to 3.8 GiB), and a packed `int64` of one byte decodes to eight. So
//! one pass over the wire format, following the same schema as [`super::proto`], counts the
//! nodes, initializers, value infos, attributes per node and name lengths against generous
//! limits, and adds up what the decoded structs, strings and numbers will take, all without
//! allocating.

use std::mem::size_of;

use super::error::OnnxError;
use super::proto;

/// Largest number of nodes in a model (ResNet-152 has about 500).
pub const MAX_NODES: u64 = 100_000;
/// Largest number of initializers in a model.
pub const MAX_INITIALIZERS: u64 = 100_000;
/// Largest number of graph inputs, outputs and value infos together.
pub const MAX_VALUE_INFOS: u64 = 100_000;
/// Largest number of attributes of one node (ONNX operators have a handful).
pub const MAX_ATTRIBUTES: u64 = 64;
/// Largest number of inputs and outputs of one node.
pub const MAX_NODE_VALUES: u64 = 1_024;
/// Longest name (of a node, operator, domain, value, tensor or attribute), in bytes.
pub const MAX_NAME_BYTES: u64 = 4_096;
/// Largest memory the decoded model may take beyond the file's own bytes: the structs, the
/// heap blocks and the widening of packed numbers.
pub const MAX_DECODED_OVERHEAD: u64 = 256 << 20;

/// Largest memory the constants computed while importing (a weight reshaped, a shape tensor
/// expanded) may take together; a uniform tensor (`ConstantOfShape`, `zeros_like`) takes
/// none, since it is never materialised unless a layer reads it.
pub const MAX_FOLDED_BYTES: u64 = 256 << 20;

/// The limits one decode is held to ([`Limits::DEFAULT`] outside tests, which lower them to
/// show each refusal on a small file).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) nodes: u64,
    pub(crate) initializers: u64,
    pub(crate) value_infos: u64,
    pub(crate) attributes: u64,
    pub(crate) node_values: u64,
    pub(crate) name_bytes: u64,
    pub(crate) overhead: u64,
    /// Largest size of the model file and its external tensor data together.
    pub(crate) total_bytes: u64,
    /// Largest memory the constants that the importer computes (see
    /// [`super::symbolic`]) may take together.
    pub(crate) folded_bytes: u64,
}

impl Limits {
    /// The limits of [`super::from_bytes`].
    pub(crate) const DEFAULT: Limits = Limits {
        nodes: MAX_NODES,
        initializers: MAX_INITIALIZERS,
        value_infos: MAX_VALUE_INFOS,
        attributes: MAX_ATTRIBUTES,
        node_values: MAX_NODE_VALUES,
        name_bytes: MAX_NAME_BYTES,
        overhead: MAX_DECODED_OVERHEAD,
        total_bytes: super::MAX_MODEL_BYTES,
        folded_bytes: MAX_FOLDED_BYTES,
    };
}

/// Checks `bytes`, an encoded `ModelProto`, against `limits`.
pub(crate) fn check(bytes: &[u8], limits: &Limits) -> Result<(), OnnxError> {
    let mut scan = Scan {
        limits,
        nodes: 0,
        initializers: 0,
        value_infos: 0,
        overhead: 0,
    };
    scan.message(Kind::Model, bytes)
}

/// Checks that the tensors (initializers and attribute values) whose data is stored outside
/// the model (see [`super::external`]) claim no more than `limits.total_bytes` together with the model's own
/// `model_bytes`, before any of it is read.
pub(crate) fn external(
    graph: &proto::GraphProto,
    model_bytes: u64,
    limits: &Limits,
) -> Result<u64, OnnxError> {
    let budget = limits.total_bytes.saturating_sub(model_bytes);
    let mut total = 0u64;
    let attributes = graph
        .node
        .iter()
        .flat_map(|n| &n.attribute)
        .flat_map(|a| a.t.iter());
    for t in graph
        .initializer
        .iter()
        .chain(attributes)
        .filter(|t| super::external::is_external(t))
    {
        let name = t.name.as_deref().unwrap_or("");
        total = total.saturating_add(super::tensor::external_bytes(t, name)?);
        if total > budget {
            return Err(OnnxError::Limit {
                what: "bytes in the model and the external tensor data it names together",
                limit: limits.total_bytes,
            });
        }
    }
    Ok(budget)
}

/// The messages of [`super::proto`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Model,
    OpsetId,
    Entry,
    Graph,
    Node,
    Attribute,
    Tensor,
    Segment,
    ValueInfo,
    Type,
    TypeTensor,
    Shape,
    Dim,
}

impl Kind {
    /// What one decoded message of this kind takes where it is stored.
    fn size(self) -> u64 {
        let bytes = match self {
            Kind::Model => size_of::<proto::ModelProto>(),
            Kind::OpsetId => size_of::<proto::OperatorSetIdProto>(),
            Kind::Entry => size_of::<proto::StringStringEntryProto>(),
            Kind::Graph => size_of::<proto::GraphProto>(),
            Kind::Node => size_of::<proto::NodeProto>(),
            Kind::Attribute => size_of::<proto::AttributeProto>(),
            Kind::Tensor => size_of::<proto::TensorProto>(),
            Kind::Segment => size_of::<proto::Segment>(),
            Kind::ValueInfo => size_of::<proto::ValueInfoProto>(),
            Kind::Type => size_of::<proto::TypeProto>(),
            Kind::TypeTensor => size_of::<proto::TypeTensor>(),
            Kind::Shape => size_of::<proto::TensorShapeProto>(),
            Kind::Dim => size_of::<proto::Dimension>(),
        };
        bytes as u64
    }
}

/// How a field decodes.
#[derive(Debug, Clone, Copy)]
enum Field {
    Message(Kind),
    /// A name: its length is limited.
    Name,
    /// Any other string or bytes.
    Text,
    /// Repeated numbers, packed or not: varints, or fixed-size on the wire, and their size
    /// once decoded.
    Numbers {
        varint: bool,
        size: u64,
    },
    /// A single number.
    Number,
}

/// The fields of `kind` that the decoder keeps; others it skips without allocating.
fn field(kind: Kind, tag: u32) -> Option<Field> {
    use Field::{Message, Name, Number, Numbers, Text};
    Some(match (kind, tag) {
        (Kind::Model, 1 | 5) => Number,
        (Kind::Model, 2..=4 | 6) => Text,
        (Kind::Model, 7) => Message(Kind::Graph),
        (Kind::Model, 8) => Message(Kind::OpsetId),
        (Kind::Model, 14) => Message(Kind::Entry),
        (Kind::OpsetId, 1) => Name,
        (Kind::OpsetId, 2) => Number,
        (Kind::Entry, 1 | 2) => Text,
        (Kind::Graph, 1) => Message(Kind::Node),
        (Kind::Graph, 2) => Name,
        (Kind::Graph, 5) => Message(Kind::Tensor),
        (Kind::Graph, 10) => Text,
        (Kind::Graph, 11..=13) => Message(Kind::ValueInfo),
        (Kind::Node, 1..=4 | 7) => Name,
        (Kind::Node, 5) => Message(Kind::Attribute),
        (Kind::Node, 6) => Text,
        (Kind::Attribute, 1 | 21) => Name,
        (Kind::Attribute, 4 | 9 | 13) => Text,
        (Kind::Attribute, 2 | 3 | 20) => Number,
        (Kind::Attribute, 5 | 10) => Message(Kind::Tensor),
        (Kind::Attribute, 7) | (Kind::Tensor, 4) => Numbers {
            varint: false,
            size: 4,
        },
        (Kind::Tensor, 10) => Numbers {
            varint: false,
            size: 8,
        },
        (Kind::Attribute, 8) | (Kind::Tensor, 1 | 7 | 11) => Numbers {
            varint: true,
            size: 8,
        },
        (Kind::Tensor, 5) => Numbers {
            varint: true,
            size: 4,
        },
        (Kind::Tensor, 2 | 14) => Number,
        (Kind::Tensor, 3) => Message(Kind::Segment),
        (Kind::Tensor, 8) => Name,
        (Kind::Tensor, 9 | 12) => Text,
        (Kind::Tensor, 13) => Message(Kind::Entry),
        (Kind::Segment, 1 | 2) => Number,
        (Kind::ValueInfo, 1) => Name,
        (Kind::ValueInfo, 2) => Message(Kind::Type),
        (Kind::ValueInfo, 3) => Text,
        (Kind::Type, 1) => Message(Kind::TypeTensor),
        (Kind::Type, 6) => Text,
        (Kind::TypeTensor, 1) => Number,
        (Kind::TypeTensor, 2) => Message(Kind::Shape),
        (Kind::Shape, 1) => Message(Kind::Dim),
        (Kind::Dim, 1) => Number,
        (Kind::Dim, 2 | 3) => Name,
        _ => return None,
    })
}

/// What a heap block costs beyond its contents (the allocator's header and rounding).
const BLOCK: u64 = 16;

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// Deepest group nesting followed in skipped fields (prost's own recursion limit is 100).
const MAX_GROUP_DEPTH: u32 = 100;

struct Scan<'l> {
    limits: &'l Limits,
    nodes: u64,
    initializers: u64,
    value_infos: u64,
    overhead: u64,
}

/// A cursor over encoded bytes.
struct Wire<'a> {
    bytes: &'a [u8],
    at: usize,
}

fn malformed(what: &str) -> OnnxError {
    OnnxError::Malformed(what.to_string())
}

impl<'a> Wire<'a> {
    fn varint(&mut self) -> Result<u64, OnnxError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .bytes
                .get(self.at)
                .ok_or_else(|| malformed("a number runs past the end"))?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed("a number longer than ten bytes"))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], OnnxError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.at.checked_add(n))
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| malformed("a field runs past the end"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    /// Skips a value of `wire` type that no field of the schema keeps.
    fn skip(&mut self, wire: u8, tag: u32, depth: u32) -> Result<(), OnnxError> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            FIXED32 => self.take(4).map(drop),
            LENGTH => {
                let n = self.varint()?;
                self.take(n).map(drop)
            }
            START_GROUP if depth < MAX_GROUP_DEPTH => loop {
                let (inner, wire) = self.key()?;
                if wire == END_GROUP {
                    return if inner == tag {
                        Ok(())
                    } else {
                        Err(malformed("a group ends with another field number"))
                    };
                }
                self.skip(wire, inner, depth + 1)?;
            },
            _ => Err(malformed("an unknown wire type or groups nested too deep")),
        }
    }

    fn key(&mut self) -> Result<(u32, u8), OnnxError> {
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| malformed("a field number too large"))?;
        Ok((tag, (key & 7) as u8))
    }
}

impl Scan<'_> {
    fn add(&mut self, bytes: u64) -> Result<(), OnnxError> {
        self.overhead = self.overhead.saturating_add(bytes);
        if self.overhead > self.limits.overhead {
            return Err(OnnxError::Limit {
                what: "MiB of decoded structures beyond the file's size",
                limit: self.limits.overhead >> 20,
            });
        }
        Ok(())
    }

    fn message(&mut self, kind: Kind, bytes: &[u8]) -> Result<(), OnnxError> {
        let mut wire = Wire { bytes, at: 0 };
        let (mut attributes, mut values) = (0u64, 0u64);
        while wire.at < bytes.len() {
            let (tag, wire_type) = wire.key()?;
            let Some(f) = field(kind, tag) else {
                wire.skip(wire_type, tag, 0)?;
                continue;
            };
            if kind == Kind::Node {
                match tag {
                    1 | 2 => values += 1,
                    5 => attributes += 1,
                    _ => {}
                }
                limit(attributes, self.limits.attributes, "attributes in one node")?;
                limit(
                    values,
                    self.limits.node_values,
                    "inputs and outputs of one node",
                )?;
            }
            match (f, wire_type) {
                (Field::Message(inner), LENGTH) => {
                    self.count(inner)?;
                    self.add(inner.size() + BLOCK)?;
                    let n = wire.varint()?;
                    let body = wire.take(n)?;
                    self.message(inner, body)?;
                }
                (Field::Name | Field::Text, LENGTH) => {
                    let n = wire.varint()?;
                    if matches!(f, Field::Name) {
                        limit(n, self.limits.name_bytes, "bytes in one name")?;
                    }
                    wire.take(n)?;
                    self.add(size_of::<String>() as u64 + BLOCK)?;
                }
                (Field::Numbers { varint, size }, LENGTH) => {
                    let n = wire.varint()?;
                    let packed = wire.take(n)?;
                    // Fixed-size numbers decode to their own bytes; a varint ends at each
                    // byte below 0x80, and one byte may decode to eight.
                    if varint {
                        let count = packed.iter().filter(|&&b| b < 0x80).count() as u64;
                        self.add(count.saturating_mul(size).saturating_sub(n))?;
                    }
                }
                (Field::Numbers { size, .. }, _) => {
                    wire.skip(wire_type, tag, 0)?;
                    self.add(size)?;
                }
                (_, _) => wire.skip(wire_type, tag, 0)?,
            }
        }
        Ok(())
    }

    /// Counts a message of `kind` against the model-wide limits.
    fn count(&mut self, kind: Kind) -> Result<(), OnnxError> {
        let (counter, max, what) = match kind {
            Kind::Node => (&mut self.nodes, self.limits.nodes, "nodes"),
            Kind::Tensor => (
                &mut self.initializers,
                self.limits.initializers,
                "initializers and constant tensors",
            ),
            Kind::ValueInfo => (
                &mut self.value_infos,
                self.limits.value_infos,
                "graph inputs, outputs and value infos",
            ),
            _ => return Ok(()),
        };
        *counter += 1;
        limit(*counter, max, what)
    }
}

fn limit(count: u64, max: u64, what: &'static str) -> Result<(), OnnxError> {
    if count > max {
        return Err(OnnxError::Limit { what, limit: max });
    }
    Ok(())
}
