//! Both parties in one process (threads over the in-memory channel, or loopback TCP): what
//! `pillar eval --mode secure` and `pillar bench model` run.

use pillar_mpc::{Local, MpcError, RingTensor};

use crate::plan::Plan;
use crate::run::{BatchReport, Connection, Phase};

/// What a local run measured.
#[derive(Debug, Clone, Default)]
pub struct LocalReport {
    /// The setup, as the server saw it.
    pub setup: Phase,
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
) -> Result<(Vec<RingTensor>, LocalReport), MpcError> {
    let fixed = plan.architecture.fixed();
    let local = &Local { fixed, ..*local };
    for b in batches {
        plan.architecture
            .check_input(b)
            .map_err(|e| MpcError::Invalid {
                op: "secure plan",
                detail: e.to_string(),
            })?;
    }
    let [server, client] = local.run(|s| {
        let weights = s.party().is_server().then_some(&plan.weights);
        let conn = Connection::open(s, &plan.architecture, weights)?;
        let mut outputs = Vec::with_capacity(batches.len());
        let mut reports = Vec::with_capacity(batches.len());
        for b in batches {
            let input = (!s.party().is_server()).then_some(b);
            let (logits, report) = conn.infer(s, b.shape()[0], input)?;
            if logits.is_some() {
                progress(b.shape()[0]);
            }
            outputs.push(logits);
            reports.push(report);
        }
        Ok((conn.setup, outputs, reports))
    })?;
    let logits = client
        .1
        .into_iter()
        .map(|l| {
            l.ok_or_else(|| MpcError::Invalid {
                op: "secure plan",
                detail: "the client received no logits".into(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        logits,
        LocalReport {
            setup: server.0,
            server: server.2,
            client: client.2,
        },
    ))
}
