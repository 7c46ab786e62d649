//! Two network namespaces joined by the [`delay_line`](super::delay_line): the real TCP path
//! of `pillar bench net`.
//!
//! Namespace A holds the dealer and the server, namespace B the client; each has one TUN
//! device, and the delay line in this process (in the root namespace) forwards between them.
//! Everything is made with `ip` (iproute2) and removed when [`Path`] is dropped, on an error
//! too; namespaces left by a run that was killed (their names carry its process id) are
//! removed by the next run.

use std::fs::File;
use std::io;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::delay_line::{DelayLine, Shape, Tun};

/// Address of namespace A (dealer and server).
pub(crate) const ADDR_A: &str = "10.201.0.1";
/// Address of namespace B (the client).
pub(crate) const ADDR_B: &str = "10.201.0.2";

/// Prefix of the namespaces and devices this command makes.
const PREFIX: &str = "pillarnet";

/// Why this machine cannot run the real-path benchmark, if it cannot: it needs Linux, root,
/// `/dev/net/tun` and `ip netns`.
pub(crate) fn unsupported() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("not Linux".into());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Some(format!("running as uid {euid}, not root"));
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    match Command::new("ip")
        .args(["netns", "list"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(_) => return Some("`ip netns list` failed".into()),
        Err(_) => return Some("no `ip` command (iproute2)".into()),
    }
    // Root in a container may still lack the capabilities: try both for real (a TUN device
    // disappears with its descriptor).
    let probe = format!("{PREFIX}{}p", std::process::id());
    if let Err(e) = Tun::create(&probe) {
        return Some(format!("cannot create a TUN device: {e}"));
    }
    if let Err(e) = ip(&["netns", "add", &probe]) {
        return Some(format!("cannot make a network namespace: {e}"));
    }
    let _ = ip(&["netns", "del", &probe]);
    None
}

/// Set by SIGINT or SIGTERM.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// What an interrupted run must remove: the namespaces made and the processes started in
/// them (which would keep a namespace alive).
static LIVE: Mutex<(Vec<String>, Vec<u32>)> = Mutex::new((Vec::new(), Vec::new()));

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Whether Ctrl-C or SIGTERM arrived.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Catches Ctrl-C and SIGTERM: a watchdog thread then kills the processes this run started,
/// removes its namespaces and exits (130), even while the main thread is blocked on a socket.
pub(crate) fn catch_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        #[allow(unsafe_code)]
        unsafe {
            libc::signal(signal, on_signal as *const () as libc::sighandler_t);
        }
    }
    std::thread::spawn(|| {
        while !interrupted() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let (namespaces, pids) = std::mem::take(&mut *live());
        for pid in pids {
            // SAFETY: kill has no memory preconditions; the pid is a child this run started
            // and has not reaped (reaped ones are unregistered first).
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        for ns in namespaces {
            let _ = ip(&["netns", "del", &ns]);
        }
        eprintln!("interrupted: processes ended, namespaces removed");
        std::process::exit(130);
    });
}

fn live() -> std::sync::MutexGuard<'static, (Vec<String>, Vec<u32>)> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Records a process started in a namespace, to be killed if the run is interrupted.
pub(crate) fn register_child(pid: u32) {
    live().1.push(pid);
}

/// Forgets a process about to be reaped.
pub(crate) fn unregister_child(pid: u32) {
    live().1.retain(|&p| p != pid);
}

/// Runs `ip ARGS`, which must succeed.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Removes the namespaces of earlier runs whose process is gone.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// TCP settings of both namespaces, applied when they are made.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TcpTuning {
    /// `initcwnd` and `initrwnd` of namespace A's route to B (kernel default: 10): the
    /// server side's, which the operator of the server and the dealer controls.
    pub initcwnd: Option<u32>,
    /// The same of namespace B's route to A: the client host's, which its own operator
    /// controls.
    pub client_initcwnd: Option<u32>,
    /// `net.ipv4.tcp_slow_start_after_idle=0` in namespace A (the server side): a connection
    /// idle for longer than its
    /// retransmission timeout keeps its congestion window.
    pub no_slow_start_after_idle: bool,
    /// `net.ipv4.tcp_congestion_control` (this kernel's default otherwise).
    pub congestion_control: Option<String>,
    /// The largest send and receive buffers TCP's autotuning may reach
    /// (`net.ipv4.tcp_wmem` and `tcp_rmem`, third value), in bytes.
    pub buffer_max: Option<usize>,
}

/// The two namespaces, their TUN devices and the delay line between them.
#[derive(Debug)]
pub(crate) struct Path {
    /// Namespace of the dealer and the server.
    pub a: String,
    /// Namespace of the client.
    pub b: String,
    delay: DelayLine,
    _tuns: [Tun; 2],
}

impl Path {
    /// Makes the namespaces and starts the delay line with `shape`.
    pub(crate) fn new(shape: Shape, tuning: &TcpTuning) -> Result<Path> {
        remove_stale();
        let pid = std::process::id();
        let a = format!("{PREFIX}{pid}a");
        let b = format!("{PREFIX}{pid}b");
        live().0.extend([a.clone(), b.clone()]);
        let tun_a = Tun::create(&a).with_context(|| format!("cannot create TUN device {a}"))?;
        let tun_b = Tun::create(&b).with_context(|| format!("cannot create TUN device {b}"))?;
        // From here on, a failure removes what was made (Drop).
        let delay =
            DelayLine::start(&tun_a, &tun_b, shape).context("cannot start the delay line")?;
        let path = Path {
            a,
            b,
            delay,
            _tuns: [tun_a, tun_b],
        };
        path.configure(tuning)?;
        Ok(path)
    }

    fn configure(&self, tuning: &TcpTuning) -> Result<()> {
        for (ns, here, there) in [(&self.a, ADDR_A, ADDR_B), (&self.b, ADDR_B, ADDR_A)] {
            ip(&["netns", "add", ns])?;
            ip(&["link", "set", ns, "netns", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "addr", "add", here, "peer", there, "dev", ns])?;
            ip(&["-n", ns, "link", "set", ns, "up"])?;
            let server_side = *ns == self.a;
            let window = if server_side {
                tuning.initcwnd
            } else {
                tuning.client_initcwnd
            };
            if let Some(w) = window {
                let w = w.to_string();
                ip(&[
                    "-n", ns, "route", "change", there, "dev", ns, "initcwnd", &w, "initrwnd", &w,
                ])?;
            }
            // Every fresh connection starts fresh: no ssthresh or RTT remembered from the
            // previous run to the same address.
            sysctl(ns, "net.ipv4.tcp_no_metrics_save", "1")?;
            if tuning.no_slow_start_after_idle && server_side {
                sysctl(ns, "net.ipv4.tcp_slow_start_after_idle", "0")?;
            }
            if let Some(cc) = &tuning.congestion_control {
                sysctl(ns, "net.ipv4.tcp_congestion_control", cc)?;
            }
            if let Some(max) = tuning.buffer_max {
                sysctl(ns, "net.ipv4.tcp_rmem", &format!("4096 131072 {max}"))?;
                sysctl(ns, "net.ipv4.tcp_wmem", &format!("4096 16384 {max}"))?;
            }
        }
        Ok(())
    }

    /// Changes the delay line's shape (between runs).
    pub(crate) fn set(&self, shape: Shape) {
        self.delay.set(shape);
    }

    /// Packets forwarded and dropped so far.
    pub(crate) fn counts(&self) -> super::delay_line::Counts {
        self.delay.counts()
    }

    /// A command that runs `program` in namespace `ns`.
    pub(crate) fn command(ns: &str, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// A sysctl of namespace `ns`, read back.
    pub(crate) fn sysctl_value(ns: &str, key: &str) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "sysctl", "-n", key])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Runs `f` on a thread inside namespace `ns`: its sockets live there.
    pub(crate) fn within<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| -> Result<T> {
                    enter(ns)?;
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|_| bail!("a thread in namespace {ns} panicked"))
        })
    }
}

/// Moves this thread into network namespace `ns`.
fn enter(ns: &str) -> Result<()> {
    use std::os::fd::AsRawFd;
    let file = File::open(format!("/run/netns/{ns}"))
        .with_context(|| format!("cannot open namespace {ns}"))?;
    // SAFETY: setns on an open namespace descriptor only changes this thread's namespace.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("cannot enter {ns}"));
    }
    Ok(())
}

/// Sets `key` to `value` in namespace `ns`.
fn sysctl(ns: &str, key: &str, value: &str) -> Result<()> {
    ip(&[
        "netns",
        "exec",
        ns,
        "sysctl",
        "-q",
        "-w",
        &format!("{key}={value}"),
    ])
}

impl Drop for Path {
    fn drop(&mut self) {
        // Processes still inside would keep a namespace alive: the caller ends them first.
        for ns in [&self.a, &self.b] {
            let _ = ip(&["netns", "del", ns]);
        }
        live().0.retain(|n| n != &self.a && n != &self.b);
    }
}
