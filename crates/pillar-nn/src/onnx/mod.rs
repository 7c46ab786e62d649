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
//! | `Flatten` (axis 1), `Reshape` to `[N, -1]` or `[N, F]` (constant or computed from `Shape`), `Squeeze` to `[N, F]` | [`Op::Flatten`](crate::Op::Flatten) |
//! | `Relu` | [`Op::Relu`](crate::Op::Relu) |
//! | `pillar.PolyAct`, or any `Add`/`Sub`/`Mul`/`Div`/`Pow`/`Neg` arithmetic in one activation with scalar constants (or constant tensors of equal elements that broadcast to it: `zeros_like(x)`) | [`Op::PolyAct`](crate::Op::PolyAct) |
//! | `Identity`, inference `Dropout`, `Cast` to float, `Constant`, `Expand` of an activation to its own shape | nothing (aliases and constants) |
//! | `Shape`, `Gather`, `Slice`, `Unsqueeze`, `Squeeze`, `Concat`, `ConstantOfShape`, `Expand`, `Reshape`, `Pad`, `Cast` and arithmetic on constants and shapes | nothing: evaluated while importing |
//!
//! Anything else is refused with an error naming the node and its operator and saying what to
//! change, e.g. `node "/act/Erf" (Erf): unsupported operator; pillar imports ...`.
//!
//! Constant folding keeps the batch size symbolic: `ConstantOfShape(Shape(x))` is a tensor of
//! equal elements of shape `[N, ...]`, never materialised, which polynomial arithmetic takes
//! as a scalar; other computed constants (a weight reshaped, a bias concatenated) take at most
//! [`MAX_FOLDED_BYTES`] together. A constant tensor whose elements differ is refused in
//! elementwise arithmetic (pillar's polynomials have scalar coefficients) unless it is the
//! bias of the layer before it.
//!
//! Tensor data may be stored beside the model, as the dynamo exporter of torch >= 2.9 does
//! (`m.onnx.data`; `TensorProto.data_location = EXTERNAL` with entries `location`, `offset`,
//! `length` and an unchecked `checksum`). [`load`] reads it from the model's folder and
//! [`from_bytes_in`] from the folder it is given; [`from_bytes`] refuses it. A location must
//! name a regular file inside that folder (relative, without `..`, not a symbolic link, not
//! resolving elsewhere), and each tensor's bytes must lie inside the file and be exactly what
//! its dimensions and type need, all checked before anything is read; the model and its
//! external data take at most [`MAX_MODEL_BYTES`] together, checked before import.
//!
//! [`save`] writes only standard operators, so that onnxruntime and every other runtime run
//! pillar's models: a polynomial activation becomes `Mul` and `Add` nodes, which [`load`]
//! fuses back into the same node (the exact coefficients and the range travel in the model
//! metadata entry `pillar.poly:<node name>`, as `range=5;coefficients=0.314453125,0.5,...`).
//!
//! pillar's own operator, which it wrote before and still reads, is `PolyAct` in domain
//! [`POLY_DOMAIN`] (version 1): one input, float attributes `coefficients` (`c_0..c_d`) and
//! `range`, and, so that the f64 values survive, tensor attributes `coefficients_f64` (double,
//! `[d + 1]`) and `range_f64` (double scalar) that take precedence. Runtimes other than pillar
//! cannot execute it; [`SaveOptions::poly_as_subgraph`] `false` still writes it.
//!
//! A polynomial written in PyTorch (`0.31 + 0.5 * x + 0.16 * x**2 - 0.003 * x**4`) has no
//! range; it gets the model metadata entry [`POLY_RANGE_KEY`] if present, else
//! [`DEFAULT_POLY_RANGE`].

mod attrs;
mod constant;
mod error;
mod export;
mod external;
mod fuse;
mod import;
mod limits;
mod proto;
mod symbolic;
mod tensor;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_external;
#[cfg(test)]
mod tests_fold;

use std::io::Read;
use std::path::Path;

use prost::Message;

pub use error::OnnxError;
pub use limits::{
    MAX_ATTRIBUTES, MAX_DECODED_OVERHEAD, MAX_FOLDED_BYTES, MAX_INITIALIZERS, MAX_NAME_BYTES,
    MAX_NODE_VALUES, MAX_NODES, MAX_VALUE_INFOS,
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

/// How [`save_with`] writes a graph. The default writes standard operators only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaveOptions {
    /// Write each `PolyAct` as standard `Mul`/`Add` nodes (the default), so that runtimes
    /// without pillar's operator (onnxruntime) can execute the model; [`load`] fuses them
    /// back. `false` writes pillar's own `pillar.PolyAct` operator, which only pillar runs.
    pub poly_as_subgraph: bool,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            poly_as_subgraph: true,
        }
    }
}

/// Reads an ONNX model file into a checked graph, with tensor data stored beside it (the
/// dynamo exporter's `m.onnx.data`) read from the file's folder. Errors name the file and, for
/// a node that pillar cannot import, the node and its operator.
pub fn load(path: impl AsRef<Path>) -> Result<TypedGraph, NnError> {
    let path = path.as_ref();
    let folder = path.parent().unwrap_or(Path::new("."));
    read_bounded(path)
        .map_err(NnError::from)
        .and_then(|bytes| from_bytes_in(&bytes, folder))
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
/// beside it. A model whose tensor data is stored in an external file is refused: its
/// locations are relative to the model's folder, which only [`load`] and [`from_bytes_in`]
/// know.
pub fn from_bytes(bytes: &[u8]) -> Result<TypedGraph, NnError> {
    from_bytes_within(bytes, None, &limits::Limits::DEFAULT)
}

/// [`from_bytes`] for a model whose file is in `folder`: tensor data stored outside the model
/// is read from files in that folder (never outside it), the model and that data together at
/// most [`MAX_MODEL_BYTES`].
pub fn from_bytes_in(bytes: &[u8], folder: impl AsRef<Path>) -> Result<TypedGraph, NnError> {
    from_bytes_within(bytes, Some(folder.as_ref()), &limits::Limits::DEFAULT)
}

fn from_bytes_within(
    bytes: &[u8],
    folder: Option<&Path>,
    limits: &limits::Limits,
) -> Result<TypedGraph, NnError> {
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(OnnxError::TooLarge {
            size: bytes.len() as u64,
            limit: MAX_MODEL_BYTES,
        }
        .into());
    }
    limits::check(bytes, limits)?;
    let model = proto::ModelProto::decode(bytes).map_err(OnnxError::Decode)?;
    let external = match (&model.graph, folder) {
        (Some(graph), Some(folder)) => {
            let budget = limits::external(graph, bytes.len() as u64, limits)?;
            Some(external::External::new(folder, budget))
        }
        _ => None,
    };
    import::import(&model, external, limits)
}

/// Writes `g` as an ONNX model of standard operators ([`SaveOptions::default`]), atomically.
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

/// The ONNX encoding of `g` with standard operators only ([`SaveOptions::default`]).
pub fn to_bytes(g: &TypedGraph) -> Result<Vec<u8>, NnError> {
    to_bytes_with(g, &SaveOptions::default())
}

/// The ONNX encoding of `g`, as `opts` says.
pub fn to_bytes_with(g: &TypedGraph, opts: &SaveOptions) -> Result<Vec<u8>, NnError> {
    Ok(export::export(g, opts)?.encode_to_vec())
}
