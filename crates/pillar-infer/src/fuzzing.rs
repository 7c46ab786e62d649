//! Entry points for the fuzz targets under `fuzz/`: what a file or a peer hands the secure
//! stage. Each must return (an error, usually) and never panic, hang or allocate beyond its
//! bounds.

use pillar_mpc::{Party, RingTensor};

use crate::plan::{Architecture, FixedConfig, Plan, UncheckedArchitecture, Weights};
use crate::remote::decode_hello;

/// An ONNX file: parsed, and when it parses, folded and compiled for the secure engine.
pub fn onnx(input: &[u8]) {
    let Ok(graph) = pillar_nn::onnx::from_bytes(input) else {
        return;
    };
    if let Ok(folded) = graph.fold_batchnorm() {
        let _ = Plan::compile(&folded, FixedConfig::default());
    }
}

/// A server's hello, as the client decodes and checks it.
pub fn hello(input: &[u8]) {
    let _ = decode_hello(input);
}

/// A hello carrying `architecture` (made by a structure-aware target, so that it gets past
/// the JSON to the checks), decoded as the client decodes it; when it passes, what the client
/// then computes from it alone (`client_side`).
pub fn hello_with(architecture: &UncheckedArchitecture) {
    let hello = serde_json::json!({
        "Ready": {
            "architecture": architecture,
            "session": "0123456789abcdef0123456789abcdef",
            "max_batch": 4,
            "weights": "00".repeat(32),
        }
    });
    let Ok(bytes) = serde_json::to_vec(&hello) else {
        return;
    };
    if let Ok(ready) = decode_hello(&bytes) {
        client_side(&ready.architecture);
    }
}

/// What a client computes from a checked architecture before and while it runs: the memory
/// estimate, the correlations and costs of small batches, and, within 4 MiB, the mirror on
/// zeros with zero weights, which follows every index and size the secure run follows.
fn client_side(architecture: &Architecture) {
    const LIMIT: usize = 4 << 20;
    for batch in [1, 2] {
        if architecture.check_memory(batch, LIMIT).is_err() {
            return;
        }
        let _ = architecture.needs(batch);
        let _ = architecture.offline_words(batch);
        let _ = architecture.online_words(batch, Party::Client);
    }
    let _ = (architecture.rounds(), architecture.setup_words());
    let weights = Weights {
        weights: architecture
            .weight_shapes
            .iter()
            .map(|s| vec![0; s.iter().product()])
            .collect(),
        biases: vec![None; architecture.steps.len()],
    };
    let plan = Plan {
        architecture: architecture.clone(),
        weights,
    };
    if let Ok(input) = RingTensor::zeros(architecture.batch_shape(0, 2)) {
        let _ = crate::mirror::run_plan(&plan, &input);
    }
}
