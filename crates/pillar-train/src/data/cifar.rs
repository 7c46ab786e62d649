//! CIFAR-10 and CIFAR-100 in their binary distribution (`cifar-10-batches-bin/`,
//! `cifar-100-binary/`): fixed-size records of label byte(s) then 3x32x32 pixels.

use std::path::Path;

use super::{DataError, Split};

/// Pixels per image: 3 channels of 32x32, channel-major.
pub const IMAGE_BYTES: usize = 3 * 32 * 32;

/// Per-channel mean of the training set (FACTS.md section 2).
pub const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// Per-channel standard deviation used by the paper's code.
pub const STD: [f32; 3] = [0.2023, 0.1994, 0.2010];

/// Which of the two data sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// 10 classes; files `data_batch_1.bin`..`data_batch_5.bin`, `test_batch.bin`.
    Ten,
    /// 100 classes; files `train.bin`, `test.bin`, records `coarse, fine, pixels`.
    Hundred,
}

impl Variant {
    /// Number of classes.
    pub fn classes(self) -> usize {
        match self {
            Variant::Ten => 10,
            Variant::Hundred => 100,
        }
    }

    fn label_bytes(self) -> usize {
        match self {
            Variant::Ten => 1,
            Variant::Hundred => 2,
        }
    }

    /// The training and test file names.
    pub fn files(self) -> (Vec<&'static str>, &'static str) {
        match self {
            Variant::Ten => (
                vec![
                    "data_batch_1.bin",
                    "data_batch_2.bin",
                    "data_batch_3.bin",
                    "data_batch_4.bin",
                    "data_batch_5.bin",
                ],
                "test_batch.bin",
            ),
            Variant::Hundred => (vec!["train.bin"], "test.bin"),
        }
    }
}

/// Reads the training and test splits from `dir`.
pub fn load(dir: &Path, variant: Variant) -> Result<(Split, Split), DataError> {
    let (train_files, test_file) = variant.files();
    let mut train = Vec::new();
    for name in train_files {
        train.push(super::read_file(dir, name, false)?);
    }
    let test = super::read_file(dir, test_file, false)?;
    let train = parse_all(&train, variant)?;
    let test = parse_all(&[test], variant)?;
    Ok((train, test))
}

fn parse_all(files: &[(Vec<u8>, String)], variant: Variant) -> Result<Split, DataError> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (bytes, name) in files {
        parse(bytes, name, variant, &mut pixels, &mut labels)?;
    }
    Ok(Split::new(pixels, labels, [3, 32, 32]))
}

/// Appends the records of one file.
pub fn parse(
    bytes: &[u8],
    name: &str,
    variant: Variant,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u16>,
) -> Result<(), DataError> {
    let record = variant.label_bytes() + IMAGE_BYTES;
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(DataError::BadRecordSize {
            name: name.to_string(),
            size: bytes.len(),
            record,
        });
    }
    for (index, chunk) in bytes.chunks_exact(record).enumerate() {
        // CIFAR-100 records carry the coarse label first; the fine one is the class.
        let label = chunk[variant.label_bytes() - 1];
        if usize::from(label) >= variant.classes() {
            return Err(DataError::BadLabel {
                name: name.to_string(),
                index,
                label,
                classes: variant.classes(),
            });
        }
        labels.push(u16::from(label));
        pixels.extend_from_slice(&chunk[variant.label_bytes()..]);
    }
    Ok(())
}
