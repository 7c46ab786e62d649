//! ONNX import and export: the boundary between pillar and the tools that train and run
//! networks.
//!
//! [`load`] and [`from_bytes`] read a model exported by PyTorch (`torch.onnx.export`, opsets
//! 13 to 18 tested, [9, 23] accepted) or by pillar into a [`TypedGraph`]; [`save`] and
//! [`to_bytes`] write one back. What maps onto the graph:
//!
//! | ONNX | pillar |
//! |---|---|
//! | `Conv` (2-d, `group` 1, dilation 1, square stride, symmetric pads) | [`Op::Conv2d`](crate::Op::Conv2d) |
//! | `BatchNormalization` (inference) | [`Op::BatchNorm`](crate::Op::BatchNorm) |
//! | `Gemm` (`alpha = beta = 1`, either `transB`), `MatMul` by a constant, then `Add` of a bias | [`Op::Linear`](crate::Op::Linear) |
//! | `MaxPool` (square, symmetric pads up to half the window), `AveragePool` (the same, pads with `count_include_pad = 1`), `GlobalAveragePool`, `ReduceMean` over both spatial axes | the pools ([`Pool`](crate::Pool)) |
//! | `Pad` (constant zeros, the same on all four sides of H and W) read by a `Conv` or `AveragePool` | that layer's padding; all-zero pads: nothing |
//! | `Clip` (bounds as inputs or, before opset 11, attributes; either optional) | [`Op::Clip`](crate::Op::Clip) |
//! | `Softmax`, `LogSoftmax` over the classes, as the last operator | the graph's [`OutputTransform`](crate::OutputTransform) |
//! | `Add` of two activations | [`Op::Add`](crate::Op::Add) |
//! | `Flatten` (axis 1), `Reshape` to `[N, -1]` (constant or `Shape`/`Gather`/`Concat`) | [`Op::Flatten`](crate::Op::Flatten) |
//! | `Relu` | [`Op::Relu`](crate::Op::Relu) |
//! | `pillar.PolyAct`, or any `Add`/`Sub`/`Mul`/`Div`/`Pow`/`Neg` arithmetic with scalar constants in one activation | [`Op::PolyAct`](crate::Op::PolyAct) |
//! | `Identity`, inference `Dropout`, `Cast` to float, `Constant` | nothing (aliases and constants) |
//!
//! Anything else is refused with an error naming the node and its operator, e.g.
//! `node "/act/Erf" (Erf): unsupported operator`.
//!
//! pillar's own operator is `PolyAct` in domain [`POLY_DOMAIN`] (version 1): one input, float
//! attributes `coefficients` (`c_0..c_d`) and `range`, and, so that the f64 values survive,
//! tensor attributes `coefficients_f64` (double, `[d + 1]`) and `range_f64` (double scalar)
//! that take precedence. Runtimes other than pillar cannot execute it; with
//! [`SaveOptions::poly_as_subgraph`] the activation is written with `Mul` and `Add` instead,
//! which onnxruntime runs and which [`load`] fuses back into the same node (the exact
//! coefficients and the range travel in the model metadata entry `pillar.poly:<node name>`,
//! as `range=5;coefficients=0.314453125,0.5,...`).
//!
//! A polynomial written in PyTorch (`0.31 + 0.5 * x + 0.16 * x**2 - 0.003 * x**4`) has no
//! range; it gets the model metadata entry [`POLY_RANGE_KEY`] if present, else
//! [`DEFAULT_POLY_RANGE`].

mod attrs;
mod error;
mod export;
mod fuse;
mod import;
mod limits;
mod proto;
mod symbolic;
mod tensor;
#[cfg(test)]
mod tests;

use std::io::Read;
use std::path::Path;

use prost::Message;

pub use error::OnnxError;
pub use limits::{
    MAX_ATTRIBUTES, MAX_DECODED_OVERHEAD, MAX_INITIALIZERS, MAX_NAME_BYTES, MAX_NODE_VALUES,
    MAX_NODES, MAX_VALUE_INFOS,
};

use crate::error::NnError;
use crate::typed::TypedGraph;

/// The operator domain of pillar's own operators (`PolyAct`).
pub const POLY_DOMAIN: &str = "pillar";

/// The fitting range given to a polynomial activation whose model does not say (PILLAR fits
/// ReLU on `[-5, 5]`).
pub const DEFAULT_POLY_RANGE: f64 = 5.0;

/// Model metadata key whose value (a decimal number) is the fitting range of the model's
/// polynomial activations that carry none of their own. A training script can set it with
/// `onnx.helper.set_model_props(model, {"pillar.poly_range": "5"})`.
pub const POLY_RANGE_KEY: &str = "pillar.poly_range";

/// Largest model read, checked before reading: far above the networks private inference can
/// afford, and small enough that a hostile file cannot exhaust memory.
pub const MAX_MODEL_BYTES: u64 = 1 << 30;

/// How [`save_with`] writes a graph.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveOptions {
    /// Write each `PolyAct` as standard `Mul`/`Add` nodes, so that runtimes without pillar's
    /// operator (onnxruntime) can execute the model. [`load`] fuses them back.
    pub poly_as_subgraph: bool,
}

/// Reads an ONNX model file into a checked graph. Errors name the file and, for a node that
/// pillar cannot import, the node and its operator.
pub fn load(path: impl AsRef<Path>) -> Result<TypedGraph, NnError> {
    let path = path.as_ref();
    read_bounded(path)
        .map_err(NnError::from)
        .and_then(|bytes| from_bytes(&bytes))
        .map_err(|e| NnError::File {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, OnnxError> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if size > MAX_MODEL_BYTES {
        return Err(OnnxError::TooLarge {
            size,
            limit: MAX_MODEL_BYTES,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // `take` holds even if the file grows while it is read.
    file.take(MAX_MODEL_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(OnnxError::TooLarge {
            size: bytes.len() as u64,
            limit: MAX_MODEL_BYTES,
        });
    }
    Ok(bytes)
}

/// Decodes an ONNX model held in memory into a checked graph. The counts and the memory the
/// decoded model would take are checked before decoding: see [`MAX_NODES`] and the limits
/// beside it.
pub fn from_bytes(bytes: &[u8]) -> Result<TypedGraph, NnError> {
    from_bytes_within(bytes, &limits::Limits::DEFAULT)
}

fn from_bytes_within(bytes: &[u8], limits: &limits::Limits) -> Result<TypedGraph, NnError> {
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(OnnxError::TooLarge {
            size: bytes.len() as u64,
            limit: MAX_MODEL_BYTES,
        }
        .into());
    }
    limits::check(bytes, limits)?;
    let model = proto::ModelProto::decode(bytes).map_err(OnnxError::Decode)?;
    import::import(&model)
}

/// Writes `g` as an ONNX model with `PolyAct` as pillar's own operator.
pub fn save(g: &TypedGraph, path: impl AsRef<Path>) -> Result<(), NnError> {
    save_with(g, path, &SaveOptions::default())
}

/// Writes `g` as an ONNX model, as `opts` says, atomically (a reader never sees half a model).
pub fn save_with(
    g: &TypedGraph,
    path: impl AsRef<Path>,
    opts: &SaveOptions,
) -> Result<(), NnError> {
    let path = path.as_ref();
    let bytes = to_bytes_with(g, opts)?;
    crate::write_atomic(path, &bytes).map_err(|e| NnError::File {
        path: path.to_path_buf(),
        source: Box::new(OnnxError::Io(e).into()),
    })
}

/// The ONNX encoding of `g`, with `PolyAct` as pillar's own operator.
pub fn to_bytes(g: &TypedGraph) -> Result<Vec<u8>, NnError> {
    to_bytes_with(g, &SaveOptions::default())
}

/// The ONNX encoding of `g`, as `opts` says.
pub fn to_bytes_with(g: &TypedGraph, opts: &SaveOptions) -> Result<Vec<u8>, NnError> {
    Ok(export::export(g, opts)?.encode_to_vec())
}
