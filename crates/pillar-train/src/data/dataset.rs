//! A data set ready for training: both splits, the class count and the normalisation.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::augment::{Augment, Draw};
use super::{DataError, Split, cifar, folder, mnist};

/// The data sets pillar reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// MNIST in IDX files; without a directory, the 10,000 digits embedded in pillar.
    Mnist,
    /// CIFAR-10, binary or pickled (torchvision's) version.
    Cifar10,
    /// CIFAR-100, binary or pickled (torchvision's) version.
    Cifar100,
    /// An ImageNet-style folder tree (`train/<class>/`, `val/<class>/`).
    Imagenet,
}

impl DatasetKind {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::Imagenet => "imagenet",
        }
    }

    /// Per-channel mean and standard deviation of its pixels scaled to [0, 1]: what training
    /// subtracted and divided by, so what a client must apply to its own images.
    pub fn normalisation(self) -> (Vec<f32>, Vec<f32>) {
        match self {
            DatasetKind::Mnist => (vec![mnist::MEAN], vec![mnist::STD]),
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => {
                (cifar::MEAN.to_vec(), cifar::STD.to_vec())
            }
            DatasetKind::Imagenet => (folder::MEAN.to_vec(), folder::STD.to_vec()),
        }
    }

    /// The data set whose images have shape `[C, H, W]`, when only one has it: how a client
    /// that knows only a model's input shape picks the normalisation.
    pub fn for_shape(dims: &[usize]) -> Option<DatasetKind> {
        match dims {
            [1, 28, 28] => Some(DatasetKind::Mnist),
            [3, 32, 32] => Some(DatasetKind::Cifar10),
            [3, 224, 224] => Some(DatasetKind::Imagenet),
            _ => None,
        }
    }

    /// The classes' names, where the data set fixes them (an image folder's come from its
    /// directory names).
    pub fn class_names(self) -> Option<&'static [&'static str]> {
        match self {
            DatasetKind::Mnist => Some(&["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]),
            DatasetKind::Cifar10 => Some(&[
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ]),
            DatasetKind::Cifar100 | DatasetKind::Imagenet => None,
        }
    }

    /// The paper's augmentation for this data set: crop with padding 4 and flips for the
    /// natural-image sets, none for digits (a flipped digit is another digit).
    pub fn default_augment(self) -> Augment {
        match self {
            DatasetKind::Mnist => Augment::NONE,
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => Augment { pad: 4, flip: true },
            DatasetKind::Imagenet => Augment { pad: 0, flip: true },
        }
    }
}

impl std::str::FromStr for DatasetKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "mnist" => Ok(DatasetKind::Mnist),
            "cifar10" => Ok(DatasetKind::Cifar10),
            "cifar100" => Ok(DatasetKind::Cifar100),
            "imagenet" => Ok(DatasetKind::Imagenet),
            _ => Err(format!(
                "unknown data set {s:?}; expected mnist, cifar10, cifar100 or imagenet"
            )),
        }
    }
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Both splits of a data set and how to normalise its pixels.
#[derive(Debug, Clone)]
pub struct DataSet {
    /// Which data set.
    pub kind: DatasetKind,
    /// Training examples (the validation split is carved out of these by the trainer).
    pub train: Split,
    /// Test examples.
    pub test: Split,
    /// Number of classes.
    pub classes: usize,
    /// Per-channel mean of pixels scaled to [0, 1].
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
}

impl DataSet {
    /// Loads `kind` from `dir`; MNIST without a directory is the embedded set.
    pub fn load(kind: DatasetKind, dir: Option<&Path>) -> Result<Self, DataError> {
        let need_dir = || {
            dir.ok_or_else(|| DataError::Folder {
                path: Default::default(),
                detail: format!(
                    "{kind} is not embedded: pass the directory that holds its files (--data DIR)"
                ),
            })
        };
        let (train, test, classes) = match kind {
            DatasetKind::Mnist => {
                let m = match dir {
                    Some(dir) => mnist::Mnist::load(dir)?,
                    None => mnist::Mnist::embedded()?,
                };
                (m.train, m.test, mnist::CLASSES)
            }
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => {
                let variant = if kind == DatasetKind::Cifar10 {
                    cifar::Variant::Ten
                } else {
                    cifar::Variant::Hundred
                };
                let (train, test) = cifar::load(need_dir()?, variant)?;
                (train, test, variant.classes())
            }
            DatasetKind::Imagenet => {
                // Both splits are file lists, decoded batch by batch (see `folder`).
                let root = need_dir()?;
                let classes = folder::classes(root)?;
                let geometry = folder::Geometry::default();
                let train = folder::load_split(root, "train", &classes, geometry, None)?;
                let test = folder::load_split(root, "val", &classes, geometry, None)?;
                (train, test, classes.len())
            }
        };
        let (mean, std) = kind.normalisation();
        Ok(DataSet {
            kind,
            train,
            test,
            classes,
            mean,
            std,
        })
    }

    /// `[C, H, W]` of one image.
    pub fn dims(&self) -> [usize; 3] {
        self.train.dims()
    }

    /// Normalised pixels of `indices` from `split`, `[len, C, H, W]` flattened, augmented when
    /// `augment` is given.
    ///
    /// The images are fetched (for image folders: decoded from their files), augmented and
    /// normalised in parallel on rayon's pool, since decoding dominates a batch of large
    /// images. The augmentation's random choices are all drawn from `rng` first, in index
    /// order, so the result depends on the seed only, not on the number of threads, and equals
    /// applying [`Augment::apply`] to one image after the other. An image that cannot be read
    /// is an error naming its file.
    pub fn normalise(
        &self,
        split: &Split,
        indices: &[usize],
        augment: Option<(Augment, &mut rand_chacha::ChaCha12Rng)>,
    ) -> Result<Vec<f32>, DataError> {
        let [c, h, w] = split.dims();
        let size = c * h * w;
        let (augment, draws): (Augment, Vec<Draw>) = match augment {
            Some((a, rng)) if !a.is_none() => (a, indices.iter().map(|_| a.draw(rng)).collect()),
            _ => (Augment::NONE, vec![Draw::default(); indices.len()]),
        };
        let mut out = vec![0.0f32; indices.len() * size];
        out.par_chunks_mut(size.max(1))
            .zip(indices.par_iter().zip(draws.par_iter()))
            .try_for_each_init(
                || (Vec::with_capacity(size), Vec::new()),
                |(image, scratch), (dst, (&i, &draw))| {
                    image.clear();
                    image.extend_from_slice(&split.image(i)?);
                    augment.apply_drawn(image, [c, h, w], draw, scratch);
                    normalise_image(&self.mean, &self.std, image, h * w, dst);
                    Ok(())
                },
            )?;
        Ok(out)
    }
}

impl DatasetKind {
    /// Image files (PNG or JPEG) as a model trained on this data set takes them,
    /// `[len, C, H, W]` flattened: decoded, resized and centre-cropped to `dims` (ImageNet's
    /// evaluation resizes the shorter side to 232 before the 224 crop), inverted if asked
    /// (dark digits on a light background, where MNIST is light on dark), and normalised as
    /// the training images were. A file that cannot be read is an error naming it.
    pub fn prepare_images(
        self,
        paths: &[PathBuf],
        dims: [usize; 3],
        invert: bool,
    ) -> Result<Vec<f32>, DataError> {
        let [c, h, w] = dims;
        let (mean, std) = self.normalisation();
        let resize = if self == DatasetKind::Imagenet {
            (h * 232).div_ceil(224)
        } else {
            h.min(w)
        };
        let mut pixels = vec![0.0f32; paths.len() * c * h * w];
        for (path, dst) in paths.iter().zip(pixels.chunks_mut((c * h * w).max(1))) {
            let mut raw =
                super::folder::decode_sized(path, dims, u32::try_from(resize).unwrap_or(u32::MAX))?;
            if invert {
                raw.iter_mut().for_each(|p| *p = 255 - *p);
            }
            normalise_image(&mean, &std, &raw, h * w, dst);
        }
        Ok(pixels)
    }
}

/// Writes `(p / 255 - mean) / std` of every raw pixel of one `[C, H, W]` image to `dst`, with
/// channel `c`'s `mean[c]` and `std[c]` (repeated if shorter).
pub fn normalise_image(mean: &[f32], std: &[f32], image: &[u8], plane: usize, dst: &mut [f32]) {
    for (ch, (pixels, out)) in image
        .chunks_exact(plane.max(1))
        .zip(dst.chunks_exact_mut(plane.max(1)))
        .enumerate()
    {
        let m = mean.get(ch % mean.len().max(1)).copied().unwrap_or(0.0);
        let s = std.get(ch % std.len().max(1)).copied().unwrap_or(1.0);
        for (o, &p) in out.iter_mut().zip(pixels) {
            *o = (f32::from(p) / 255.0 - m) / s;
        }
    }
}
