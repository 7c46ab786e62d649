//! `--max-memory SIZE` and the batch that fits in it: the commands that run a network
//! securely estimate the run's peak memory before it starts
//! ([`Architecture::memory`]), shrink a default batch to fit the machine, and refuse a batch
//! asked for that does not fit, naming one that does, instead of being killed by the kernel.

use std::fmt;

use anyhow::{Context, Result, bail};
use clap::Args;
use pillar_infer::{Architecture, Parties};

/// Share of the memory the kernel reports available that a run may take by default: the
/// estimate is an upper bound, but other processes need room too.
const AVAILABLE_SHARE: f64 = 0.8;

/// `--max-memory`, for the commands that size a secure run's batch.
#[derive(Debug, Clone, Args)]
pub(crate) struct MemoryArgs {
    /// Most memory the run may take, by its estimate before it starts: a size with a unit
    /// (512MiB, 4GiB, 1.5GB) [default: 80% of the memory available when it starts (/proc/meminfo
    /// MemAvailable) plus what the process holds].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) max_memory: Option<usize>,
}

/// A size as a user writes it: a number and a unit, binary (KiB, MiB, GiB, TiB, or K, M, G,
/// T) or decimal (kB, MB, GB, TB), or B for bytes. A number without a unit is refused: 4096
/// could be bytes or MiB.
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim();
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size: write a number and a unit, e.g. 4GiB"))?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" => {
            return Err(format!(
                "{text:?} has no unit: write e.g. {number}MiB or {number}GiB"
            ));
        }
        "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)"
            ));
        }
    };
    let bytes = value * scale;
    // 2^62 bytes: beyond any machine, and exactly representable.
    if !bytes.is_finite() || bytes < 1.0 || bytes > (1u64 << 62) as f64 {
        return Err(format!("{text:?} is not a size this machine could have"));
    }
    Ok(bytes as usize)
}

/// A size in bytes as the messages write it: GiB from 1 GiB up, MiB below.
pub(crate) struct Size(pub(crate) usize);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gib = self.0 as f64 / f64::from(1 << 30);
        if gib >= 1.0 {
            write!(f, "{gib:.1} GiB")
        } else {
            write!(f, "{:.0} MiB", self.0 as f64 / f64::from(1 << 20))
        }
    }
}

/// What a run may take, in bytes of the process's resident set, and where that came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Bytes.
    pub(crate) bytes: usize,
    /// Where it came from.
    source: Source,
}

/// Where a [`Budget`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `--max-memory`.
    Flag,
    /// The memory available on this machine.
    Available,
    /// A command's own default (`pillar infer`'s bound on what a server may make it spend).
    Default,
}

impl Budget {
    /// `--max-memory`, or 80% of the memory available now plus what this process holds
    /// already (which the available memory does not count).
    pub(crate) fn new(args: &MemoryArgs) -> Result<Budget> {
        if let Some(bytes) = args.max_memory {
            return Ok(Budget::flag(bytes));
        }
        let available = available_memory()?;
        Ok(Budget {
            bytes: (available as f64 * AVAILABLE_SHARE) as usize + resident().unwrap_or(0),
            source: Source::Available,
        })
    }

    /// What `--max-memory` gave.
    pub(crate) fn flag(bytes: usize) -> Budget {
        Budget {
            bytes,
            source: Source::Flag,
        }
    }

    /// A command's default limit.
    pub(crate) fn client_default(bytes: usize) -> Budget {
        Budget {
            bytes,
            source: Source::Default,
        }
    }

    /// How a message names it.
    pub(crate) fn describe(&self) -> String {
        match self.source {
            Source::Flag => format!("--max-memory is {}", Size(self.bytes)),
            Source::Available => format!(
                "{} available (80% of MemAvailable; --max-memory sets another limit)",
                Size(self.bytes)
            ),
            Source::Default => format!(
                "the default limit is {} (--max-memory sets another)",
                Size(self.bytes)
            ),
        }
    }
}

/// The batch a secure run of `arch` takes: `asked` when given and it fits, else refused
/// naming the largest that fits; without `asked`, `default` (at most `images`) or, when that
/// does not fit, the largest batch that does, said on stderr. `held` is what the process
/// holds besides the run (the model, the data, the inputs). A network whose single image
/// does not fit is refused.
pub(crate) fn fit_batch(
    arch: &Architecture,
    parties: Parties,
    asked: Option<usize>,
    default: usize,
    images: usize,
    held: usize,
    budget: Budget,
) -> Result<usize> {
    let want = asked.unwrap_or_else(|| default.min(images.max(1)));
    let needs = needs(arch, parties, want, held)?;
    if needs <= budget.bytes {
        return Ok(want);
    }
    let fits = arch.largest_batch(parties, held, budget.bytes, want);
    let Some(fits) = fits else {
        let one = needs_text(arch, parties, 1, held);
        bail!(
            "one image of this network needs about {one} in a secure run, {}; {}",
            budget.describe(),
            match budget.source {
                Source::Available => "it does not fit this machine",
                Source::Flag | Source::Default => "raise --max-memory",
            }
        );
    };
    if asked.is_some() {
        bail!(
            "batch {want} needs about {}, {}; --batch {fits} fits",
            Size(needs),
            budget.describe()
        );
    }
    eprintln!(
        "batch {fits}: batch {want} would need about {}, {}; batch {fits} needs about {}",
        Size(needs),
        budget.describe(),
        needs_text(arch, parties, fits, held)
    );
    Ok(fits)
}

/// The estimate of a batch of `batch` plus `held`, in bytes.
fn needs(arch: &Architecture, parties: Parties, batch: usize, held: usize) -> Result<usize> {
    Ok(arch
        .memory_bytes(batch, parties)
        .with_context(|| format!("cannot estimate the memory of a batch of {batch}"))?
        .saturating_add(held))
}

fn needs_text(arch: &Architecture, parties: Parties, batch: usize, held: usize) -> String {
    needs(arch, parties, batch, held).map_or_else(|e| format!("{e:#}"), |b| Size(b).to_string())
}

/// The memory the kernel says is available for new work (`MemAvailable` in /proc/meminfo),
/// in bytes.
fn available_memory() -> Result<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").context(
        "cannot read /proc/meminfo for the memory available; give the limit with --max-memory",
    )?;
    meminfo_field(&text, "MemAvailable:")
        .context("/proc/meminfo has no MemAvailable line; give the limit with --max-memory")
}

/// What this process holds now (`VmRSS` in /proc/self/status), in bytes.
pub(crate) fn resident() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    meminfo_field(&text, "VmRSS:")
}

/// Restarts the count of [`peak_resident`] (Linux 4.0 and later: `5` to
/// `/proc/self/clear_refs`); whether it could.
///
/// Memory freed before is first given back to the system (glibc keeps freed pages resident
/// until told), so that the peak starts from what the process holds now.
pub(crate) fn reset_peak_resident() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only releases free memory of the allocator's
    // arenas; any thread may call it at any time.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The most memory the process has held resident since it started or since
/// [`reset_peak_resident`] (`VmHWM`), in bytes.
pub(crate) fn peak_resident() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    meminfo_field(&text, "VmHWM:")
}

/// A `Name:   1234 kB` line's value, in bytes.
fn meminfo_field(text: &str, name: &str) -> Option<usize> {
    let line = text.lines().find_map(|l| l.strip_prefix(name))?;
    let mut parts = line.split_whitespace();
    let kib: usize = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => kib.checked_mul(1024),
        _ => None,
    }
}

/// Turns transparent huge pages off for this process, for the commands that serve many
/// connections at once (`serve`, `dealer`, `infer`, `bench load`). mimalloc asks for huge
/// pages, and every thread's heap then takes whole 2 MiB pages that the kernel must zero:
/// `bench load` on the MNIST convnet spent 70% of its CPU time in the kernel zeroing them at
/// 128 clients. Without them (measured 2026-11-30, `pillar bench load --clients 1,8,32,128`):
/// 672 and 546 images/s at 8 and 128 clients instead of 632 and 307, and 1.5 GiB instead of
/// 4.6 GiB at 128. mimalloc's own switch, `MIMALLOC_ALLOW_THP=0`, gave 684 and 576 images/s and
/// 1.3 GiB, and with it ResNet-18 and ResNet-50 inferences were as fast either way, while a
/// MiniONN training step was 3% faster with huge pages: training keeps them.
pub(crate) fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integers and only sets a flag of
    // this process's memory map; a failure leaves the pages as they were.
    #[allow(unsafe_code)]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_and_decimal_units_and_refuse_bare_numbers() {
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("4 gib"), Ok(4 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("100B"), Ok(100));
        for bad in [
            "4096",
            "GiB",
            "4 GiBs",
            "-1GiB",
            "0MiB",
            "1e9GiB",
            "99999999999TiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_size("4096").unwrap_err().contains("4096MiB"));
    }

    #[test]
    fn meminfo_lines_read_in_kib() {
        let text = "MemTotal:       24000000 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(
            meminfo_field(text, "MemAvailable:"),
            Some(20_000_000 * 1024)
        );
        assert_eq!(meminfo_field(text, "VmRSS:"), None);
        assert_eq!(
            meminfo_field("MemAvailable: 12 MB\n", "MemAvailable:"),
            None
        );
        assert!(available_memory().is_ok_and(|b| b > 0));
    }
}
