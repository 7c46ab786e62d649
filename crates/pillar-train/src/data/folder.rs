//! ImageNet-style folders: `root/train/<class>/*.jpg` and `root/val/<class>/*.jpg`, class
//! indices in sorted folder-name order (as torchvision's `ImageFolder`).
//!
//! Loading a split only lists its files: ImageNet's 1.28 million training images, decoded to
//! 224x224 bytes, would need 193 GB of memory. Each image is decoded when a batch needs it
//! ([`Split::image`], in parallel in [`super::DataSet::normalise`]), resized so the shorter
//! side is `resize` and centre-cropped to `crop` (ImageNet evaluation: 232 and 224). A file
//! that is unreadable or corrupt is therefore reported, by name, when its batch is assembled.
//! [`Split::into_memory`] decodes a small folder once instead.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use super::{DataError, Split};

/// Per-channel mean (FACTS.md section 2).
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// Per-channel standard deviation.
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// How images become tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Shorter side after resizing.
    pub resize: u32,
    /// Side of the centre crop.
    pub crop: u32,
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry {
            resize: 232,
            crop: 224,
        }
    }
}

/// The class folder names of `root/train`, sorted.
pub fn classes(root: &Path) -> Result<Vec<String>, DataError> {
    let dir = root.join("train");
    let mut names = Vec::new();
    for entry in read_dir(&dir)? {
        if entry.is_dir()
            && let Some(name) = entry.file_name().and_then(|n| n.to_str())
        {
            names.push(name.to_string());
        }
    }
    names.sort();
    if names.is_empty() {
        return Err(DataError::Folder {
            path: dir,
            detail: "no class folders".into(),
        });
    }
    Ok(names)
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DataError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        paths.push(entry.path());
    }
    paths.sort();
    Ok(paths)
}

/// Lists `root/<split>` (`train` or `val`), at most `limit` images per class (the first in
/// file-name order), as a lazy split: no image is opened yet.
pub fn load_split(
    root: &Path,
    split: &str,
    classes: &[String],
    geometry: Geometry,
    limit: Option<usize>,
) -> Result<Split, DataError> {
    if geometry.crop == 0 {
        return Err(DataError::Folder {
            path: root.join(split),
            detail: "a crop of 0x0 pixels".into(),
        });
    }
    let mut paths = Vec::new();
    let mut labels = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let dir = root.join(split).join(class);
        let files: Vec<PathBuf> = read_dir(&dir)?
            .into_iter()
            .filter(|p| p.is_file())
            .collect();
        for path in files.into_iter().take(limit.unwrap_or(usize::MAX)) {
            paths.push(path);
            labels.push(u16::try_from(label).map_err(|_| DataError::Folder {
                path: root.to_path_buf(),
                detail: "more than 65536 classes".into(),
            })?);
        }
    }
    if labels.is_empty() {
        return Err(DataError::Folder {
            path: root.join(split),
            detail: "no images".into(),
        });
    }
    Ok(Split::from_files(paths, labels, geometry))
}

/// One image, resized and centre-cropped, channel-major RGB bytes (`3 x crop x crop`).
/// Errors name the file: [`DataError::Io`] when it cannot be opened, [`DataError::Folder`]
/// when it does not decode.
pub fn decode(path: &Path, geometry: Geometry) -> Result<Vec<u8>, DataError> {
    let side = geometry.crop as usize;
    decode_sized(path, [3, side, side], geometry.resize)
}

/// One image as channel-major bytes of `[c, h, w]` (`c` 1: luma, 3: RGB): resized so that its
/// shorter side is `resize` (and it covers `h x w`), then centre-cropped to `h x w`.
pub fn decode_sized(path: &Path, [c, h, w]: [usize; 3], resize: u32) -> Result<Vec<u8>, DataError> {
    let bad = |detail: String| DataError::Folder {
        path: path.to_path_buf(),
        detail,
    };
    let (Ok(ch), Ok(cw)) = (u32::try_from(h), u32::try_from(w)) else {
        return Err(bad(format!("{h}x{w} is too large an image")));
    };
    if (c != 1 && c != 3) || ch == 0 || cw == 0 {
        return Err(bad(format!(
            "cannot make a [{c}, {h}, {w}] image: 1 (grey) or 3 (RGB) channels"
        )));
    }
    let reader = image::ImageReader::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = reader
        .with_guessed_format()
        .map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let img = reader
        .decode()
        .map_err(|e| bad(format!("cannot decode: {e}")))?;
    let (iw, ih) = (img.width().max(1), img.height().max(1));
    let scale = f64::from(resize.max(1)) / f64::from(iw.min(ih));
    let (nw, nh) = (
        ((f64::from(iw) * scale).round() as u32).max(cw),
        ((f64::from(ih) * scale).round() as u32).max(ch),
    );
    let resized = img.resize_exact(nw, nh, FilterType::Triangle);
    let (x0, y0) = ((nw - cw) / 2, (nh - ch) / 2);
    let mut out = vec![0u8; c * h * w];
    let plane = h * w;
    let mut put = |x: usize, y: usize, channel: usize, v: u8| out[channel * plane + y * w + x] = v;
    if c == 1 {
        let grey = resized.to_luma8();
        for y in 0..h {
            for x in 0..w {
                put(x, y, 0, grey.get_pixel(x0 + x as u32, y0 + y as u32)[0]);
            }
        }
    } else {
        let rgb = resized.to_rgb8();
        for y in 0..h {
            for x in 0..w {
                let p = rgb.get_pixel(x0 + x as u32, y0 + y as u32);
                for (channel, &v) in p.0.iter().enumerate() {
                    put(x, y, channel, v);
                }
            }
        }
    }
    Ok(out)
}
