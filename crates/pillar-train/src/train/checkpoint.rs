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
    /// Directory for `model.bpk`, `optimizer.bpk`, `state.json` (none: no checkpoints).
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

pub(super) fn save_checkpoint(
    dir: &Path,
    net: &Net,
    optim: &ModuleOptimizer,
    best: &Option<(usize, f64, Net)>,
    state: State,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| checkpoint_error(dir, e))?;
    let model = dir.join("model");
    net.clone()
        .save_file(&model)
        .map_err(|e| checkpoint_error(&model, format!("{e:?}")))?;
    let opt = dir.join("optimizer");
    optim
        .save(&opt)
        .map_err(|e| checkpoint_error(&opt, format!("{e:?}")))?;
    if let Some((e, _, b)) = best
        && *e + 1 == state.next_epoch
    {
        let path = dir.join("best");
        b.clone()
            .save_file(&path)
            .map_err(|e| checkpoint_error(&path, format!("{e:?}")))?;
    }
    let path = dir.join("state.json");
    let json = serde_json::to_string_pretty(&state).map_err(|e| checkpoint_error(&path, e))?;
    std::fs::write(&path, json).map_err(|e| checkpoint_error(&path, e))
}

pub(super) fn load_checkpoint(
    dir: &Path,
    net: Net,
    optim: ModuleOptimizer,
    cfg: &TrainConfig,
) -> Result<(Net, ModuleOptimizer, State), TrainError> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| checkpoint_error(&path, e))?;
    let state: State = serde_json::from_str(&text).map_err(|e| checkpoint_error(&path, e))?;
    if state.config != *cfg {
        let mut cfg_epochs = state.config.clone();
        cfg_epochs.epochs = cfg.epochs;
        if cfg_epochs != *cfg {
            return Err(checkpoint_error(
                &path,
                "the checkpoint was trained with a different configuration (only --epochs may change on resume)",
            ));
        }
    }
    let model = dir.join("model");
    let net = net
        .try_load_file(&model)
        .map_err(|e| checkpoint_error(&model, format!("{e:?}")))?;
    let opt = dir.join("optimizer");
    let optim = optim
        .load(&opt)
        .map_err(|e| checkpoint_error(&opt, format!("{e:?}")))?;
    Ok((net, optim, state))
}
