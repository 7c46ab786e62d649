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

/// Widest or tallest image decoded, in pixels: far beyond any photograph a network is given,
/// and it bounds the strip a tiny file can describe (a 4,000,000 x 1 PNG is 4 KB).
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Largest image decoded, and largest image the resize makes, in bytes at 4 per pixel (RGBA,
/// the widest the decoder produces): 256 MiB, checked before either is allocated.
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// Refuses a `width x height` image beyond [`MAX_IMAGE_SIDE`] or [`MAX_IMAGE_BYTES`].
fn check_image_size(path: &Path, width: u32, height: u32, stage: &str) -> Result<(), DataError> {
    let bytes = u64::from(width) * u64::from(height) * 4;
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE || bytes > MAX_IMAGE_BYTES {
        return Err(DataError::ImageTooLarge {
            path: path.to_path_buf(),
            width,
            height,
            stage: stage.to_string(),
        });
    }
    Ok(())
}

fn open_image(
    path: &Path,
) -> Result<image::ImageReader<std::io::BufReader<std::fs::File>>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    image::ImageReader::open(path)
        .map_err(io)?
        .with_guessed_format()
        .map_err(io)
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
    let (iw, ih) = open_image(path)?
        .into_dimensions()
        .map_err(|e| bad(format!("cannot decode: {e}")))?;
    check_image_size(path, iw, ih, "")?;
    let (iw, ih) = (iw.max(1), ih.max(1));
    let scale = f64::from(resize.max(1)) / f64::from(iw.min(ih));
    let (nw, nh) = (
        ((f64::from(iw) * scale).round().min(f64::from(u32::MAX)) as u32).max(cw),
        ((f64::from(ih) * scale).round().min(f64::from(u32::MAX)) as u32).max(ch),
    );
    // A thin strip resized to cover the crop grows by the scale along its length.
    check_image_size(path, nw, nh, ", resized to cover the crop,")?;
    let mut reader = open_image(path)?;
    // The header was checked above; the limits hold if the file changed since.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_BYTES);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| bad(format!("cannot decode: {e}")))?;
    if (img.width(), img.height()) != (iw, ih) {
        return Err(bad("changed while it was read".into()));
    }
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
