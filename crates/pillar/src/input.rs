//! What `pillar infer --input` and `pillar eval --input` take: image files (PNG, JPEG),
//! decoded and normalised as the model's training images were, and NumPy `.npy` tensors, taken
//! as they are: the exact tensor a user checked in PyTorch (`numpy.save("x.npy", x.numpy())`),
//! already normalised, one input `[C, H, W]` or a batch `[N, C, H, W]`.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use pillar_train::data::{DatasetKind, npy};

/// Most bytes of input tensors one command reads (all files together): 1 GiB holds 1,780
/// ImageNet-sized inputs, far more than one request takes, and bounds what a `.npy` header
/// can make pillar allocate.
pub(crate) const MAX_INPUT_BYTES: usize = 1 << 30;

/// One input: its file, and its place in the file when the file holds a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Input {
    /// The file, as the user named it.
    pub(crate) file: String,
    /// Its index in the file's batch (0 for a file of one input).
    pub(crate) index: usize,
    /// Whether the file holds a batch (`[N, C, H, W]`), so that `index` names it.
    pub(crate) in_batch: bool,
}

impl Input {
    /// `x.png`, `x.npy`, or `x.npy[3]` for the fourth input of a batch.
    pub(crate) fn name(&self) -> String {
        if self.in_batch {
            format!("{}[{}]", self.file, self.index)
        } else {
            self.file.clone()
        }
    }
}

/// Inputs and their values, `[len, C, H, W]` flattened.
#[derive(Debug)]
pub(crate) struct Inputs {
    pub(crate) inputs: Vec<Input>,
    pub(crate) values: Vec<f32>,
}

/// Whether `path` is a `.npy` file: by its name, or by its first bytes.
fn is_npy(path: &Path) -> bool {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        return true;
    }
    let mut magic = [0u8; 6];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| npy::is_npy(&magic))
}

/// Reads `paths` as inputs of shape `dims`, in order. Images are normalised as `kind`'s
/// training images (and inverted if asked); without a `kind`, an image is refused (a `.npy`
/// needs none).
pub(crate) fn load(
    paths: &[PathBuf],
    dims: [usize; 3],
    kind: Option<DatasetKind>,
    invert: bool,
) -> Result<Inputs> {
    let size: usize = dims.iter().product();
    let budget = MAX_INPUT_BYTES / 4;
    let mut out = Inputs {
        inputs: Vec::new(),
        values: Vec::new(),
    };
    for path in paths {
        let file = path.display().to_string();
        let left = budget.saturating_sub(out.values.len());
        if is_npy(path) {
            // The error names the file.
            let array = npy::read(path, left)?;
            let n = match array.shape.as_slice() {
                s if s == dims => None,
                [n, rest @ ..] if rest == dims => Some(*n),
                s => bail!(
                    "{file} holds an array of shape {s:?}, but the model takes inputs of shape \
                     {dims:?}: save one input as {dims:?} or a batch as [N, {}, {}, {}]",
                    dims[0],
                    dims[1],
                    dims[2]
                ),
            };
            if n == Some(0) {
                bail!("{file} holds a batch of no input");
            }
            out.inputs.extend((0..n.unwrap_or(1)).map(|index| Input {
                file: file.clone(),
                index,
                in_batch: n.is_some(),
            }));
            out.values.extend_from_slice(&array.data);
        } else {
            let Some(kind) = kind else {
                bail!(
                    "{file}: an image must be normalised as the model's training images were, \
                     and the model's input {dims:?} is no data set's that pillar knows: pass \
                     --dataset, or send the tensor itself as a .npy file"
                );
            };
            if size > left {
                bail!("{file}: the inputs take more than {MAX_INPUT_BYTES} bytes in all");
            }
            let values = kind.prepare_images(std::slice::from_ref(path), dims, invert)?;
            out.values.extend_from_slice(&values);
            out.inputs.push(Input {
                file,
                index: 0,
                in_batch: false,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn npy_inputs_and_images_in_order_with_their_places() {
        let dir = tempfile::tempdir().unwrap();
        let one: Vec<f32> = (0..4).map(|i| i as f32).collect();
        let two: Vec<f32> = (0..8).map(|i| -(i as f32)).collect();
        let chw = write(dir.path(), "one.npy", &npy::to_bytes(&[1, 2, 2], &one));
        // A .npy by its content even without the extension.
        let nchw = write(dir.path(), "two.bin", &npy::to_bytes(&[2, 1, 2, 2], &two));
        let png = dir.path().join("grey.png");
        image::GrayImage::from_raw(2, 2, vec![0, 255, 255, 0])
            .unwrap()
            .save(&png)
            .unwrap();
        let got = load(
            &[chw.clone(), nchw.clone(), png.clone()],
            [1, 2, 2],
            Some(DatasetKind::Mnist),
            false,
        )
        .unwrap();
        let names: Vec<String> = got.inputs.iter().map(Input::name).collect();
        let two_name = nchw.display().to_string();
        assert_eq!(
            names,
            [
                chw.display().to_string(),
                format!("{two_name}[0]"),
                format!("{two_name}[1]"),
                png.display().to_string()
            ]
        );
        assert_eq!(got.inputs[2].index, 1);
        assert_eq!(&got.values[..12], &[one, two].concat()[..]);
        let image = DatasetKind::Mnist
            .prepare_images(&[png], [1, 2, 2], false)
            .unwrap();
        assert_eq!(&got.values[12..], &image[..]);
        // A .npy needs no data set; an image does.
        assert!(load(std::slice::from_ref(&chw), [1, 2, 2], None, false).is_ok());
        let e = load(&[dir.path().join("grey.png")], [1, 2, 2], None, false).unwrap_err();
        assert!(format!("{e:#}").contains("pass --dataset"), "{e:#}");
    }

    #[test]
    fn a_wrong_shape_names_both_shapes_and_budgets_hold() {
        let dir = tempfile::tempdir().unwrap();
        let wrong = write(dir.path(), "x.npy", &npy::to_bytes(&[3, 2, 2], &[0.0; 12]));
        let e = format!("{:#}", load(&[wrong], [1, 2, 2], None, false).unwrap_err());
        assert!(
            e.contains("x.npy holds an array of shape [3, 2, 2]")
                && e.contains("inputs of shape [1, 2, 2]")
                && e.contains("[N, 1, 2, 2]"),
            "{e}"
        );
        let empty = write(dir.path(), "e.npy", &npy::to_bytes(&[0, 1, 2, 2], &[]));
        let e = format!("{:#}", load(&[empty], [1, 2, 2], None, false).unwrap_err());
        assert!(e.contains("no input"), "{e}");
        // A header announcing more than the budget is refused before its data is read.
        let mut huge = npy::to_bytes(&[(1 << 20) + 1, 1, 16, 16], &[]);
        huge.extend_from_slice(&[0; 64]);
        let huge = write(dir.path(), "huge.npy", &huge);
        let e = format!("{:#}", load(&[huge], [1, 16, 16], None, false).unwrap_err());
        assert!(e.contains("more than the 268435456 values"), "{e}");
        let garbage = write(dir.path(), "g.npy", b"not numpy");
        let e = format!(
            "{:#}",
            load(&[garbage], [1, 2, 2], None, false).unwrap_err()
        );
        assert!(e.contains("g.npy: not a NumPy .npy file"), "{e}");
    }
}
