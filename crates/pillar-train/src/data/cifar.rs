//! CIFAR-10 and CIFAR-100 in their binary distribution (`cifar-10-batches-bin/`,
//! `cifar-100-binary/`: fixed-size records of label byte(s) then 3x32x32 pixels) or their
//! Python one, which torchvision downloads (`cifar-10-batches-py/`, `cifar-100-python/`:
//! pickled dicts of a numpy `uint8` array `[images, 3072]` and a label list). `--data` may name
//! the folder with the files or the folder above it.

use std::path::{Path, PathBuf};

use super::{DataError, Split, pickle};

/// The largest pickled file read (CIFAR-100's training split is 155 MB).
pub const MAX_PICKLE_BYTES: u64 = 256 << 20;

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

    /// The folder names of its binary and Python versions.
    pub fn folders(self) -> [&'static str; 2] {
        match self {
            Variant::Ten => ["cifar-10-batches-bin", "cifar-10-batches-py"],
            Variant::Hundred => ["cifar-100-binary", "cifar-100-python"],
        }
    }

    /// The key of the labels in a pickled batch (CIFAR-100 also has `coarse_labels`).
    fn label_key(self) -> &'static str {
        match self {
            Variant::Ten => "labels",
            Variant::Hundred => "fine_labels",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Variant::Ten => "CIFAR-10",
            Variant::Hundred => "CIFAR-100",
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

/// The two distributions of the data sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Fixed-size records, `*.bin`.
    Binary,
    /// Pickled dicts, file names without an extension.
    Pickled,
}

impl Layout {
    fn file(self, name: &str) -> String {
        match self {
            Layout::Binary => name.to_string(),
            Layout::Pickled => name.trim_end_matches(".bin").to_string(),
        }
    }
}

/// Where the files are: `dir` itself or its version folder, binary or pickled, found by the
/// test file; `None` when neither is there.
pub fn locate(dir: &Path, variant: Variant) -> Option<(PathBuf, Layout)> {
    let (_, test) = variant.files();
    let [bin, py] = variant.folders();
    [
        (dir.to_path_buf(), Layout::Binary),
        (dir.to_path_buf(), Layout::Pickled),
        (dir.join(bin), Layout::Binary),
        (dir.join(py), Layout::Pickled),
    ]
    .into_iter()
    .find(|(d, layout)| d.join(layout.file(test)).is_file())
}

/// Reads the training and test splits from `dir` (or the version folder in it).
pub fn load(dir: &Path, variant: Variant) -> Result<(Split, Split), DataError> {
    let Some((dir, layout)) = locate(dir, variant) else {
        let (train, test) = variant.files();
        let [bin, py] = variant.folders();
        return Err(DataError::Folder {
            path: dir.to_path_buf(),
            detail: format!(
                "no {} files: looked for {} and {test} (the binary version, {bin}) and for \
                 the same without .bin (the Python version, {py}, as torchvision downloads \
                 it), here and in {bin}/ and {py}/",
                variant.name(),
                train.join(", ")
            ),
        });
    };
    let (train_files, test_file) = variant.files();
    if layout == Layout::Pickled {
        let mut train = (Vec::new(), Vec::new());
        for name in &train_files {
            read_pickled(&dir.join(layout.file(name)), variant, &mut train)?;
        }
        let mut test = (Vec::new(), Vec::new());
        read_pickled(&dir.join(layout.file(test_file)), variant, &mut test)?;
        let split = |(pixels, labels)| Split::new(pixels, labels, [3, 32, 32]);
        return Ok((split(train), split(test)));
    }
    let mut train = Vec::new();
    for name in train_files {
        train.push(super::read_file(&dir, name, false)?);
    }
    let test = super::read_file(&dir, test_file, false)?;
    let train = parse_all(&train, variant)?;
    let test = parse_all(&[test], variant)?;
    Ok((train, test))
}

/// Appends the images and labels of one pickled batch to `into`.
pub fn read_pickled(
    path: &Path,
    variant: Variant,
    into: &mut (Vec<u8>, Vec<u16>),
) -> Result<(), DataError> {
    let name = path.display().to_string();
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_PICKLE_BYTES {
        return Err(DataError::Malformed {
            name,
            detail: format!(
                "{len} bytes, more than the {} MiB a CIFAR batch takes",
                MAX_PICKLE_BYTES >> 20
            ),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    parse_pickled(&bytes, &name, variant, into)
}

/// Appends the images and labels of one pickled batch held in memory, named `name` in errors.
pub fn parse_pickled(
    bytes: &[u8],
    name: &str,
    variant: Variant,
    (pixels, labels): &mut (Vec<u8>, Vec<u16>),
) -> Result<(), DataError> {
    let bad = |detail: String| DataError::Malformed {
        name: name.to_string(),
        detail,
    };
    let batch = pickle::parse(bytes).map_err(|e| bad(e.to_string()))?;
    let data = batch
        .get("data")
        .ok_or_else(|| bad(format!("{} without the key 'data'", batch.kind())))?;
    let ([rows, cols], raw) =
        pickle::uint8_matrix(data).map_err(|e| bad(format!("'data' is {e}")))?;
    if cols != IMAGE_BYTES {
        return Err(bad(format!(
            "'data' has {cols} values per image; CIFAR's have {IMAGE_BYTES} (3x32x32)"
        )));
    }
    let key = variant.label_key();
    let list = batch
        .get(key)
        .and_then(pickle::Value::sequence)
        .ok_or_else(|| bad(format!("no list of labels under the key '{key}'")))?;
    if list.len() != rows {
        return Err(DataError::CountMismatch {
            images_name: format!("{name} 'data'"),
            images: rows,
            labels_name: format!("'{key}'"),
            labels: list.len(),
        });
    }
    let start = labels.len();
    for (index, label) in list.iter().enumerate() {
        match label {
            pickle::Value::Int(l) if (0..variant.classes() as i64).contains(l) => {
                labels.push(*l as u16);
            }
            other => {
                labels.truncate(start);
                return Err(bad(format!(
                    "label {index} is {}, not a class (0..{})",
                    match other {
                        pickle::Value::Int(l) => l.to_string(),
                        v => v.kind(),
                    },
                    variant.classes()
                )));
            }
        }
    }
    pixels.extend_from_slice(&raw);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::pickle::write::{Item, batch};
    use super::*;

    /// `images` random images with labels below `classes`, as binary records of `variant`.
    fn records(variant: Variant, images: usize, seed: u64) -> (Vec<u8>, Vec<u16>, Vec<u8>) {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pixels: Vec<u8> = (0..images * IMAGE_BYTES).map(|_| next() as u8).collect();
        let labels: Vec<u16> = (0..images)
            .map(|_| (next() % variant.classes() as u64) as u16)
            .collect();
        let mut bin = Vec::new();
        for (image, &label) in pixels.chunks(IMAGE_BYTES).zip(&labels) {
            if variant == Variant::Hundred {
                bin.push((label / 5) as u8); // a coarse label
            }
            bin.push(label as u8);
            bin.extend_from_slice(image);
        }
        (pixels, labels, bin)
    }

    /// The same images written in both layouts, into `bin/` and `parent/<python folder>/`.
    fn both(variant: Variant, root: &Path) -> (PathBuf, PathBuf) {
        let bin = root.join("bin");
        let parent = root.join("parent");
        let py = parent.join(variant.folders()[1]);
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&py).unwrap();
        let (train, test) = variant.files();
        for (seed, name) in train.iter().chain([&test]).enumerate() {
            let (pixels, labels, records) = records(variant, 3 + seed, seed as u64);
            std::fs::write(bin.join(name), records).unwrap();
            let key = variant.label_key();
            let coarse: Vec<u16> = labels.iter().map(|l| l / 5).collect();
            let pickled = batch(&[
                ("batch_label", Item::Bytes(b"a batch")),
                (key, Item::Ints(&labels)),
                ("coarse_labels", Item::Ints(&coarse)),
                (
                    "data",
                    Item::Matrix {
                        rows: labels.len(),
                        data: &pixels,
                    },
                ),
                ("filenames", Item::Bytes(b"not a list here")),
            ]);
            std::fs::write(py.join(Layout::Pickled.file(name)), pickled).unwrap();
        }
        (bin, parent)
    }

    #[test]
    fn the_python_version_reads_as_the_binary_one() {
        for variant in [Variant::Ten, Variant::Hundred] {
            let dir = tempfile::tempdir().unwrap();
            let (bin, parent) = both(variant, dir.path());
            let from_bin = load(&bin, variant).unwrap();
            assert_eq!(locate(&parent, variant).unwrap().1, Layout::Pickled);
            let from_py = load(&parent, variant).unwrap();
            assert_eq!(from_py, from_bin, "{variant:?}");
            // The folder itself works as well as its parent.
            let py = parent.join(variant.folders()[1]);
            assert_eq!(load(&py, variant).unwrap(), from_bin);
            let n: usize = (0..variant.files().0.len()).map(|s| 3 + s).sum();
            assert_eq!(from_py.0.len(), n);
            // The binary version in a parent folder is found too.
            let up = dir.path().join("up");
            std::fs::create_dir(&up).unwrap();
            std::fs::rename(&bin, up.join(variant.folders()[0])).unwrap();
            assert_eq!(load(&up, variant).unwrap(), from_bin);
        }
    }

    #[test]
    fn a_folder_without_cifar_says_which_layouts_were_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(dir.path(), Variant::Ten).unwrap_err().to_string();
        for says in [
            "no CIFAR-10 files",
            "data_batch_1.bin",
            "test_batch.bin",
            "cifar-10-batches-bin",
            "cifar-10-batches-py",
            "torchvision",
        ] {
            assert!(e.contains(says), "{says:?} not in {e}");
        }
        let e = load(dir.path(), Variant::Hundred).unwrap_err().to_string();
        assert!(
            e.contains("cifar-100-python") && e.contains("train.bin"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_pickled_batch_names_its_file_and_what_is_wrong() {
        let variant = Variant::Ten;
        let dir = tempfile::tempdir().unwrap();
        let (_, parent) = both(variant, dir.path());
        let py = parent.join(variant.folders()[1]);
        let (pixels, labels, _) = records(variant, 2, 9);
        let cases: [(Vec<u8>, &str); 5] = [
            (b"\x80\x02}q\x01.".to_vec(), "without the key 'data'"),
            (
                batch(&[(
                    "data",
                    Item::Matrix {
                        rows: 2,
                        data: &pixels,
                    },
                )]),
                "no list of labels under the key 'labels'",
            ),
            (
                batch(&[
                    (
                        "data",
                        Item::Matrix {
                            rows: 2,
                            data: &pixels,
                        },
                    ),
                    ("labels", Item::Ints(&[1, 10])),
                ]),
                "label 1 is 10, not a class (0..10)",
            ),
            (
                batch(&[
                    (
                        "data",
                        Item::Matrix {
                            rows: 2,
                            data: &pixels,
                        },
                    ),
                    ("labels", Item::Ints(&labels[..1])),
                ]),
                "holds 2 images but 'labels' holds 1 labels",
            ),
            (
                batch(&[
                    (
                        "data",
                        Item::Matrix {
                            rows: 3,
                            data: &pixels,
                        },
                    ),
                    ("labels", Item::Ints(&[1, 2, 3])),
                ]),
                "2048 values per image",
            ),
        ];
        for (bytes, says) in cases {
            std::fs::write(py.join("data_batch_3"), bytes).unwrap();
            let e = load(&parent, variant).unwrap_err().to_string();
            assert!(
                e.contains("data_batch_3") && e.contains(says),
                "{says:?} not in {e}"
            );
        }
        std::fs::remove_file(py.join("data_batch_3")).unwrap();
        let e = load(&parent, variant).unwrap_err().to_string();
        assert!(
            e.contains("cannot read") && e.contains("data_batch_3"),
            "{e}"
        );
    }
}
