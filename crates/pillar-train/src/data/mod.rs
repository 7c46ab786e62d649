//! Image classification data sets.

pub mod augment;
pub mod cifar;
pub mod dataset;
pub mod folder;
pub mod idx;
pub mod mnist;

pub use dataset::{DataSet, DatasetKind};

use std::path::PathBuf;

/// Why a data set could not be read. Every variant names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// None of the accepted file names exist in the directory.
    #[error("{dir}: no {name} (also tried {name}.gz)")]
    Missing {
        /// Where we looked.
        dir: PathBuf,
        /// The expected file name.
        name: String,
    },
    /// The file starts like gzip but does not decompress.
    #[error("{name}: corrupt gzip stream: {source}")]
    Gzip {
        /// The file.
        name: String,
        /// The decoder's complaint.
        source: std::io::Error,
    },
    /// Decompressing would exceed the size limit.
    #[error("{name}: decompresses to more than {limit} bytes")]
    TooLarge {
        /// The file.
        name: String,
        /// The limit.
        limit: u64,
    },
    /// The IDX magic number is not the one this file must have.
    #[error("{name}: magic number {found:#010x}, expected {expected:#010x} ({what})")]
    BadMagic {
        /// The file.
        name: String,
        /// What was read.
        found: u32,
        /// What this kind of file must start with.
        expected: u32,
        /// What the expected number means.
        what: &'static str,
    },
    /// The file ends before the data its header announces.
    #[error("{name}: truncated: the header announces {expected} bytes, the file has {found}")]
    Truncated {
        /// The file.
        name: String,
        /// Bytes the header requires (header included).
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The file goes on after the data its header announces.
    #[error("{name}: {extra} unexpected bytes after the data the header announces")]
    TrailingBytes {
        /// The file.
        name: String,
        /// How many.
        extra: u64,
    },
    /// Images and labels disagree on how many examples there are.
    #[error("{images_name} holds {images} images but {labels_name} holds {labels} labels")]
    CountMismatch {
        /// Image file.
        images_name: String,
        /// Images in it.
        images: usize,
        /// Label file.
        labels_name: String,
        /// Labels in it.
        labels: usize,
    },
    /// A label outside the classes of the data set.
    #[error("{name}: label {label} at index {index} is not a class (0..{classes})")]
    BadLabel {
        /// The file.
        name: String,
        /// Which example.
        index: usize,
        /// Its label.
        label: u8,
        /// Number of classes.
        classes: usize,
    },
    /// A file whose size is not a whole number of records.
    #[error("{name}: {size} bytes is not a whole number of {record}-byte records")]
    BadRecordSize {
        /// The file.
        name: String,
        /// Its size.
        size: usize,
        /// Bytes per record.
        record: usize,
    },
    /// A folder data set with something unusable in it.
    #[error("{path}: {detail}")]
    Folder {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Images with a zero dimension.
    #[error("{name}: images of {rows}x{cols} pixels")]
    BadShape {
        /// The file.
        name: String,
        /// Rows per image.
        rows: usize,
        /// Columns per image.
        cols: usize,
    },
}

/// Reads `dir/name` (or `dir/name.gz` when `gz` allows it), returning the bytes and the path
/// for messages; a missing file names the directory and the expected name.
pub(crate) fn read_file(
    dir: &std::path::Path,
    name: &str,
    gz: bool,
) -> Result<(Vec<u8>, String), DataError> {
    let plain = dir.join(name);
    let packed = dir.join(format!("{name}.gz"));
    let path = if plain.is_file() {
        plain
    } else if gz && packed.is_file() {
        packed
    } else {
        return Err(DataError::Missing {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        });
    };
    let bytes = std::fs::read(&path).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    Ok((bytes, path.display().to_string()))
}

/// One split of an image classification data set: `len` images of `channels x rows x cols`
/// pixels (0-255, channel-major) and their labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pixels: Vec<u8>,
    labels: Vec<u16>,
    channels: usize,
    rows: usize,
    cols: usize,
}

impl Split {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split holds no example.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Builds a split; the caller has checked that `pixels` holds `labels.len()` images of
    /// `[channels, rows, cols]`.
    pub(crate) fn new(
        pixels: Vec<u8>,
        labels: Vec<u16>,
        [channels, rows, cols]: [usize; 3],
    ) -> Self {
        debug_assert_eq!(pixels.len(), labels.len() * channels * rows * cols);
        Split {
            pixels,
            labels,
            channels,
            rows,
            cols,
        }
    }

    /// `(rows, cols)` of every image.
    pub fn image_shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// `[channels, rows, cols]` of every image.
    pub fn dims(&self) -> [usize; 3] {
        [self.channels, self.rows, self.cols]
    }

    /// The pixels of example `index`, channel-major then row-major, or `None` past the end.
    pub fn image(&self, index: usize) -> Option<&[u8]> {
        let size = self.channels * self.rows * self.cols;
        self.pixels.get(index * size..(index + 1) * size)
    }

    /// The label of example `index`, or `None` past the end.
    pub fn label(&self, index: usize) -> Option<u16> {
        self.labels.get(index).copied()
    }

    /// All labels.
    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    /// The examples at `indices`, as a new split (validation hold-outs, `--limit`).
    pub fn subset(&self, indices: &[usize]) -> Split {
        let size = self.channels * self.rows * self.cols;
        let mut pixels = Vec::with_capacity(indices.len() * size);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(&self.pixels[i * size..(i + 1) * size]);
            labels.push(self.labels[i]);
        }
        Split::new(pixels, labels, self.dims())
    }
}
