//! The training loop on tiny runs: it learns, it records, it stops on an escape and names the
//! layer, it resumes from a checkpoint, and QuaIL goes through its phases.
#![allow(clippy::unwrap_used)]

use burn::tensor::Device;
use pillar_train::data::{DataSet, DatasetKind};
use pillar_train::{
    ActivationKind, Architecture, Checkpoints, Outcome, TrainConfig, TrainError, train,
};

fn tiny(activation: ActivationKind, epochs: usize) -> TrainConfig {
    TrainConfig {
        model: Architecture::Convnet,
        dataset: DatasetKind::Mnist,
        activation,
        epochs,
        batch_size: 32,
        lr: 0.05,
        lr_warmup_epochs: 0,
        limit_train: Some(320),
        val_fraction: 0.2,
        ..TrainConfig::default()
    }
}

/// A run without checkpoints or progress events.
fn quick(cfg: &TrainConfig, data: &DataSet) -> Result<Outcome, TrainError> {
    train(
        cfg,
        data,
        &Device::flex(),
        &Checkpoints::default(),
        &mut |_| {},
    )
}

fn mnist() -> DataSet {
    DataSet::load(DatasetKind::Mnist, None).unwrap()
}

#[test]
fn a_relu_convnet_learns_and_records_every_epoch() {
    let data = mnist();
    let mut epochs_seen = 0;
    let out = train(
        &tiny(ActivationKind::Relu, 3),
        &data,
        &Device::flex(),
        &Checkpoints::default(),
        &mut |e| {
            if let pillar_train::Event::Epoch(_) = e {
                epochs_seen += 1;
            }
        },
    )
    .unwrap();
    let m = &out.metrics;
    assert_eq!((m.history.len(), epochs_seen), (3, 3));
    assert!(m.escape.is_none());
    // 256 training images, 3 epochs: far better than chance (10%).
    assert!(m.test_accuracy.unwrap() > 0.5, "{:?}", m.test_accuracy);
    assert_eq!(
        m.history[0].max_abs_per_layer.len(),
        3,
        "three activation layers"
    );
    assert!(
        m.history
            .iter()
            .all(|h| h.images_per_second > 0.0 && h.penalty == 0.0)
    );
}

#[test]
fn pillar_epoch_zero_trains_the_penalty_alone() {
    let data = mnist();
    let out = train(
        &tiny(ActivationKind::Poly, 2),
        &data,
        &Device::flex(),
        &Checkpoints::default(),
        &mut |_| {},
    )
    .unwrap();
    let h = &out.metrics.history;
    // Epoch 0: the loss is the penalty alone (cross-entropy weighted 0).
    assert!(
        (h[0].train_loss - h[0].penalty).abs() <= 1e-6 * h[0].penalty.max(1e-12),
        "{:?}",
        h[0]
    );
    assert!(h[0].penalty > 0.0);
    // Epoch 1: cross-entropy is back, so the loss exceeds the penalty by far.
    assert!(h[1].train_loss > 10.0 * h[1].penalty);
    assert!(out.metrics.oor_ratio.is_some());
}

#[test]
fn an_escape_names_the_epoch_batch_and_layer_and_stops() {
    let data = mnist();
    let mut cfg = tiny(ActivationKind::NaivePoly, 3);
    // Any input beyond 0.5 counts as escaped: the first activation layer trips at once.
    cfg.escape_threshold = 0.5;
    let out = quick(&cfg, &data).unwrap();
    let e = out.metrics.escape.unwrap();
    assert_eq!(
        (e.phase.as_str(), e.epoch, e.batch, e.layer.as_str()),
        ("train", 0, Some(0), "poly1")
    );
    assert!(e.max_abs > 0.5);
    assert!(out.metrics.history.is_empty() && out.metrics.test_accuracy.is_none());
}

#[test]
fn resume_continues_where_the_checkpoint_stopped() {
    let data = mnist();
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = Checkpoints {
        dir: Some(dir.path().to_path_buf()),
        resume: false,
    };
    let cfg = tiny(ActivationKind::Relu, 1);
    train(&cfg, &data, &Device::flex(), &checkpoints, &mut |_| {}).unwrap();
    assert!(dir.path().join("state.json").is_file());
    let mut longer = cfg.clone();
    longer.epochs = 2;
    let resumed = Checkpoints {
        resume: true,
        ..checkpoints.clone()
    };
    let out = train(&longer, &data, &Device::flex(), &resumed, &mut |_| {}).unwrap();
    let epochs: Vec<usize> = out.metrics.history.iter().map(|h| h.epoch).collect();
    assert_eq!(epochs, vec![0, 1]);
    // A different configuration is refused.
    let mut other = longer.clone();
    other.lr = 0.01;
    let err = train(&other, &data, &Device::flex(), &resumed, &mut |_| {})
        .err()
        .unwrap();
    assert!(err.to_string().contains("different configuration"), "{err}");
}

#[test]
fn quail_runs_teacher_clone_and_finetune_phases() {
    let data = mnist();
    let mut cfg = tiny(ActivationKind::QuailAmm, 1);
    cfg.limit_train = Some(160);
    let out = quick(&cfg, &data).unwrap();
    let phases: Vec<&str> = out
        .metrics
        .history
        .iter()
        .map(|h| h.phase.as_str())
        .collect();
    assert_eq!(
        phases,
        vec!["teacher", "clone-1", "clone-2", "clone-3", "finetune"]
    );
    // The exported network has quadratic activations with AMM folded in.
    let graph = pillar_train::model::export::to_graph(&out.net).unwrap();
    let polys: Vec<usize> = graph
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            pillar_nn::Op::PolyAct(p) => Some(p.coefficients.len()),
            _ => None,
        })
        .collect();
    assert_eq!(polys, vec![3, 3, 3]);
}

#[test]
fn bad_configurations_are_refused() {
    let data = mnist();
    let mut cfg = tiny(ActivationKind::Relu, 0);
    let err = quick(&cfg, &data).err().unwrap();
    assert!(err.to_string().contains("epochs"), "{err}");
    cfg.epochs = 1;
    cfg.limit_train = Some(1);
    cfg.val_fraction = 0.5;
    let err = quick(&cfg, &data).err().unwrap();
    assert!(err.to_string().contains("validation"), "{err}");
}
