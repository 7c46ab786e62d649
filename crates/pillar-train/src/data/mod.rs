//! Image classification data sets.

pub mod augment;
pub mod cifar;
pub mod dataset;
pub mod folder;
pub mod idx;
pub mod mnist;
pub mod npy;
pub mod pickle;

pub use dataset::{DataSet, DatasetKind};

use std::borrow::Cow;
use std::path::PathBuf;

/// Why a data set could not be read. Every variant names the file it is about, except
/// [`DataError::NoExample`], which is about an index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// An image larger than pillar decodes, refused before its pixels are allocated.
    #[error(
        "{}: {width}x{height} pixels{stage} is beyond the limit of {} pixels a side and {} MiB decoded",
        path.display(),
        folder::MAX_IMAGE_SIDE,
        folder::MAX_IMAGE_BYTES >> 20
    )]
    ImageTooLarge {
        /// The file.
        path: PathBuf,
        /// Its width (or the resized width).
        width: u32,
        /// Its height (or the resized height).
        height: u32,
        /// Empty for the file's own size, or the stage that would make it this large.
        stage: String,
    },
    /// A folder data set with something unusable in it.
    #[error("{}{detail}", if path.as_os_str().is_empty() { String::new() } else { format!("{}: ", path.display()) })]
    Folder {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A file in a format pillar reads (`.npy`, a pickled CIFAR batch) whose content is not
    /// what the format or pillar allows.
    #[error("{name}: {detail}")]
    Malformed {
        /// The file.
        name: String,
        /// What is wrong, and what to change.
        detail: String,
    },
    /// An example index past the end of a split.
    #[error("no example {index}: the split holds {len}")]
    NoExample {
        /// The index asked for.
        index: usize,
        /// Examples in the split.
        len: usize,
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
///
/// The pixels are either held in memory (MNIST, CIFAR: at most a few hundred megabytes) or
/// decoded from image files whenever an image is asked for (image folders: all of ImageNet's
/// 1.28 million images at 224x224 would take 193 GB, so only the file list is kept and each
/// batch decodes its own images, in parallel, in [`DataSet::normalise`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    storage: Storage,
    labels: Vec<u16>,
    channels: usize,
    rows: usize,
    cols: usize,
}

/// Where a split's pixels come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Storage {
    /// All images, one after the other.
    Memory(Vec<u8>),
    /// One file per example, decoded on demand with [`folder::decode`].
    Files {
        paths: Vec<PathBuf>,
        geometry: folder::Geometry,
    },
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

    /// Builds a split held in memory; the caller has checked that `pixels` holds
    /// `labels.len()` images of `[channels, rows, cols]`.
    pub(crate) fn new(
        pixels: Vec<u8>,
        labels: Vec<u16>,
        [channels, rows, cols]: [usize; 3],
    ) -> Self {
        debug_assert_eq!(pixels.len(), labels.len() * channels * rows * cols);
        Split {
            storage: Storage::Memory(pixels),
            labels,
            channels,
            rows,
            cols,
        }
    }

    /// Builds a split of image files decoded on demand to `3 x crop x crop` pixels; the caller
    /// gives one label per path.
    pub(crate) fn from_files(
        paths: Vec<PathBuf>,
        labels: Vec<u16>,
        geometry: folder::Geometry,
    ) -> Self {
        debug_assert_eq!(paths.len(), labels.len());
        let side = geometry.crop as usize;
        Split {
            storage: Storage::Files { paths, geometry },
            labels,
            channels: 3,
            rows: side,
            cols: side,
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

    /// Whether images are decoded from files on demand rather than held in memory.
    pub fn is_lazy(&self) -> bool {
        matches!(self.storage, Storage::Files { .. })
    }

    /// The image files of a lazy split, one per example; `None` for a split in memory.
    pub fn files(&self) -> Option<&[PathBuf]> {
        match &self.storage {
            Storage::Memory(_) => None,
            Storage::Files { paths, .. } => Some(paths),
        }
    }

    /// The pixels of example `index`, channel-major then row-major: borrowed from memory, or
    /// decoded from its file (then an unreadable or corrupt file is an error that names it).
    pub fn image(&self, index: usize) -> Result<Cow<'_, [u8]>, DataError> {
        let missing = || DataError::NoExample {
            index,
            len: self.len(),
        };
        match &self.storage {
            Storage::Memory(pixels) => {
                let size = self.channels * self.rows * self.cols;
                pixels
                    .get(index * size..(index + 1) * size)
                    .map(Cow::Borrowed)
                    .ok_or_else(missing)
            }
            Storage::Files { paths, geometry } => {
                let path = paths.get(index).ok_or_else(missing)?;
                folder::decode(path, *geometry).map(Cow::Owned)
            }
        }
    }

    /// The label of example `index`, or `None` past the end.
    pub fn label(&self, index: usize) -> Option<u16> {
        self.labels.get(index).copied()
    }

    /// All labels.
    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    /// The examples at `indices`, as a new split (validation hold-outs, `--limit`); a lazy
    /// split gives a lazy subset (of its file list), nothing is decoded.
    ///
    /// # Panics
    ///
    /// If an index is past the end.
    pub fn subset(&self, indices: &[usize]) -> Split {
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        match &self.storage {
            Storage::Memory(all) => {
                let size = self.channels * self.rows * self.cols;
                let mut pixels = Vec::with_capacity(indices.len() * size);
                for &i in indices {
                    pixels.extend_from_slice(&all[i * size..(i + 1) * size]);
                }
                Split::new(pixels, labels, self.dims())
            }
            Storage::Files { paths, geometry } => Split::from_files(
                indices.iter().map(|&i| paths[i].clone()).collect(),
                labels,
                *geometry,
            ),
        }
    }

    /// The same examples held in memory: a lazy split's images are all decoded now (in
    /// parallel), which suits image folders small enough to fit and trained for many epochs.
    pub fn into_memory(self) -> Result<Split, DataError> {
        use rayon::prelude::*;
        if !self.is_lazy() {
            return Ok(self);
        }
        let images = (0..self.len())
            .into_par_iter()
            .map(|i| self.image(i).map(Cow::into_owned))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Split::new(
            images.concat(),
            self.labels,
            [self.channels, self.rows, self.cols],
        ))
    }
}
