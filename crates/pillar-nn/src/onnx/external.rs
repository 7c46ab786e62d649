//! Tensor data stored beside the model: what `torch.onnx.export` (the dynamo exporter of
//! torch >= 2.9) and `onnx.save(..., save_as_external_data=True)` write to `m.onnx.data`.
//!
//! A tensor names its file (`location`, relative to the model's folder) and its bytes in it
//! (`offset`, `length`). Both come from the model, so neither is trusted: the location must
//! stay inside the model's folder (no absolute path, no `..`, no symbolic link, nothing that
//! resolves elsewhere) and name a regular file, and the bytes must lie inside that file and be
//! exactly what the tensor's dimensions and type need, all checked before a byte is read or a
//! buffer allocated. The model-wide total is bounded beforehand by
//! [`super::limits::external`].

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use super::proto::TensorProto;

/// The model's folder and the external files opened in it, each once.
#[derive(Debug)]
pub(crate) struct External {
    /// The folder as given (for messages).
    dir: PathBuf,
    /// The folder, canonical, once resolved.
    canonical: Option<PathBuf>,
    /// Open files by location, with their sizes.
    files: HashMap<String, (File, u64)>,
    /// Bytes that may still be read, a guard beside the model-wide check made before import.
    budget: u64,
}

/// Whether `t` keeps its data in an external file.
pub(crate) fn is_external(t: &TensorProto) -> bool {
    t.data_location == Some(1) || !t.external_data.is_empty()
}

/// Where an external tensor's bytes are, as its entries say.
#[derive(Debug, Default)]
struct Place<'a> {
    location: Option<&'a str>,
    offset: Option<u64>,
    length: Option<u64>,
}

impl External {
    /// External data of a model in folder `dir`, at most `budget` bytes in all.
    pub(crate) fn new(dir: &Path, budget: u64) -> External {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        External {
            dir: dir.to_path_buf(),
            canonical: None,
            files: HashMap::new(),
            budget,
        }
    }

    /// The `need` bytes of tensor `t` (its dimensions and type say how many), read from the
    /// file and place its entries name. `Err` is the detail of a tensor error.
    pub(crate) fn read(&mut self, t: &TensorProto, need: u64) -> Result<Vec<u8>, String> {
        let place = place(t)?;
        let location = place
            .location
            .ok_or("its data is marked external but has no \"location\" entry")?;
        if t.raw_data.is_some()
            || !t.float_data.is_empty()
            || !t.int32_data.is_empty()
            || !t.int64_data.is_empty()
            || !t.double_data.is_empty()
            || !t.uint64_data.is_empty()
        {
            return Err(format!(
                "holds data both inside the model and in the external file {location:?}"
            ));
        }
        if let Some(length) = place.length
            && length != need
        {
            return Err(format!(
                "its external file {location:?} gives it {length} bytes, its dimensions and \
                 type need {need}"
            ));
        }
        if need > self.budget {
            return Err(format!(
                "its {need} bytes in {location:?} exceed what is left of the {}-byte budget of \
                 the model and its external data",
                super::MAX_MODEL_BYTES
            ));
        }
        let offset = place.offset.unwrap_or(0);
        let (file, size) = self.open(location)?;
        let end = offset.checked_add(need).filter(|&end| end <= *size);
        let Some(end) = end else {
            return Err(if offset > *size {
                format!(
                    "its offset {offset} in {location:?} is past the end of that file ({size} \
                     bytes)"
                )
            } else {
                format!(
                    "its {need} bytes at offset {offset} run past the end of {location:?} \
                     ({size} bytes)"
                )
            });
        };
        let io = |e: std::io::Error| format!("cannot read {location:?}: {e}");
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut bytes = Vec::new();
        // `need` is within the file's size and the budget, so the allocation is bounded.
        bytes
            .try_reserve_exact(need as usize)
            .map_err(|e| format!("cannot hold its {need} bytes: {e}"))?;
        file.take(need).read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() as u64 != need {
            return Err(format!(
                "{location:?} ended at byte {} while its bytes {offset}..{end} were read (the \
                 file shrank)",
                offset + bytes.len() as u64
            ));
        }
        self.budget -= need;
        Ok(bytes)
    }

    /// The file at `location`, checked to be a regular file inside the model's folder, and its
    /// size; opened on first use.
    fn open(&mut self, location: &str) -> Result<&mut (File, u64), String> {
        if !self.files.contains_key(location) {
            let opened = self.resolve(location)?;
            self.files.insert(location.to_string(), opened);
        }
        self.files
            .get_mut(location)
            .ok_or_else(|| format!("internal: {location:?} not opened"))
    }

    fn resolve(&mut self, location: &str) -> Result<(File, u64), String> {
        let outside = || {
            format!(
                "its external file {location:?} is not inside the model's folder {}; pillar \
                 reads external data only from files beside the model (a relative location \
                 without \"..\")",
                self.dir.display()
            )
        };
        let relative = Path::new(location);
        if location.is_empty()
            || !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(outside());
        }
        let dir = match &self.canonical {
            Some(d) => d.clone(),
            None => {
                let d = self.dir.canonicalize().map_err(|e| {
                    format!(
                        "cannot resolve the model's folder {}: {e}",
                        self.dir.display()
                    )
                })?;
                self.canonical = Some(d.clone());
                d
            }
        };
        let path = dir.join(relative);
        let shown = self.dir.join(relative);
        let link = std::fs::symlink_metadata(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!("its external file {} does not exist", shown.display())
            } else {
                format!("cannot read its external file {}: {e}", shown.display())
            }
        })?;
        if link.file_type().is_symlink() {
            return Err(format!(
                "its external file {} is a symbolic link; pillar reads only regular files \
                 inside the model's folder",
                shown.display()
            ));
        }
        let real = path
            .canonicalize()
            .map_err(|e| format!("cannot resolve its external file {}: {e}", shown.display()))?;
        if !real.starts_with(&dir) {
            return Err(outside());
        }
        // Checked before opening: opening a named pipe would wait for a writer.
        if !link.is_file() {
            return Err(format!(
                "its external file {} is not a regular file",
                shown.display()
            ));
        }
        let file = File::open(&real)
            .map_err(|e| format!("cannot open its external file {}: {e}", shown.display()))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot read its external file {}: {e}", shown.display()))?;
        if !meta.is_file() {
            return Err(format!(
                "its external file {} is not a regular file",
                shown.display()
            ));
        }
        Ok((file, meta.len()))
    }
}

/// The entries of `t.external_data`, each at most once; an entry pillar does not know is
/// refused rather than ignored, since it might change where the bytes are.
fn place(t: &TensorProto) -> Result<Place<'_>, String> {
    let mut place = Place::default();
    let mut seen = Vec::new();
    for e in &t.external_data {
        let key = e.key.as_deref().unwrap_or("");
        let value = e.value.as_deref().unwrap_or("");
        if seen.contains(&key) {
            return Err(format!("its external data entry {key:?} is given twice"));
        }
        seen.push(key);
        let number = || {
            // Decimal digits only: no sign, no spaces, no hexadecimal.
            value
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| value.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| {
                    format!("its external data entry {key:?} = {value:?} is not a byte count")
                })
        };
        match key {
            "location" => place.location = Some(value),
            "offset" => place.offset = Some(number()?),
            "length" => place.length = Some(number()?),
            // A digest of the bytes; not verified (the bytes are checked against the tensor's
            // size, and a changed weight is not a memory-safety matter).
            "checksum" => {}
            other => {
                return Err(format!(
                    "its external data entry {other:?} is not one pillar knows (location, \
                     offset, length, checksum)"
                ));
            }
        }
    }
    Ok(place)
}
