//! CIFAR binary files and image folders, on files the tests make; normalisation and
//! augmentation.
#![allow(clippy::unwrap_used)]

use pillar_train::data::augment::Augment;
use pillar_train::data::cifar::{self, Variant};
use pillar_train::data::{DataError, DataSet, DatasetKind, folder};
use rand::SeedableRng;

fn record(label_bytes: &[u8], fill: u8) -> Vec<u8> {
    let mut r = label_bytes.to_vec();
    r.extend(std::iter::repeat_n(fill, cifar::IMAGE_BYTES));
    r
}

#[test]
fn cifar10_batches_load_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = Variant::Ten.files();
    for (i, name) in train.iter().enumerate() {
        let bytes: Vec<u8> = [record(&[i as u8], 10 * i as u8), record(&[9], 1)].concat();
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    std::fs::write(dir.path().join(test), record(&[3], 200)).unwrap();
    let data = DataSet::load(DatasetKind::Cifar10, Some(dir.path())).unwrap();
    assert_eq!(
        (data.train.len(), data.test.len(), data.classes),
        (10, 1, 10)
    );
    assert_eq!(data.dims(), [3, 32, 32]);
    assert_eq!(data.train.label(2), Some(1));
    assert_eq!(data.train.image(2).unwrap()[0], 10);
    // Normalised with the paper's constants, channel by channel.
    let x = data.normalise(&data.test, &[0], None);
    let want = (200.0 / 255.0 - cifar::MEAN[1]) / cifar::STD[1];
    assert!((x[1024] - want).abs() < 1e-6);
}

#[test]
fn cifar100_uses_the_fine_label_and_bad_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.bin"), record(&[3, 77], 5)).unwrap();
    std::fs::write(dir.path().join("test.bin"), record(&[1, 99], 5)).unwrap();
    let data = DataSet::load(DatasetKind::Cifar100, Some(dir.path())).unwrap();
    assert_eq!((data.train.label(0), data.classes), (Some(77), 100));
    // A truncated file and a label out of range.
    std::fs::write(dir.path().join("test.bin"), vec![0u8; 100]).unwrap();
    let err = DataSet::load(DatasetKind::Cifar100, Some(dir.path())).unwrap_err();
    assert!(matches!(err, DataError::BadRecordSize { .. }), "{err}");
    std::fs::write(dir.path().join("test.bin"), record(&[1, 100], 5)).unwrap();
    let err = DataSet::load(DatasetKind::Cifar100, Some(dir.path())).unwrap_err();
    assert!(err.to_string().contains("label 100"), "{err}");
    // CIFAR needs a directory.
    let err = DataSet::load(DatasetKind::Cifar10, None).unwrap_err();
    assert!(err.to_string().contains("--data"), "{err}");
}

#[test]
fn image_folders_resize_and_crop() {
    let dir = tempfile::tempdir().unwrap();
    for split in ["train", "val"] {
        for (class, shade) in [("cat", 40u8), ("dog", 220u8)] {
            let d = dir.path().join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            let img = image::RgbImage::from_pixel(300, 240, image::Rgb([shade, shade / 2, 0]));
            img.save(d.join("a.png")).unwrap();
        }
    }
    let classes = folder::classes(dir.path()).unwrap();
    assert_eq!(classes, vec!["cat", "dog"]);
    let geometry = folder::Geometry {
        resize: 40,
        crop: 32,
    };
    let split = folder::load_split(dir.path(), "train", &classes, geometry, None).unwrap();
    assert_eq!((split.len(), split.dims()), (2, [3, 32, 32]));
    assert_eq!(split.label(1), Some(1));
    assert_eq!(split.image(1).unwrap()[0], 220);
    assert_eq!(split.image(1).unwrap()[32 * 32], 110);
    // An undecodable file is named.
    std::fs::write(dir.path().join("train/cat/b.jpg"), b"not an image").unwrap();
    let err = folder::load_split(dir.path(), "train", &classes, geometry, None).unwrap_err();
    assert!(err.to_string().contains("b.jpg"), "{err}");
}

#[test]
fn crop_shifts_and_flip_mirrors() {
    let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(3);
    let mut scratch = Vec::new();
    let original: Vec<u8> = (0..16).collect();
    let mut flipped = original.clone();
    Augment { pad: 0, flip: true }.apply(&mut flipped, [1, 4, 4], &mut rng, &mut scratch);
    let mirrored: Vec<u8> = original
        .chunks(4)
        .flat_map(|r| r.iter().rev().copied())
        .collect();
    assert!(flipped == original || flipped == mirrored);
    // Padding 1: every output pixel is either an input pixel or the zero padding, and the
    // multiset of non-zero pixels is a shifted window of the original.
    let mut cropped = original.clone();
    Augment {
        pad: 1,
        flip: false,
    }
    .apply(&mut cropped, [1, 4, 4], &mut rng, &mut scratch);
    assert!(cropped.iter().all(|&p| p == 0 || original.contains(&p)));
}
