//! The ONNX fixtures of `crates/pillar-nn/tests/fixtures` (feature `test-utils`): real
//! PyTorch exports with a fixed input and the outputs PyTorch and onnxruntime computed for
//! it, read by this crate's import tests and by the secure stage's.

use std::path::{Path, PathBuf};

use crate::Tensor;

/// The fixtures' folder.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One fixture: `STEM.onnx` and what `STEM.json` holds.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// `STEM.onnx` (its external data, if any, beside it).
    pub model: PathBuf,
    /// The fixed input batch.
    pub input: Tensor,
    /// PyTorch's output for it (none for a model built without PyTorch).
    pub pytorch: Option<Tensor>,
    /// onnxruntime's output for it, computed when the fixture was made (none for pillar's
    /// own test models, which are checked against PyTorch only).
    pub onnxruntime: Option<Tensor>,
}

/// Reads the fixture `stem` (`resnet_dynamo`, ...).
pub fn load(stem: &str) -> Fixture {
    let json = dir().join(format!("{stem}.json"));
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", json.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let opt = |key: &str| (!v[key].is_null()).then(|| json_tensor(&v[key]));
    Fixture {
        model: dir().join(format!("{stem}.onnx")),
        input: json_tensor(&v["input"]),
        pytorch: opt("output"),
        onnxruntime: opt("onnxruntime"),
    }
}

/// `{"shape": [...], "data": [...]}` as a tensor.
pub fn json_tensor(v: &serde_json::Value) -> Tensor {
    let shape = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    Tensor::new(shape, data).unwrap()
}
