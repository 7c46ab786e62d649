//! Runs ONNX files in onnxruntime (feature `test-utils`), for the tests that check pillar's
//! models against a standard runtime.
//!
//! onnxruntime is Python's: `scripts/test` makes a virtual environment with it and runs the
//! tests with `PILLAR_PYTHON` set to its Python. Without `PILLAR_PYTHON`, the venv that
//! `scripts/test` makes is used if it is there (`$PILLAR_VENV`, default
//! `~/.cache/pillar/venv`); otherwise the test stops with a message that names `scripts/test`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Tensor;

/// What a test that needs onnxruntime says when it has none.
pub const SETUP: &str = "this test runs onnxruntime, a Python package: run the tests with \
    `scripts/test` (it makes a venv with onnxruntime and numpy in ~/.cache/pillar/venv, or \
    $PILLAR_VENV, and sets PILLAR_PYTHON), or set PILLAR_PYTHON to a Python that has them";

/// The venv `scripts/test` makes: `$PILLAR_VENV`, else `~/.cache/pillar/venv`.
pub fn venv() -> Option<PathBuf> {
    std::env::var_os("PILLAR_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/pillar/venv")))
}

/// `$PILLAR_PYTHON`, else the Python of [`venv`] if it exists.
///
/// # Panics
/// If neither is there, with [`SETUP`].
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("PILLAR_PYTHON") {
        return PathBuf::from(p);
    }
    venv()
        .map(|v| v.join("bin/python"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| panic!("PILLAR_PYTHON is not set and there is no venv: {SETUP}"))
}

/// The output onnxruntime computes for the model file `model` (external data read beside
/// it) on the batch `x`, through `scripts/onnxruntime_run.py`.
///
/// # Panics
/// If Python or onnxruntime is missing (with [`SETUP`]), or onnxruntime refuses the model
/// (with its message).
pub fn run(model: &Path, x: &Tensor) -> Tensor {
    let python = python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/onnxruntime_run.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(model)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}\n{SETUP}", python.display()));
    let input = serde_json::json!({ "shape": x.shape(), "data": x.data() });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        panic!(
            "{} cannot import onnxruntime ({}):\n{SETUP}",
            python.display(),
            stderr.trim()
        );
    }
    assert!(
        out.status.success(),
        "onnxruntime failed on {}:\n{stderr}",
        model.display()
    );
    let y: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    super::fixtures::json_tensor(&y)
}
