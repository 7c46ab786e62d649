//! MNIST: 28x28 grey handwritten digits, ten classes, in IDX files.
//!
//! [`Mnist::embedded`] is pillar's default data set: 10,000 real MNIST digits (8,004 for
//! training, 1,996 for testing, stratified by class) compiled into the binary from
//! `data/mnist-10k/` (provenance and licence in its README). [`Mnist::load`] reads the full
//! data set, or any other in the same format, from a directory.

use std::path::Path;

use super::idx::{self, IdxArray};
use super::{DataError, Split};

/// Number of classes (the digits 0-9).
pub const CLASSES: usize = 10;

/// Mean pixel value of MNIST (on the 0-1 scale), the usual normalisation constant.
pub const MEAN: f32 = 0.1307;
/// Standard deviation of MNIST pixels (on the 0-1 scale).
pub const STD: f32 = 0.3081;

/// The file names of the four parts, as distributed.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

macro_rules! embedded_file {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/mnist-10k/",
            $name,
            ".gz"
        ))
    };
}

const EMBEDDED: [&[u8]; 4] = [
    embedded_file!("train-images-idx3-ubyte"),
    embedded_file!("train-labels-idx1-ubyte"),
    embedded_file!("t10k-images-idx3-ubyte"),
    embedded_file!("t10k-labels-idx1-ubyte"),
];

/// MNIST's training and test splits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mnist {
    /// Training examples.
    pub train: Split,
    /// Test examples.
    pub test: Split,
}

impl Mnist {
    /// The 10,000 digits shipped inside pillar.
    pub fn embedded() -> Result<Self, DataError> {
        let names = FILES.map(|name| format!("embedded {name}.gz"));
        Self::from_parts(std::array::from_fn(|i| (EMBEDDED[i], names[i].as_str())))
    }

    /// Reads the four files of [`FILES`] from `dir`, each plain or gzipped (`.gz`).
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        let read = |name: &str| super::read_file(dir, name, true);
        let files = [
            read(FILES[0])?,
            read(FILES[1])?,
            read(FILES[2])?,
            read(FILES[3])?,
        ];
        Self::from_parts(std::array::from_fn(|i| {
            (files[i].0.as_slice(), files[i].1.as_str())
        }))
    }

    /// Parses the four files, in the order of [`FILES`], from memory.
    pub fn from_bytes(files: [&[u8]; 4]) -> Result<Self, DataError> {
        Self::from_parts(std::array::from_fn(|i| (files[i], FILES[i])))
    }

    /// Parses `(bytes, name for errors)` of the four files.
    fn from_parts(files: [(&[u8], &str); 4]) -> Result<Self, DataError> {
        let [train_images, train_labels, test_images, test_labels] = files;
        Ok(Mnist {
            train: split(train_images, train_labels)?,
            test: split(test_images, test_labels)?,
        })
    }
}

fn split(
    (image_bytes, images_name): (&[u8], &str),
    (label_bytes, labels_name): (&[u8], &str),
) -> Result<Split, DataError> {
    let IdxArray { dims, data: pixels } = idx::parse(
        &idx::decompress(image_bytes, images_name)?,
        3,
        images_name,
        "IDX images: unsigned bytes, 3 dimensions",
    )?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 {
        return Err(DataError::BadShape {
            name: images_name.to_string(),
            rows,
            cols,
        });
    }
    let IdxArray { dims, data: labels } = idx::parse(
        &idx::decompress(label_bytes, labels_name)?,
        1,
        labels_name,
        "IDX labels: unsigned bytes, 1 dimension",
    )?;
    if dims[0] != count {
        return Err(DataError::CountMismatch {
            images_name: images_name.to_string(),
            images: count,
            labels_name: labels_name.to_string(),
            labels: dims[0],
        });
    }
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= CLASSES)
    {
        return Err(DataError::BadLabel {
            name: labels_name.to_string(),
            index,
            label,
            classes: CLASSES,
        });
    }
    Ok(Split::new(
        pixels,
        labels.into_iter().map(u16::from).collect(),
        [1, rows, cols],
    ))
}
