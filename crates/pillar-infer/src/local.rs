//! Both parties in one process (threads over the in-memory channel, or loopback TCP): what
//! `pillar eval --mode secure` and `pillar bench model` run.

use pillar_mpc::{Local, RingTensor};

use crate::error::InferError;
use crate::plan::Plan;
use crate::run::{BatchReport, ClientConnection, Phase, ServerConnection};

/// What a local run measured.
#[derive(Debug, Clone, Default)]
pub struct LocalReport {
    /// The setup, as the server saw it.
    pub setup: Phase,
    /// The setup, as the client saw it (under the preprocessed protocol it sends nothing).
    pub client_setup: Phase,
    /// Per batch, as the server saw it.
    pub server: Vec<BatchReport>,
    /// Per batch, as the client saw it.
    pub client: Vec<BatchReport>,
}

/// Runs `plan` on `batches` (each `[n, ...input_shape]`, ring words at the plan's `f`) over
/// one connection, and returns the logits (ring words) of each batch with the costs. The
/// client calls `progress` with the images done after each batch. The sessions take their
/// fixed-point format from the plan, whatever `local.fixed` says: the plan's layers were
/// compiled for it.
pub fn run_local(
    plan: &Plan,
    batches: &[RingTensor],
    local: &Local,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<(Vec<RingTensor>, LocalReport), InferError> {
    let arch = &plan.architecture;
    let local = &Local {
        fixed: arch.fixed(),
        ..*local
    };
    for b in batches {
        arch.check_input(b)?;
    }
    // A fixed seed (a test's, a benchmark's) fixes the weight masks too.
    let masked = match local.seed {
        Some(seed) => plan.masked_weights_from_seed(seed)?,
        None => plan.masked_weights()?,
    };
    let [server, client] = local.run_parties(|s| -> Result<Side, InferError> {
        if s.party().is_server() {
            let conn = ServerConnection::open(s, plan, &masked)?;
            let reports = batches
                .iter()
                .map(|b| conn.prepare(s, b.shape()[0])?.run(s))
                .collect::<Result<Vec<_>, InferError>>()?;
            Ok(Side {
                setup: conn.setup(),
                logits: Vec::new(),
                reports,
            })
        } else {
            let conn = ClientConnection::open(s, arch)?;
            let mut side = Side {
                setup: conn.setup(),
                logits: Vec::with_capacity(batches.len()),
                reports: Vec::with_capacity(batches.len()),
            };
            for b in batches {
                let (logits, report) = conn.prepare(s, b.shape()[0])?.run(s, b)?;
                progress(b.shape()[0]);
                side.logits.push(logits);
                side.reports.push(report);
            }
            Ok(side)
        }
    })?;
    Ok((
        client.logits,
        LocalReport {
            setup: server.setup,
            client_setup: client.setup,
            server: server.reports,
            client: client.reports,
        },
    ))
}

/// What one party's thread returns.
struct Side {
    setup: Phase,
    logits: Vec<RingTensor>,
    reports: Vec<BatchReport>,
}
