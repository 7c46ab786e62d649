//! Errors of the secure stage. Each says which node, step, weight or value is at fault, and
//! keeps the error it came from as its source.

use pillar_mpc::{MpcError, Party};
use pillar_nn::{NnError, Node};

/// What can go wrong compiling, mirroring or running a graph securely.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InferError {
    /// A node the secure engine cannot run as it stands.
    #[error("node {node:?} ({op}): {problem}")]
    Node {
        /// The node's name.
        node: String,
        /// Its operator.
        op: &'static str,
        /// What is wrong.
        #[source]
        problem: NodeProblem,
    },
    /// The graph itself, or an input that does not fit it.
    #[error(transparent)]
    Graph(#[from] NnError),
    /// The two-party computation, its link or its dealer.
    #[error(transparent)]
    Mpc(#[from] MpcError),
    /// An architecture the secure run cannot follow (one a server sent, say).
    #[error("architecture: {0}")]
    Architecture(#[from] ArchitectureError),
    /// Fractional bits the secure engine does not support, so nothing would mirror it.
    #[error(
        "{0} fractional bits: the secure engine supports {min} to {max}",
        min = pillar_mpc::FRAC_BITS.start(),
        max = pillar_mpc::FRAC_BITS.end()
    )]
    FracBits(u32),
    /// Weights that do not belong to the architecture they are served with.
    #[error("the weights do not belong to this architecture")]
    Weights,
    /// A connection given the other party's session.
    #[error("{expected}'s connection was given {got}'s session")]
    Role {
        /// The connection's party.
        expected: Party,
        /// The session's.
        got: Party,
    },
    /// An online phase given an input of another batch size than its offline phase fetched.
    #[error("a batch prepared for {prepared} images was given {given}")]
    Batch {
        /// Images the offline phase fetched correlations for.
        prepared: usize,
        /// Images in the input.
        given: usize,
    },
    /// A worker thread of the mirror panicked (a bug).
    #[error("a worker thread of the fixed-point mirror panicked")]
    WorkerPanicked,
}

/// Why the secure engine cannot run a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeProblem {
    /// A parameter the ring cannot encode.
    #[error("{what} holds {value}, which is not finite")]
    NotFinite {
        /// Which parameter.
        what: &'static str,
        /// The value.
        value: f64,
    },
    /// A parameter too large for the ring: its products would not fit `2^63` with the
    /// headroom the plan keeps.
    #[error(
        "{what} holds {value:e}, beyond +-{limit}: at {frac_bits} fractional bits its products \
         would not fit the ring with {} bits to spare",
        crate::plan::PARAMETER_HEADROOM_BITS
    )]
    Range {
        /// Which parameter.
        what: &'static str,
        /// The value.
        value: f64,
        /// The largest magnitude accepted (exclusive).
        limit: f64,
        /// The plan's fractional bits.
        frac_bits: u32,
    },
    /// A polynomial of a degree the engine does not evaluate, or with a coefficient that is
    /// not a number.
    #[error("{count} coefficients: the secure engine takes 1 to {max} finite ones")]
    Coefficients {
        /// Coefficients given.
        count: usize,
        /// Most accepted.
        max: usize,
    },
    /// An input or weight of a shape the layer does not take.
    #[error("expects {expected}, got {got:?}")]
    Shape {
        /// What the layer takes.
        expected: &'static str,
        /// What it was given.
        got: Vec<usize>,
    },
    /// A geometry the protocols refuse (a window that does not fit, a size beyond the limits).
    #[error(transparent)]
    Geometry(MpcError),
    /// A polynomial asked of the exact-ReLU protocol.
    #[error("the relu protocol cannot evaluate a polynomial: choose espn, honeybadger or crypten")]
    ReluPolynomial,
}

/// Why an architecture cannot be followed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchitectureError {
    /// Not one value shape per step, plus the input's.
    #[error("{shapes} value shapes for {steps} steps")]
    ShapeCount {
        /// Value shapes given.
        shapes: usize,
        /// Steps.
        steps: usize,
    },
    /// The first value's shape is not the input's.
    #[error("the input's shape is not the first value's")]
    InputShape,
    /// The output is not a value a step computes.
    #[error("output value {0} does not exist")]
    Output(usize),
    /// A value or weight shape with no elements, or too many.
    #[error("shape {shape:?} is empty or beyond {limit} elements")]
    Size {
        /// The shape.
        shape: Vec<usize>,
        /// Most elements accepted.
        limit: usize,
    },
    /// A step that does not fit its inputs and weights.
    #[error("step {index}{}: {problem}", named(.name))]
    Step {
        /// Its index.
        index: usize,
        /// Its name, empty in an architecture a client received.
        name: String,
        /// What is wrong.
        #[source]
        problem: StepProblem,
    },
    /// A batch whose run would hold more memory than the client allows, by
    /// `Architecture::peak_words`'s estimate.
    #[error(
        "a batch of {batch} images needs about {mib:.0} MiB at step {step}{}: \
         {correlations_mib:.0} MiB of correlations fetched ahead, {weights_mib:.0} MiB of \
         weights and their masks, the rest values and buffers; the client allows {limit_mib:.0} MiB",
        named(.name)
    )]
    Memory {
        /// Images in the batch.
        batch: usize,
        /// The step at the peak.
        step: usize,
        /// Its name.
        name: String,
        /// The estimate, in MiB.
        mib: f64,
        /// Of which correlations fetched ahead.
        correlations_mib: f64,
        /// Of which the setup's weights and masks.
        weights_mib: f64,
        /// The client's limit, in MiB.
        limit_mib: f64,
    },
    /// A batch so large that one of its buffers would pass any memory.
    #[error("a batch of {batch} images: one of its buffers would pass {limit} words")]
    Batch {
        /// Images in the batch.
        batch: usize,
        /// Most words of one buffer.
        limit: usize,
    },
    /// Steps that read values before they are computed (checked by the schedule).
    #[error(transparent)]
    Schedule(#[from] NnError),
}

/// Why a step of an architecture does not fit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepProblem {
    /// It reads the wrong number of values, or values not computed before it.
    #[error("reads values {inputs:?}; it takes {arity}, computed before it")]
    Reads {
        /// The values it reads.
        inputs: Vec<usize>,
        /// How many it takes.
        arity: usize,
    },
    /// A weight number with no weight.
    #[error("weight {0} does not exist")]
    NoWeight(usize),
    /// A weight of another shape than the layer uses.
    #[error("weight {weight} is {got:?}, the layer needs {expected:?}")]
    WeightShape {
        /// The weight's number.
        weight: usize,
        /// Its shape.
        got: Vec<usize>,
        /// What the layer needs.
        expected: Vec<usize>,
    },
    /// Parameters that do not fit the input.
    #[error("its parameters do not fit its input {input:?}")]
    Input {
        /// The input's shape.
        input: Vec<usize>,
    },
    /// A geometry or window the protocols refuse.
    #[error(transparent)]
    Geometry(MpcError),
    /// A step that would gather more words per image than the client allows (a convolution's
    /// patch matrix, a pooling's windows).
    #[error("its {what} holds {words} words per image, beyond the limit of {limit}")]
    Gathered {
        /// What it gathers.
        what: &'static str,
        /// Words per image.
        words: usize,
        /// Most accepted.
        limit: usize,
    },
    /// Values of different shapes added.
    #[error("adds values of different shapes")]
    Add,
    /// A polynomial the engine does not evaluate.
    #[error("{count} coefficients: 1 to {max} finite ones")]
    Coefficients {
        /// Coefficients given.
        count: usize,
        /// Most accepted.
        max: usize,
    },
    /// Clamping bounds that are not finite or not ordered.
    #[error("clip bounds [{min:?}, {max:?}] must be finite with min <= max")]
    ClipBounds {
        /// Lower bound.
        min: Option<f64>,
        /// Upper bound.
        max: Option<f64>,
    },
    /// An output shape other than what the input and parameters give.
    #[error("output shape {declared:?}, but its input and parameters give {derived:?}")]
    OutputShape {
        /// What the architecture says.
        declared: Vec<usize>,
        /// What the step computes.
        derived: Vec<usize>,
    },
    /// A step that truncates the client's input locally before anything has randomised its
    /// sharing (see `Architecture::check_secure_input`).
    #[error(
        "{what} reads the client's input directly, which the secure run shares as (0, x): the \
         local truncation of such a sharing is wrong, so a convolution, a linear layer, an exact \
         ReLU or a max-pool (or the crypten protocol) must come before it"
    )]
    TruncatesInput {
        /// The step's operation.
        what: &'static str,
    },
}

impl pillar_mpc::PartyError for InferError {
    fn is_peer_gone(&self) -> bool {
        matches!(self, InferError::Mpc(e) if e.is_peer_gone())
    }
}

/// ` ("name")` after a step's index, or nothing for a step known by its index alone.
fn named(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" ({name:?})")
    }
}

/// An error at `node`, naming it and its operator.
pub(crate) fn node_error(node: &Node, problem: NodeProblem) -> InferError {
    InferError::Node {
        node: node.name.clone(),
        op: node.op.name(),
        problem,
    }
}
