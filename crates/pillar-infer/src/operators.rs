//! The table of the ONNX operators pillar imports, what each becomes, and what it costs in the
//! online phase of a secure run: the README's "Supported operators", generated here so that
//! it cannot drift from the code (a test compares the two). Each cost is read off the cost
//! model ([`Architecture::layer_rounds`], [`Architecture::online_words`]) of a small graph
//! with that one layer, compiled as `pillar eval` and `pillar serve` compile it.

use pillar_mpc::Party;
use pillar_mpc::protocols::activation::ActivationProtocol;
use pillar_mpc::protocols::preprocessed::LinearProtocol;
use pillar_nn::{Clip, Graph, Op, OutputTransform, Pool};

use crate::error::InferError;
use crate::plan::{FixedConfig, Plan};

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorRow {
    /// The ONNX operators, as written in the README.
    pub onnx: &'static str,
    /// What pillar makes of them.
    pub becomes: &'static str,
    /// Online rounds of the layer.
    pub rounds: usize,
    /// Bytes each party sends in the layer, in words of the row's unit.
    pub bytes: String,
}

/// Where the README's table starts and ends.
pub const TABLE_BEGIN: &str = "<!-- ops-table:begin -->";
/// See [`TABLE_BEGIN`].
pub const TABLE_END: &str = "<!-- ops-table:end -->";

/// The architecture's cost of `g`'s layers: `(rounds, bytes each party sends)` per image,
/// without the delivery of the logits (the client's count, which has none).
fn cost(g: &Graph, activation: ActivationProtocol) -> Result<(usize, f64), InferError> {
    let folded = g.clone().typed()?.fold_batchnorm()?;
    // The Beaver protocol's costs, the same for both parties: under the preprocessed one a
    // layer's words depend on its neighbours (what is known offline).
    let config = FixedConfig {
        activation,
        linear: LinearProtocol::Beaver,
        ..FixedConfig::default()
    };
    let arch = Plan::compile(&folded, config)?.architecture;
    Ok((
        arch.layer_rounds(),
        8.0 * arch.online_words(1, Party::Client) as f64,
    ))
}

/// `g` with one node `op` on an input of `shape`.
fn one(shape: &[usize], op: Op) -> Graph {
    let mut g = Graph::new(shape.to_vec());
    g.chain("op", op);
    g
}

/// `8`, `112.125`: bytes without trailing zeros.
fn number(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The rows, in the README's order. Errors only if the small graphs they are read from no
/// longer compile.
pub fn operator_rows() -> Result<Vec<OperatorRow>, InferError> {
    let relu = ActivationProtocol::Relu;
    // 64 elements or outputs, so that the packed bits of an opening come out whole.
    let per = |g: &Graph, n: usize, unit: &str| -> Result<(usize, String), InferError> {
        let (rounds, bytes) = cost(g, relu)?;
        Ok((rounds, format!("{} per {unit}", number(bytes / n as f64))))
    };
    let conv = Op::Conv2d(pillar_nn::Conv2d {
        weight: pillar_nn::Tensor::new(vec![1, 1, 3, 3], vec![0.1; 9])?,
        bias: None,
        stride: 1,
        padding: 1,
    });
    let linear = Op::Linear(pillar_nn::Linear {
        weight: pillar_nn::Tensor::new(vec![2, 64], vec![0.1; 128])?,
        bias: None,
    });
    let mut loose_bn = one(&[64], Op::Relu);
    loose_bn.chain(
        "bn",
        Op::BatchNorm(pillar_nn::BatchNorm {
            gamma: vec![1.0; 64],
            beta: vec![0.0; 64],
            mean: vec![0.0; 64],
            var: vec![1.0; 64],
            eps: 1e-5,
        }),
    );
    let (relu_rounds, relu_bytes) = cost(&one(&[64], Op::Relu), relu)?;
    let (bn_rounds, bn_bytes) = cost(&loose_bn, relu)?;
    let clip = |min, max| one(&[64], Op::Clip(Clip { min, max }));
    let poly = |protocol: ActivationProtocol| {
        let g = one(
            &[64],
            Op::PolyAct(pillar_nn::PolyAct {
                coefficients: vec![0.3, 0.5, 0.16, 0.0, -0.003],
                range: 5.0,
            }),
        );
        let (rounds, bytes) = cost(&g, protocol)?;
        Ok::<_, InferError>((rounds, format!("{} per element", number(bytes / 64.0))))
    };
    let pool = |kernel, stride, pad| Pool {
        kernel,
        stride,
        pad,
    };
    let mut softmax = one(&[64], Op::Relu);
    softmax.output_transform = Some(OutputTransform::Softmax);
    let (softmax_rounds, softmax_bytes) = cost(&softmax, relu)?;
    let mut rows = Vec::new();
    let mut row = |onnx, becomes, (rounds, bytes): (usize, String)| {
        rows.push(OperatorRow {
            onnx,
            becomes,
            rounds,
            bytes,
        });
    };
    row(
        "`Conv` (2-d, `group` 1, square stride, symmetric pads)",
        "convolution",
        per(&one(&[1, 8, 8], conv), 64, "input element")?,
    );
    row(
        "`Gemm`, `MatMul` by a constant (and the `Add` of its bias)",
        "fully connected layer",
        per(&one(&[64], linear), 64, "input element")?,
    );
    row(
        "`BatchNormalization` after a `Conv` or `Gemm`",
        "folded into that layer",
        (0, "0".into()),
    );
    row(
        "`BatchNormalization` elsewhere",
        "per-channel scale and shift",
        (
            bn_rounds - relu_rounds,
            format!("{} per element", number((bn_bytes - relu_bytes) / 64.0)),
        ),
    );
    row(
        "`Relu`",
        "exact ReLU",
        per(&one(&[64], Op::Relu), 64, "element")?,
    );
    row(
        "`Clip` with both bounds",
        "exact clamp: two ReLUs in one batch",
        per(&clip(Some(-1.0), Some(1.0)), 64, "element")?,
    );
    row(
        "`Clip` with one bound",
        "exact clamp: one ReLU",
        per(&clip(Some(0.0), None), 64, "element")?,
    );
    row(
        "`MaxPool` 2x2 (pads up to 1)",
        "max pool: a tournament of 3 ReLUs",
        per(&one(&[1, 16, 16], Op::MaxPool(pool(2, 2, 0))), 64, "output")?,
    );
    row(
        "`MaxPool` 3x3 (pads up to 1, torchvision's stem)",
        "max pool: a tournament of 8 ReLUs",
        per(&one(&[1, 16, 16], Op::MaxPool(pool(3, 2, 1))), 64, "output")?,
    );
    row(
        "`AveragePool` (pads with `count_include_pad=1`), `GlobalAveragePool`, `ReduceMean` over H and W",
        "average pool (local)",
        (0, "0".into()),
    );
    row(
        "`Pad` with zeros on H and W, before a `Conv` or `AveragePool`",
        "that layer's padding",
        (0, "0".into()),
    );
    row(
        "`Add` of two activations",
        "residual sum (local)",
        (0, "0".into()),
    );
    row(
        "`Flatten`, `Reshape` to `[N, -1]` or `[N, F]`, `Squeeze` to `[N, F]`",
        "flatten (local)",
        (0, "0".into()),
    );
    row(
        "`Softmax`, `LogSoftmax` as the last operator",
        "applied by the client to the logits",
        (
            softmax_rounds - relu_rounds,
            number(softmax_bytes - relu_bytes),
        ),
    );
    for (protocol, onnx, becomes) in [
        (
            ActivationProtocol::Espn,
            "`pillar.PolyAct`, or `Add`/`Sub`/`Mul`/`Div`/`Pow`/`Neg` with scalars (degree 4)",
            "polynomial activation, `--protocol espn` (default)",
        ),
        (
            ActivationProtocol::HoneyBadger,
            "the same",
            "polynomial activation, `--protocol honeybadger`",
        ),
        (
            ActivationProtocol::Crypten,
            "the same",
            "polynomial activation, `--protocol crypten`",
        ),
    ] {
        row(onnx, becomes, poly(protocol)?);
    }
    row(
        "`Identity`, `Dropout` (inference), `Cast` to float, `Constant`, `Expand` of an activation to its own shape",
        "nothing",
        (0, "0".into()),
    );
    row(
        "`Shape`, `Gather`, `Slice`, `Unsqueeze`, `Squeeze`, `Concat`, `ConstantOfShape`, `Expand`, `Reshape`, `Pad`, `Cast` and arithmetic on constants (`torch.zeros_like(x)`, a computed reshape target)",
        "evaluated while importing",
        (0, "0".into()),
    );
    Ok(rows)
}

/// The table as Markdown, between [`TABLE_BEGIN`] and [`TABLE_END`] (both included).
pub fn operator_table() -> Result<String, InferError> {
    let mut s = format!(
        "{TABLE_BEGIN}\n| ONNX | pillar | online rounds | bytes each party sends |\n|---|---|---|---|\n"
    );
    for r in operator_rows()? {
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.onnx, r.becomes, r.rounds, r.bytes
        ));
    }
    s.push_str(&format!(
        "\nEvery secure run adds one round to deliver the logits, in which the server sends 8 \
         bytes per logit. Costs from the cost model (`Architecture::layer_rounds` and \
         `online_words`, which the secure tests check against measured traffic); an element is \
         one value of the layer's input.\n{TABLE_END}"
    ));
    Ok(s)
}
