//! QuaIL (Sisyphus's baseline): a ReLU teacher, then the polynomial student cloned layer by
//! layer with the layers before frozen, then fine-tuned while unfreezing from the output
//! backwards.

use burn::module::Module;
use burn::tensor::Device;

use super::{Objective, Selected, TrainError, Trainer, finish};
use crate::metrics::Escape;
use crate::model::Net;

impl Trainer<'_> {
    /// QuaIL: teacher, layer-wise cloning with earlier layers frozen, fine-tuning while
    /// unfreezing from the output backwards.
    pub(super) fn quail(
        &mut self,
        teacher: Net,
        student: Net,
        amm: Option<&Device>,
    ) -> Result<(Net, Selected, Option<Escape>), TrainError> {
        let teacher_epochs = self.cfg.quail.teacher_epochs.unwrap_or(self.cfg.epochs);
        let end = self.phase(
            teacher,
            "teacher",
            teacher_epochs,
            Objective::CrossEntropy { pillar: false },
            &|_| 0,
        )?;
        let teacher = end.best.map(|(_, _, n)| n).unwrap_or(end.net);
        // The student starts from the teacher's weights with its own activations.
        let record = teacher.clone().into_record();
        let mut student = student.load_record(record);
        if let Some(device) = amm {
            let target = self.cfg.amm_range;
            student = student.map_activations(&|a, c| a.with_amm(c, target, device));
        }
        let teacher = teacher.valid();
        // Top-level layer holding each activation: cloning activation k freezes the layers
        // before it.
        let owners: Vec<usize> = student
            .layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| std::iter::repeat_n(i, l.activations().len()))
            .collect();
        for (k, &owner) in owners.iter().enumerate() {
            let name = format!("clone-{}", k + 1);
            // Train the layers between the previous activation and this one; inside a
            // residual block (both activations in the same top-level layer) the whole block.
            let frozen = match k.checked_sub(1).map(|j| owners[j]) {
                None => 0,
                Some(previous) if previous < owner => previous + 1,
                Some(_) => owner,
            };
            let end = self.phase(
                student,
                &name,
                self.cfg.quail.clone_epochs,
                Objective::Imitate {
                    teacher: &teacher,
                    layer: k,
                },
                &|_| frozen,
            )?;
            if end.escape.is_some() {
                return Ok((end.net, None, end.escape));
            }
            student = end.net;
        }
        let epochs = self.cfg.quail.finetune_epochs.unwrap_or(self.cfg.epochs);
        let layers = student.layers.len();
        let frozen =
            move |epoch: usize| layers - ((epoch + 1) * layers).div_ceil(epochs).min(layers);
        let end = self.phase(
            student,
            "finetune",
            epochs,
            Objective::CrossEntropy { pillar: false },
            &frozen,
        )?;
        Ok(finish(end))
    }
}
