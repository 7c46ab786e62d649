//! Checkpoints: the network, the optimizer and the run's state after every epoch, so that a
//! run can continue where it stopped (`--resume`), with only `--epochs` allowed to change.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};

use super::TrainError;
use crate::config::TrainConfig;
use crate::metrics::EpochMetrics;
use crate::model::Net;

/// Where checkpoints go and whether to continue from them.
#[derive(Debug, Clone, Default)]
pub struct Checkpoints {
    /// Directory for `state.json` and the weight files it names, `model-N.bpk`,
    /// `optimizer-N.bpk` and `best-N.bpk` after `N` epochs (none: no checkpoints).
    pub dir: Option<PathBuf>,
    /// Continue from the checkpoint in `dir`.
    pub resume: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct State {
    pub(super) phase: String,
    pub(super) next_epoch: usize,
    pub(super) history: Vec<EpochMetrics>,
    pub(super) best: Option<(usize, f64)>,
    pub(super) config: TrainConfig,
}

fn checkpoint_error(path: &Path, detail: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// A weight file of the checkpoint: `STEM-N.bpk`, after `N` epochs. The files carry their
/// epoch so that a new checkpoint never overwrites the one `state.json` names: a run killed
/// while saving leaves the previous checkpoint whole, with the new files beside it unused.
fn weights(dir: &Path, stem: &str, epochs: usize) -> PathBuf {
    dir.join(format!("{stem}-{epochs}.bpk"))
}

/// The weight file to load: `STEM-N.bpk`, or `STEM.bpk` as checkpoints were named before.
fn existing_weights(dir: &Path, stem: &str, epochs: usize) -> PathBuf {
    let path = weights(dir, stem, epochs);
    let unnumbered = dir.join(format!("{stem}.bpk"));
    if !path.exists() && unnumbered.exists() {
        unnumbered
    } else {
        path
    }
}

/// The weight files `state` names.
fn named(dir: &Path, state: &State) -> Vec<PathBuf> {
    let mut files = vec![
        existing_weights(dir, "model", state.next_epoch),
        existing_weights(dir, "optimizer", state.next_epoch),
    ];
    if let Some((e, _)) = state.best {
        files.push(existing_weights(dir, "best", e + 1));
    }
    files
}

pub(super) fn save_checkpoint(
    dir: &Path,
    net: &Net,
    optim: &ModuleOptimizer,
    best: &Option<(usize, f64, Net)>,
    state: State,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| checkpoint_error(dir, e))?;
    let model = weights(dir, "model", state.next_epoch);
    net.clone()
        .save_file(&model)
        .map_err(|e| checkpoint_error(&model, e))?;
    let opt = weights(dir, "optimizer", state.next_epoch);
    optim.save(&opt).map_err(|e| checkpoint_error(&opt, e))?;
    if let Some((e, _, b)) = best
        && *e + 1 == state.next_epoch
    {
        let path = weights(dir, "best", state.next_epoch);
        b.clone()
            .save_file(&path)
            .map_err(|e| checkpoint_error(&path, e))?;
    }
    // Last, and atomically: until this rename the previous state and its files stand.
    let path = dir.join("state.json");
    let json = serde_json::to_string_pretty(&state).map_err(|e| checkpoint_error(&path, e))?;
    pillar_nn::write_atomic(&path, json.as_bytes()).map_err(|e| checkpoint_error(&path, e))?;
    remove_unnamed(dir, &named(dir, &state));
    Ok(())
}

/// Deletes the weight files of earlier checkpoints (and of saves that were interrupted). A
/// file that cannot be deleted only takes space.
fn remove_unnamed(dir: &Path, keep: &[PathBuf]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        let stale = path.extension().is_some_and(|x| x == "bpk") && !keep.contains(&path);
        if stale {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Checks, before a resumed run loads its data or writes anything, that `dir` holds a
/// checkpoint `cfg` may continue: its state readable, its configuration the same but for
/// `epochs`, and its weight files present. Whether the weight files decode is only known
/// when the network they fill is built; that load fails with an error as well.
pub fn check_resume(dir: &Path, cfg: &TrainConfig) -> Result<(), TrainError> {
    let state = read_state(dir, cfg)?;
    for path in named(dir, &state) {
        if !path.is_file() {
            return Err(checkpoint_error(
                &path,
                "missing: the checkpoint is incomplete and cannot be resumed",
            ));
        }
    }
    Ok(())
}

/// The checkpoint's state, if `cfg` may continue it.
fn read_state(dir: &Path, cfg: &TrainConfig) -> Result<State, TrainError> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| checkpoint_error(&path, format!("{e}: there is no checkpoint to resume")))?;
    let state: State = serde_json::from_str(&text).map_err(|e| checkpoint_error(&path, e))?;
    let mut cfg_epochs = state.config.clone();
    cfg_epochs.epochs = cfg.epochs;
    if cfg_epochs != *cfg {
        return Err(checkpoint_error(
            &path,
            "the checkpoint was trained with a different configuration (only --epochs may change on resume)",
        ));
    }
    Ok(state)
}

pub(super) fn load_checkpoint(
    dir: &Path,
    net: Net,
    optim: ModuleOptimizer,
    cfg: &TrainConfig,
) -> Result<(Net, ModuleOptimizer, State), TrainError> {
    let state = read_state(dir, cfg)?;
    let model = existing_weights(dir, "model", state.next_epoch);
    let net = net
        .try_load_file(&model)
        .map_err(|e| checkpoint_error(&model, e))?;
    let opt = existing_weights(dir, "optimizer", state.next_epoch);
    let optim = optim.load(&opt).map_err(|e| checkpoint_error(&opt, e))?;
    Ok((net, optim, state))
}

/// The best network of a resumed run, selected at 0-based `epoch`.
pub(super) fn load_best(dir: &Path, net: Net, epoch: usize) -> Result<Net, TrainError> {
    let path = existing_weights(dir, "best", epoch + 1);
    net.try_load_file(&path)
        .map_err(|e| checkpoint_error(&path, e))
}
