//! Tensor data stored beside the model: a round trip through a folder, and every way its
//! entries can lie, each refused with the tensor, the file and the problem named, before
//! anything is read or allocated.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use prost::Message;

use super::limits::Limits;
use super::proto::*;
use super::tests::{f32s, input, model, node};
use super::{from_bytes, from_bytes_in, from_bytes_within, load};
use crate::exec::float;
use crate::tensor::Tensor;

/// A fresh folder under the system's temporary one, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "pillar-onnx-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const WEIGHTS: [f32; 18] = [
    0.1, -0.2, 0.3, 0.05, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 0.25, -0.125, 0.0, 0.4, -0.3, 0.2, 0.15,
    -0.05,
];

/// Conv `w` (`[2, 1, 3, 3]`) and bias `b` on a `[1, 5, 5]` input; `w` as `external`.
fn conv(w: TensorProto) -> ModelProto {
    model(
        input(&[1, 5, 5]),
        vec![node("Conv", "conv", &["x", "w", "b"], "y", vec![])],
        vec![w, f32s("b", &[2], &[0.5, -0.5])],
        "y",
    )
}

/// `w` with its data in `location` at `offset`, `length` bytes (entries left out if `None`).
fn external_w(location: &str, offset: Option<&str>, length: Option<&str>) -> TensorProto {
    let entry = |k: &str, v: &str| StringStringEntryProto {
        key: Some(k.into()),
        value: Some(v.into()),
    };
    let mut entries = vec![entry("location", location)];
    entries.extend(offset.map(|o| entry("offset", o)));
    entries.extend(length.map(|l| entry("length", l)));
    TensorProto {
        raw_data: None,
        data_location: Some(1),
        external_data: entries,
        ..f32s("w", &[2, 1, 3, 3], &[])
    }
}

/// The weights' bytes after 16 bytes of something else, as exporters align them.
fn data_file() -> Vec<u8> {
    let mut bytes = vec![0xAB; 16];
    bytes.extend(WEIGHTS.iter().flat_map(|v| v.to_le_bytes()));
    bytes
}

/// Writes `m` as `m.onnx` and `data` as `m.onnx.data` in `dir`; returns the model's path.
fn write(dir: &Path, m: &ModelProto, data: &[u8]) -> PathBuf {
    let path = dir.join("m.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    std::fs::write(dir.join("m.onnx.data"), data).unwrap();
    path
}

#[track_caller]
fn refused(path: &Path, needles: &[&str]) {
    let err = load(path).unwrap_err().to_string();
    for n in needles {
        assert!(err.contains(n), "{err:?} should mention {n:?}");
    }
}

#[test]
fn weights_beside_the_model_load_and_compute_what_weights_inside_compute() {
    let dir = TempDir::new("round-trip");
    let outside = conv(external_w("m.onnx.data", Some("16"), Some("72")));
    let path = write(&dir.0, &outside, &data_file());
    let loaded = load(&path).unwrap();
    let inside = from_bytes(&conv(f32s("w", &[2, 1, 3, 3], &WEIGHTS)).encode_to_vec()).unwrap();
    assert_eq!(loaded, inside);
    let x = Tensor::new(
        vec![2, 1, 5, 5],
        (0..50).map(|i| (i as f32 * 0.37).sin()).collect(),
    )
    .unwrap();
    let (a, b) = (
        float::run(&loaded, &x).unwrap(),
        float::run(&inside, &x).unwrap(),
    );
    assert_eq!(a.data(), b.data());
    // A length left out takes what the dimensions need; `./` and a checksum are fine.
    let mut no_length = external_w("./m.onnx.data", Some("16"), None);
    no_length.external_data.push(StringStringEntryProto {
        key: Some("checksum".into()),
        value: Some("0123".into()),
    });
    let path = write(&dir.0, &conv(no_length), &data_file());
    assert_eq!(load(&path).unwrap(), inside);
    // from_bytes_in reads from the folder it is given.
    let bytes = outside.encode_to_vec();
    assert_eq!(from_bytes_in(&bytes, &dir.0).unwrap(), inside);
    // A Constant node's value stored outside too (onnx.save(..., convert_attribute=True)).
    let mut half = external_w("m.onnx.data", Some("0"), Some("4"));
    half.dims = vec![];
    half.name = None;
    let scaled = model(
        input(&[4]),
        vec![
            node(
                "Constant",
                "k",
                &[],
                "k",
                vec![super::attrs::tensor("value", half)],
            ),
            node("Mul", "m", &["x", "k"], "y", vec![]),
        ],
        vec![],
        "y",
    );
    let path = write(&dir.0, &scaled, &0.5f32.to_le_bytes());
    let g = load(&path).unwrap();
    let crate::Op::PolyAct(p) = &g.nodes[0].op else {
        panic!("{:?}", g.nodes[0].op)
    };
    assert_eq!(p.coefficients, [0.0, 0.5]);
    // from_bytes has no folder, and says what to use.
    let err = from_bytes(&bytes).unwrap_err().to_string();
    assert!(
        err.contains("tensor \"w\"") && err.contains("use onnx::load"),
        "{err}"
    );
}

#[test]
fn external_data_that_lies_about_its_bytes_is_refused_before_reading() {
    let dir = TempDir::new("lies");
    let data = data_file();
    let at = |offset: &str, length: Option<&str>| {
        write(
            &dir.0,
            &conv(external_w("m.onnx.data", Some(offset), length)),
            &data,
        )
    };
    // Past the end, by a little and by 2^63 (where offset + length would overflow).
    refused(
        &at("100", Some("72")),
        &[
            "\"conv\" (Conv)",
            "tensor \"w\"",
            "offset 100",
            "\"m.onnx.data\"",
            "past the end",
            "88 bytes",
        ],
    );
    refused(
        &at("17", Some("72")),
        &["72 bytes at offset 17 run past the end", "88 bytes"],
    );
    refused(
        &at("9223372036854775808", Some("72")),
        &["offset 9223372036854775808", "past the end"],
    );
    refused(&at("18446744073709551615", None), &["past the end"]);
    // A length the dimensions do not need, however large.
    refused(
        &at("16", Some("8")),
        &["tensor \"w\"", "gives it 8 bytes", "need 72"],
    );
    refused(
        &at("16", Some("9223372036854775807")),
        &["gives it 9223372036854775807 bytes", "need 72"],
    );
    // Numbers that are not byte counts.
    refused(
        &at("-1", None),
        &["\"offset\" = \"-1\" is not a byte count"],
    );
    refused(&at("1e3", None), &["not a byte count"]);
    refused(
        &at("99999999999999999999", None),
        &["99999999999999999999\" is not a byte count"],
    );
    // No data file at all.
    let path = write(&dir.0, &conv(external_w("gone.data", None, None)), &data);
    refused(&path, &["tensor \"w\"", "gone.data", "does not exist"]);
    // Entries missing, repeated, unknown; data both inside and outside.
    let mut w = external_w("m.onnx.data", Some("16"), None);
    w.external_data.remove(0);
    refused(&write(&dir.0, &conv(w), &data), &["no \"location\" entry"]);
    let mut w = external_w("m.onnx.data", Some("16"), None);
    w.external_data.push(w.external_data[1].clone());
    refused(
        &write(&dir.0, &conv(w), &data),
        &["entry \"offset\" is given twice"],
    );
    let mut w = external_w("m.onnx.data", Some("16"), None);
    w.external_data[1].key = Some("basepath".into());
    refused(
        &write(&dir.0, &conv(w), &data),
        &["entry \"basepath\" is not one pillar knows"],
    );
    let mut w = external_w("m.onnx.data", Some("16"), None);
    w.float_data = vec![0.0; 18];
    refused(&write(&dir.0, &conv(w), &data), &["both inside the model"]);
}

#[test]
fn external_data_outside_the_model_folder_is_refused() {
    let root = TempDir::new("escape");
    let dir = root.0.join("model");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(root.0.join("secret"), data_file()).unwrap();
    let secret = root.0.join("secret");
    for location in [
        "../secret".to_string(),
        "sub/../../secret".to_string(),
        secret.display().to_string(),
        String::new(),
    ] {
        let path = write(&dir, &conv(external_w(&location, Some("16"), None)), &[]);
        refused(
            &path,
            &[
                "tensor \"w\"",
                &format!("{location:?}"),
                "is not inside the model's folder",
            ],
        );
    }
    // A folder is not a file.
    std::fs::create_dir(dir.join("folder")).unwrap();
    let path = write(&dir, &conv(external_w("folder", None, None)), &[]);
    refused(&path, &["folder is not a regular file"]);
    #[cfg(unix)]
    {
        // A link to a file outside, and a link to a folder outside (the file then resolves
        // outside), each refused although the names stay inside.
        std::os::unix::fs::symlink(&secret, dir.join("link.data")).unwrap();
        let path = write(&dir, &conv(external_w("link.data", Some("16"), None)), &[]);
        refused(&path, &["link.data is a symbolic link"]);
        std::os::unix::fs::symlink(&root.0, dir.join("up")).unwrap();
        let path = write(&dir, &conv(external_w("up/secret", Some("16"), None)), &[]);
        refused(&path, &["\"up/secret\" is not inside the model's folder"]);
    }
}

#[test]
fn external_data_beyond_the_model_budget_is_refused_before_reading() {
    // 2^28 floats claim 1 GiB: refused by the total before any file is looked at.
    let mut w = external_w("nowhere.data", None, None);
    w.dims = vec![1 << 28];
    let m = conv(w);
    let err = from_bytes_within(&m.encode_to_vec(), Some(Path::new(".")), &Limits::DEFAULT)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bytes in the model and the external tensor data it names together"),
        "{err}"
    );
    // The same model's 72 bytes fit a small budget only if the model's own bytes leave room.
    let dir = TempDir::new("budget");
    let m = conv(external_w("m.onnx.data", Some("16"), None));
    write(&dir.0, &m, &data_file());
    let bytes = m.encode_to_vec();
    let with = |total: u64| {
        let limits = Limits {
            total_bytes: total,
            ..Limits::DEFAULT
        };
        from_bytes_within(&bytes, Some(&dir.0), &limits)
    };
    assert!(with(bytes.len() as u64 + 72).is_ok());
    let err = with(bytes.len() as u64 + 71).unwrap_err().to_string();
    assert!(err.contains("external tensor data"), "{err}");
    // Attribute values are counted too.
    let mut value = external_w("nowhere.data", None, None);
    value.dims = vec![1 << 28];
    let m = model(
        input(&[4]),
        vec![node(
            "Constant",
            "k",
            &[],
            "k",
            vec![super::attrs::tensor("value", value)],
        )],
        vec![],
        "k",
    );
    let err = from_bytes_within(&m.encode_to_vec(), Some(Path::new(".")), &Limits::DEFAULT)
        .unwrap_err()
        .to_string();
    assert!(err.contains("external tensor data it names"), "{err}");
    // Dimensions whose byte count overflows.
    let mut w = external_w("m.onnx.data", None, None);
    w.dims = vec![1 << 62, 8];
    let err = load(write(&dir.0, &conv(w), &data_file()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tensor \"w\"") && err.contains("overflow"),
        "{err}"
    );
}
