//! Image classification data sets.

pub mod idx;
pub mod mnist;

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

/// One split of an image classification data set: `len` images of `rows x cols` grey pixels
/// (0-255) and their labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pixels: Vec<u8>,
    labels: Vec<u8>,
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

    /// `(rows, cols)` of every image.
    pub fn image_shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The pixels of example `index`, row-major, or `None` past the end.
    pub fn image(&self, index: usize) -> Option<&[u8]> {
        let size = self.rows * self.cols;
        self.pixels.get(index * size..(index + 1) * size)
    }

    /// The label of example `index`, or `None` past the end.
    pub fn label(&self, index: usize) -> Option<u8> {
        self.labels.get(index).copied()
    }

    /// All labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }
}
