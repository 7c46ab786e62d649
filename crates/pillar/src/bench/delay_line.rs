//! A user-space delay line between two TUN devices: the WAN of `pillar bench net`.
//!
//! This kernel has no `netem`, so the round trip and the bandwidth cap of a real path are made
//! here. Every packet the kernel routes out of one TUN device is read by a thread of this
//! process, held for the one-way delay (half the round-trip time) and, under a bandwidth cap,
//! queued behind the packets before it as on a bottleneck link (drop tail beyond a bounded
//! queue, so TCP sees losses as it would on a real path), then written into the other TUN
//! device, where the kernel receives it. Each direction has its own reader and writer thread:
//! the reader timestamps packets as they arrive, the writer sleeps until each is due, so a
//! slow write never delays the next packet's timestamp.
//!
//! Opening a TUN device needs one `ioctl` (`TUNSETIFF`), the only `unsafe` here.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `TUNSETIFF`, `_IOW('T', 202, int)` in the generic ioctl encoding of x86 and arm (write:
/// 1 << 30, size 4 << 16, type 'T' << 8, number 202).
const TUNSETIFF: u64 = (1 << 30) | (4 << 16) | ((b'T' as u64) << 8) | 202;

/// `struct ifreq` as `TUNSETIFF` reads it: the interface name, then the flags in the union.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    _union: [u8; 22],
}

/// Largest packet read from a TUN device (its MTU stays the default 1500; this is the most
/// an `IFF_TUN` read can return).
const MAX_PACKET: usize = 65_536;

/// A TUN device of this process (`IFF_TUN | IFF_NO_PI`: bare IP packets); it disappears when
/// the last descriptor on it is closed.
#[derive(Debug)]
pub(crate) struct Tun {
    file: File,
}

impl Tun {
    /// Creates the TUN device `name` (at most 15 bytes) in this process's network namespace.
    pub(crate) fn create(name: &str) -> io::Result<Tun> {
        if name.is_empty() || name.len() > 15 || !name.is_ascii() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?}: an interface name is 1 to 15 ASCII bytes"),
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")?;
        let mut req = IfReq {
            name: [0; 16],
            flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
            _union: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        use std::os::fd::AsRawFd;
        // SAFETY: `file` is an open descriptor of /dev/net/tun, and TUNSETIFF reads (and may
        // write back the name into) an `ifreq`, which `req` is, laid out as the kernel's and
        // alive for the call.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                TUNSETIFF as _,
                std::ptr::from_mut(&mut req),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Tun { file })
    }

    fn try_clone(&self) -> io::Result<File> {
        self.file.try_clone()
    }
}

/// What one direction of the path does to a packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Shape {
    /// Delay of every packet: half the round-trip time.
    pub one_way: Duration,
    /// Bottleneck rate in bytes per second (`None`: as fast as the threads forward).
    pub bytes_per_s: Option<f64>,
    /// Most bytes waiting for the bottleneck; a packet that would queue beyond is dropped.
    pub queue_bytes: usize,
}

impl Shape {
    /// The path of round-trip time `rtt_ms` and optional cap `mbps`, with a queue of one
    /// bandwidth-delay product plus 64 KiB (`queue_bytes` overrides it).
    pub(crate) fn new(rtt_ms: f64, mbps: Option<f64>, queue_bytes: Option<usize>) -> Shape {
        let bytes_per_s = mbps.map(|m| m * 1e6 / 8.0);
        let bdp = bytes_per_s.map_or(0.0, |b| b * rtt_ms / 1000.0);
        Shape {
            one_way: Duration::from_secs_f64(rtt_ms.max(0.0) / 2000.0),
            bytes_per_s,
            queue_bytes: queue_bytes.unwrap_or(bdp as usize + (64 << 10)),
        }
    }
}

/// One direction's bottleneck: when it is free next.
#[derive(Debug)]
struct Link {
    shape: Shape,
    free_at: Instant,
    dropped: u64,
    forwarded: u64,
}

impl Link {
    /// An idle bottleneck of `shape`, free from `now`.
    fn new(shape: Shape, now: Instant) -> Link {
        Link {
            shape,
            free_at: now,
            dropped: 0,
            forwarded: 0,
        }
    }

    /// When a packet of `len` bytes arriving `now` is delivered, or `None` if the queue is
    /// full (drop tail).
    fn admit(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let Some(rate) = self.shape.bytes_per_s else {
            self.forwarded += 1;
            return Some(now + self.shape.one_way);
        };
        let backlog = self.free_at.saturating_duration_since(now).as_secs_f64() * rate;
        if backlog + len as f64 > self.shape.queue_bytes as f64 {
            self.dropped += 1;
            return None;
        }
        let start = self.free_at.max(now);
        self.free_at = start + Duration::from_secs_f64(len as f64 / rate);
        self.forwarded += 1;
        Some(self.free_at + self.shape.one_way)
    }
}

/// Packets forwarded and dropped so far, both directions together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub forwarded: u64,
    pub dropped: u64,
}

/// The running delay line between two TUN devices. Its threads run until the process ends
/// (a read on a TUN device cannot be interrupted); [`DelayLine::set`] changes the path
/// between runs.
#[derive(Debug)]
pub(crate) struct DelayLine {
    links: [Arc<Mutex<Link>>; 2],
}

impl DelayLine {
    /// Forwards between `a` and `b` as `shape` says, each way.
    pub(crate) fn start(a: &Tun, b: &Tun, shape: Shape) -> io::Result<DelayLine> {
        let link = || Arc::new(Mutex::new(Link::new(shape, Instant::now())));
        let links = [link(), link()];
        direction(
            "a->b",
            a.try_clone()?,
            b.try_clone()?,
            Arc::clone(&links[0]),
        )?;
        direction(
            "b->a",
            b.try_clone()?,
            a.try_clone()?,
            Arc::clone(&links[1]),
        )?;
        Ok(DelayLine { links })
    }

    /// Changes the path for the packets that arrive from now on.
    pub(crate) fn set(&self, shape: Shape) {
        for l in &self.links {
            let mut l = l.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            l.shape = shape;
            l.free_at = Instant::now();
        }
    }

    /// Packets forwarded and dropped so far.
    pub(crate) fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for l in &self.links {
            let l = l.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            c.forwarded += l.forwarded;
            c.dropped += l.dropped;
        }
        c
    }
}

/// Starts the reader and writer threads of one direction.
fn direction(name: &str, mut from: File, mut to: File, link: Arc<Mutex<Link>>) -> io::Result<()> {
    let (tx, rx) = channel::<(Instant, Vec<u8>)>();
    std::thread::Builder::new()
        .name(format!("delay {name} read"))
        .spawn(move || {
            let mut buf = vec![0u8; MAX_PACKET];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let now = Instant::now();
                let due = link
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .admit(now, n);
                if let Some(due) = due
                    && tx.send((due, buf[..n].to_vec())).is_err()
                {
                    return;
                }
            }
        })?;
    std::thread::Builder::new()
        .name(format!("delay {name} write"))
        .spawn(move || {
            for (due, packet) in rx {
                let wait = due.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
                // A packet the kernel refuses (the device going down) is lost, as on a wire.
                let _ = to.write(&packet);
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uncapped_path_delays_by_half_the_round_trip() {
        let shape = Shape::new(100.0, None, None);
        assert_eq!(shape.one_way, Duration::from_millis(50));
        let now = Instant::now();
        let mut link = Link::new(shape, now);
        assert_eq!(link.admit(now, 1500), Some(now + Duration::from_millis(50)));
    }

    #[test]
    fn a_capped_path_serialises_and_drops_beyond_its_queue() {
        // 8 Mbit/s = 1 MB/s: a 1000-byte packet takes 1 ms on the wire.
        let shape = Shape::new(10.0, Some(8.0), Some(2500));
        let now = Instant::now();
        let mut link = Link::new(shape, now);
        let ms = Duration::from_millis;
        assert_eq!(link.admit(now, 1000), Some(now + ms(1) + ms(5)));
        assert_eq!(link.admit(now, 1000), Some(now + ms(2) + ms(5)));
        // 2000 bytes queued: a third 1000 would make 3000 > 2500.
        assert_eq!(link.admit(now, 1000), None);
        assert_eq!(link.dropped, 1);
        // Once the queue drains, packets pass again.
        assert_eq!(link.admit(now + ms(2), 1000), Some(now + ms(3) + ms(5)));
    }

    #[test]
    fn the_default_queue_is_a_bandwidth_delay_product_plus_slack() {
        // 100 Mbit/s x 100 ms = 1.25 MB.
        let shape = Shape::new(100.0, Some(100.0), None);
        assert_eq!(shape.queue_bytes, 1_250_000 + 65_536);
    }

    #[test]
    fn the_ioctl_number_is_the_kernels() {
        assert_eq!(TUNSETIFF, 0x4004_54ca);
    }
}
