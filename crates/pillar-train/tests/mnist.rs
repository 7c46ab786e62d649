//! The MNIST reader on the shipped files and on broken copies of them.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use pillar_train::data::mnist::{CLASSES, FILES, Mnist};
use pillar_train::data::{DataError, idx};

fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist-10k")
}

fn shipped_raw(index: usize) -> Vec<u8> {
    let gz = std::fs::read(shipped_dir().join(format!("{}.gz", FILES[index]))).unwrap();
    let mut raw = Vec::new();
    GzDecoder::new(gz.as_slice()).read_to_end(&mut raw).unwrap();
    raw
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A copy of the shipped data set in a temporary directory, uncompressed, with file `index`
/// replaced by `replacement`.
fn broken_copy(index: usize, replacement: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in FILES.iter().enumerate() {
        let bytes = if i == index {
            replacement.to_vec()
        } else {
            shipped_raw(i)
        };
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

/// The error of loading the shipped data set with file `index` replaced by `replacement`.
fn load_broken(index: usize, replacement: &[u8]) -> DataError {
    Mnist::load(broken_copy(index, replacement).path()).unwrap_err()
}

#[test]
fn embedded_data_is_the_shipped_data() {
    let m = Mnist::embedded().unwrap();
    assert_eq!(m.train.len(), 8004);
    assert_eq!(m.test.len(), 1996);
    assert_eq!(m.train.image_shape(), (28, 28));
    assert_eq!(m.test.image_shape(), (28, 28));
    assert_eq!(m.train.image(0).unwrap().len(), 784);
    let err = m.test.image(1996).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::NoExample {
                index: 1996,
                len: 1996
            }
        ),
        "{err}"
    );
    assert_eq!(Mnist::load(&shipped_dir()).unwrap(), m);
}

#[test]
fn classes_are_stratified_and_images_look_like_digits() {
    let m = Mnist::embedded().unwrap();
    for split in [&m.train, &m.test] {
        let mut counts = [0usize; CLASSES];
        split.labels().iter().for_each(|&l| counts[l as usize] += 1);
        for c in counts {
            let share = c as f64 / split.len() as f64;
            assert!((0.08..0.13).contains(&share), "{counts:?}");
        }
    }
    // Digits are dark backgrounds with bright strokes: mostly zeros, some 255s.
    let img = m.train.image(0).unwrap();
    let zeros = img.iter().filter(|&&p| p == 0).count();
    assert!(zeros > 400 && img.iter().any(|&p| p > 200), "{zeros}");
}

#[test]
fn reads_uncompressed_files() {
    let dir = broken_copy(usize::MAX, &[]);
    let m = Mnist::load(dir.path()).unwrap();
    assert_eq!(m, Mnist::embedded().unwrap());
}

#[test]
fn wrong_magic_number() {
    let mut labels = shipped_raw(1);
    labels[3] = 0x03; // the images' magic, in the labels file
    let err = load_broken(1, &labels);
    assert!(
        matches!(
            err,
            DataError::BadMagic {
                found: 2051,
                expected: 2049,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("train-labels-idx1-ubyte"), "{err}");

    let err = load_broken(0, b"not an idx file at all");
    assert!(matches!(err, DataError::BadMagic { .. }), "{err}");
}

#[test]
fn truncated_files() {
    let images = shipped_raw(2);
    let cut = &images[..images.len() - 100];
    let err = load_broken(2, cut);
    match &err {
        DataError::Truncated {
            expected,
            found,
            name,
        } => {
            assert_eq!(*expected, images.len() as u64);
            assert_eq!(*found, cut.len() as u64);
            assert!(name.contains("t10k-images"), "{err}");
        }
        other => panic!("{other}"),
    }
    // Cut inside the gzip stream rather than inside the IDX data.
    let gz = gzip(&images);
    let dir = broken_copy(usize::MAX, &[]);
    std::fs::remove_file(dir.path().join(FILES[2])).unwrap();
    std::fs::write(
        dir.path().join(format!("{}.gz", FILES[2])),
        &gz[..gz.len() / 2],
    )
    .unwrap();
    let err = Mnist::load(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err}");
}

#[test]
fn trailing_garbage() {
    let mut labels = shipped_raw(3);
    labels.extend_from_slice(&[0, 0, 0]);
    let err = load_broken(3, &labels);
    assert!(
        matches!(err, DataError::TrailingBytes { extra: 3, .. }),
        "{err}"
    );
}

#[test]
fn mismatched_image_and_label_counts() {
    let labels = idx::encode(&[8003], &shipped_raw(1)[8..8 + 8003]);
    let err = load_broken(1, &labels);
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                images: 8004,
                labels: 8003,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("8004 images but"), "{err}");
}

#[test]
fn labels_outside_the_classes() {
    let mut labels = shipped_raw(3);
    labels[8 + 17] = 10;
    let err = load_broken(3, &labels);
    assert!(
        matches!(
            err,
            DataError::BadLabel {
                index: 17,
                label: 10,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = Mnist::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("train-images-idx3-ubyte"), "{err}");
}

#[test]
fn zero_sized_images() {
    let images = idx::encode(&[1, 0, 28], &[]);
    let labels = idx::encode(&[1], &[3]);
    let test_images = shipped_raw(2);
    let test_labels = shipped_raw(3);
    let err = Mnist::from_bytes([&images, &labels, &test_images, &test_labels]).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::BadShape {
                rows: 0,
                cols: 28,
                ..
            }
        ),
        "{err}"
    );
}
