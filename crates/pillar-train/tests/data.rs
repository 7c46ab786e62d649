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
    let x = data.normalise(&data.test, &[0], None).unwrap();
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
    // Listing opens no image: an undecodable file is named when it is asked for.
    std::fs::write(dir.path().join("train/cat/b.jpg"), b"not an image").unwrap();
    let split = folder::load_split(dir.path(), "train", &classes, geometry, None).unwrap();
    assert_eq!(split.len(), 3);
    let err = split.image(1).unwrap_err();
    assert!(err.to_string().contains("b.jpg"), "{err}");
}

/// `root/{train,val}/{c0,c1,c2}/` with `per_class` images of different sizes and patterns.
fn pattern_folders(per_class: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for split in ["train", "val"] {
        for class in 0..3u32 {
            let d = dir.path().join(split).join(format!("c{class}"));
            std::fs::create_dir_all(&d).unwrap();
            for k in 0..per_class as u32 {
                let (w, h) = (50 + 13 * k + 7 * class, 40 + 5 * k);
                let img = image::RgbImage::from_fn(w, h, |x, y| {
                    image::Rgb([
                        (x * 5 + y * 3 + 40 * class) as u8,
                        (x * y + k * 17) as u8,
                        (255 - x * 2 - class * 60) as u8,
                    ])
                });
                img.save(d.join(format!("{k:02}.png"))).unwrap();
            }
        }
    }
    dir
}

const SMALL: folder::Geometry = folder::Geometry {
    resize: 20,
    crop: 16,
};

#[test]
fn lazy_folder_splits_decode_the_same_pixels_as_the_files() {
    let dir = pattern_folders(3);
    let classes = folder::classes(dir.path()).unwrap();
    let split = folder::load_split(dir.path(), "train", &classes, SMALL, None).unwrap();
    assert!(split.is_lazy());
    assert_eq!((split.len(), split.dims()), (9, [3, 16, 16]));
    assert_eq!(split.labels(), &[0, 0, 0, 1, 1, 1, 2, 2, 2]);
    let files = split.files().unwrap().to_vec();
    assert!(files[4].ends_with("c1/01.png"), "{files:?}");
    for (i, path) in files.iter().enumerate() {
        assert_eq!(
            *split.image(i).unwrap(),
            folder::decode(path, SMALL).unwrap()[..]
        );
    }
    let err = split.image(9).unwrap_err();
    assert!(
        matches!(err, DataError::NoExample { index: 9, len: 9 }),
        "{err}"
    );
    // `limit` keeps the first files of each class.
    let limited = folder::load_split(dir.path(), "val", &classes, SMALL, Some(2)).unwrap();
    assert_eq!(limited.labels(), &[0, 0, 1, 1, 2, 2]);
    // Decoded once into memory: the same pixels, no longer lazy.
    let memory = limited.clone().into_memory().unwrap();
    assert!(!memory.is_lazy() && memory.files().is_none());
    for i in 0..limited.len() {
        assert_eq!(memory.image(i).unwrap(), limited.image(i).unwrap());
    }
}

#[test]
fn a_subset_of_a_lazy_split_is_a_lazy_subset_of_its_files() {
    let dir = pattern_folders(2);
    let classes = folder::classes(dir.path()).unwrap();
    let split = folder::load_split(dir.path(), "train", &classes, SMALL, None).unwrap();
    let picked = [5, 0, 3, 3];
    let sub = split.subset(&picked);
    assert!(sub.is_lazy());
    assert_eq!((sub.len(), sub.dims()), (4, split.dims()));
    let all = split.files().unwrap();
    let want: Vec<_> = picked.iter().map(|&i| all[i].clone()).collect();
    assert_eq!(sub.files().unwrap(), &want[..]);
    for (j, &i) in picked.iter().enumerate() {
        assert_eq!(sub.label(j), split.label(i));
        assert_eq!(sub.image(j).unwrap(), split.image(i).unwrap());
    }
    // In-memory splits still subset their pixels.
    let memory = split.into_memory().unwrap();
    let sub_memory = memory.subset(&picked);
    assert!(!sub_memory.is_lazy());
    for j in 0..picked.len() {
        assert_eq!(sub_memory.image(j).unwrap(), sub.image(j).unwrap());
    }
}

#[test]
fn a_file_spoilt_after_listing_is_named_when_its_batch_is_assembled() {
    let dir = pattern_folders(2);
    let data = DataSet::load(DatasetKind::Imagenet, Some(dir.path())).unwrap();
    assert!(data.train.is_lazy() && data.test.is_lazy());
    assert_eq!((data.dims(), data.classes), ([3, 224, 224], 3));
    let all: Vec<usize> = (0..data.train.len()).collect();
    assert_eq!(
        data.normalise(&data.train, &all, None).unwrap().len(),
        6 * 3 * 224 * 224
    );
    // Corrupt: a decoding error naming the file, for the batch that holds it only.
    let corrupt = dir.path().join("train/c1/01.png");
    std::fs::write(&corrupt, b"\x89PNG but not really").unwrap();
    let err = data.normalise(&data.train, &all, None).unwrap_err();
    assert!(
        matches!(err, DataError::Folder { ref path, .. } if *path == corrupt),
        "{err}"
    );
    assert!(err.to_string().contains("c1/01.png"), "{err}");
    data.normalise(&data.train, &[0, 1, 2, 4, 5], None).unwrap();
    // Gone: an I/O error naming the file, also with augmentation.
    let gone = dir.path().join("train/c2/00.png");
    std::fs::remove_file(&gone).unwrap();
    let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(1);
    let augment = DatasetKind::Imagenet.default_augment();
    let err = data
        .normalise(&data.train, &[4], Some((augment, &mut rng)))
        .unwrap_err();
    assert!(
        matches!(err, DataError::Io { ref path, .. } if *path == gone),
        "{err}"
    );
    assert!(err.to_string().contains("c2/00.png"), "{err}");
}

/// What `normalise` must compute: each image augmented in index order from one generator.
fn normalise_one_by_one(
    data: &DataSet,
    indices: &[usize],
    augment: Augment,
    seed: u64,
) -> Vec<f32> {
    let split = &data.train;
    let [c, h, w] = split.dims();
    let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
    let mut scratch = Vec::new();
    let mut out = Vec::new();
    for &i in indices {
        let mut image = split.image(i).unwrap().into_owned();
        augment.apply(&mut image, [c, h, w], &mut rng, &mut scratch);
        for (k, &p) in image.iter().enumerate() {
            let ch = k / (h * w);
            out.push((f32::from(p) / 255.0 - data.mean[ch]) / data.std[ch]);
        }
    }
    out
}

#[test]
fn parallel_normalisation_does_not_depend_on_the_threads() {
    let dir = pattern_folders(4);
    let classes = folder::classes(dir.path()).unwrap();
    let train = folder::load_split(dir.path(), "train", &classes, SMALL, None).unwrap();
    let data = DataSet {
        kind: DatasetKind::Imagenet,
        test: train.clone(),
        train,
        classes: 3,
        mean: folder::MEAN.to_vec(),
        std: folder::STD.to_vec(),
    };
    let indices = [7, 0, 11, 3, 3, 9, 1, 5, 10, 2, 8, 6, 4];
    let augment = Augment { pad: 3, flip: true };
    let want = normalise_one_by_one(&data, &indices, augment, 42);
    let mut outputs = Vec::new();
    for threads in [1, 2, 5] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(42);
        let x = pool
            .install(|| data.normalise(&data.train, &indices, Some((augment, &mut rng))))
            .unwrap();
        assert_eq!(x, want, "{threads} threads");
        // The generator advanced as the sequential version's did.
        let mut reference = rand_chacha::ChaCha12Rng::seed_from_u64(42);
        for _ in &indices {
            augment.draw(&mut reference);
        }
        assert_eq!(rng, reference);
        outputs.push(x);
    }
    // The augmentation did something, and without it the pixels are the plain ones.
    let plain = data.normalise(&data.train, &indices, None).unwrap();
    assert_ne!(plain, want);
    assert_eq!(
        plain,
        normalise_one_by_one(&data, &indices, Augment::NONE, 0)
    );
    // In-memory splits (CIFAR, MNIST) go through the same path.
    let memory = DataSet {
        train: data.train.clone().into_memory().unwrap(),
        ..data.clone()
    };
    let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(42);
    let x = memory
        .normalise(&memory.train, &indices, Some((augment, &mut rng)))
        .unwrap();
    assert_eq!(x, want);
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

#[test]
fn single_images_decode_to_any_model_input() {
    let dir = tempfile::tempdir().unwrap();
    // A 40x20 RGB image: left half red, right half blue.
    let img = image::RgbImage::from_fn(40, 20, |x, _| {
        if x < 20 {
            image::Rgb([255, 0, 0])
        } else {
            image::Rgb([0, 0, 255])
        }
    });
    let png = dir.path().join("wide.png");
    img.save(&png).unwrap();
    // Shorter side to 10, so 20x10, centre-cropped to 10x10: columns 5..15 of the 20.
    let rgb = folder::decode_sized(&png, [3, 10, 10], 10).unwrap();
    assert_eq!(rgb.len(), 300);
    let (red, blue) = (&rgb[..100], &rgb[200..]);
    assert!(red[0] > 200 && blue[0] < 50, "left column is red");
    assert!(red[9] < 50 && blue[9] > 200, "right column is blue");
    // Grey: one channel of luma.
    let grey = folder::decode_sized(&png, [1, 10, 10], 10).unwrap();
    assert_eq!(grey.len(), 100);
    assert!(grey[0] > grey[9], "red is lighter than blue");
    // A model input that is no image, and a file that is none.
    assert!(folder::decode_sized(&png, [2, 10, 10], 10).is_err());
    let junk = dir.path().join("junk.jpg");
    std::fs::write(&junk, b"not a jpeg").unwrap();
    let e = folder::decode_sized(&junk, [1, 28, 28], 28).unwrap_err();
    assert!(e.to_string().contains("junk.jpg"), "{e}");
}

#[test]
fn data_sets_are_known_by_their_shape() {
    assert_eq!(
        DatasetKind::for_shape(&[1, 28, 28]),
        Some(DatasetKind::Mnist)
    );
    assert_eq!(
        DatasetKind::for_shape(&[3, 32, 32]),
        Some(DatasetKind::Cifar10)
    );
    assert_eq!(DatasetKind::for_shape(&[3, 64, 64]), None);
    assert_eq!(DatasetKind::Mnist.class_names().unwrap()[7], "7");
    assert_eq!(DatasetKind::Cifar10.class_names().unwrap()[3], "cat");
    let mnist = DataSet::load(DatasetKind::Mnist, None).unwrap();
    assert_eq!(
        DatasetKind::Mnist.normalisation(),
        (mnist.mean.clone(), mnist.std.clone())
    );
    // The data set's normalisation of an image is the free function's.
    let raw = mnist.test.image(0).unwrap().to_vec();
    let mut one = vec![0.0f32; 784];
    pillar_train::data::dataset::normalise_image(&mnist.mean, &mnist.std, &raw, 784, &mut one);
    assert_eq!(one, mnist.normalise(&mnist.test, &[0], None).unwrap());
}

/// A grey PNG of `width x height` black pixels: a few KB even for millions of pixels.
fn grey_png(path: &std::path::Path, width: u32, height: u32) {
    image::GrayImage::new(width, height).save(path).unwrap();
}

#[test]
fn a_thin_strip_of_millions_of_pixels_is_refused_before_it_is_resized() {
    let dir = tempfile::tempdir().unwrap();
    let strip = dir.path().join("strip.png");
    // Resized so that its short side covers 28 pixels, it would be 112,000,000 x 28 RGBA:
    // 12.5 GB.
    grey_png(&strip, 4_000_000, 1);
    assert!(std::fs::metadata(&strip).unwrap().len() < 64 * 1024);
    let err = DatasetKind::Mnist
        .prepare_images(&[strip], [1, 28, 28], false)
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, DataError::ImageTooLarge { .. })
            && message.contains("4000000x1")
            && message.contains(&folder::MAX_IMAGE_SIDE.to_string()),
        "{message}"
    );
    // Within the side limit, but 300 x 16,000 resized for ImageNet (short side 232) is
    // 232 x 12,373: allowed; 16,000 x 2 would become 1,856,000 x 232: refused.
    let wide = dir.path().join("wide.png");
    grey_png(&wide, 16_000, 2);
    let err = DatasetKind::Imagenet
        .prepare_images(&[wide], [3, 224, 224], false)
        .unwrap_err();
    assert!(
        err.to_string().contains("resized to cover the crop"),
        "{err}"
    );
    // An ordinary image still decodes.
    let fine = dir.path().join("fine.png");
    grey_png(&fine, 300, 16_000);
    let pixels = DatasetKind::Imagenet
        .prepare_images(&[fine], [3, 224, 224], false)
        .unwrap();
    assert_eq!(pixels.len(), 3 * 224 * 224);
}
