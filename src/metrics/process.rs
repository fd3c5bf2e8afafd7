//! The gauges a leak hunt starts from: the process' resident memory, its open file descriptors, the live tasks of
//! the tokio runtime.

use std::sync::{Arc, Weak};

use super::{Collector, Family, Observe, Observer};

const RESIDENT: Family = Family::gauge(
    "process_resident_memory_bytes",
    "Resident set size of the process (VmRSS in /proc/self/status), in bytes.",
);
const OPEN_FDS: Family = Family::gauge(
    "process_open_fds",
    "File descriptors the process has open (entries of /proc/self/fd, less the one used to list them).",
);
const ALIVE_TASKS: Family = Family::gauge(
    "runtime_alive_tasks",
    "Tasks alive in the tokio runtime the collection ran in (spawned and not yet completed).",
);
const WORKERS: Family = Family::gauge(
    "runtime_workers",
    "Worker threads of the tokio runtime the collection ran in.",
);

/// Process-wide gauges for a [`Registry`](super::Registry): the series to look at first when memory keeps rising
/// (is it the heap, leaked sockets, or tasks that never finish?), next to tidegate's own bytes and counts.
///
/// | family | what | where |
/// |---|---|---|
/// | `process_resident_memory_bytes` | resident set size (`VmRSS`) | Linux only |
/// | `process_open_fds` | open file descriptors | Linux only |
/// | `runtime_alive_tasks` | tasks spawned and not yet completed | collected inside a tokio runtime |
/// | `runtime_workers` | worker threads | collected inside a tokio runtime |
///
/// The process gauges are read from `/proc/self` at each collection, so they cost nothing between scrapes; on other
/// systems, or if `/proc` is not mounted, they are left out rather than reported as zero. The runtime gauges come
/// from [`Handle::try_current`](tokio::runtime::Handle::try_current) on the thread that collects: render from a
/// task or from [`spawn_blocking`](tokio::task::spawn_blocking) to have them, from a plain thread and they are left
/// out. With several runtimes, they describe the one the collection ran in.
///
/// Like every part, it leaves the registry when it is dropped: keep it as long as it should be reported.
///
/// # Examples
///
/// ```
/// use tidegate::metrics::{ProcessMetrics, Registry};
///
/// let registry = Registry::new();
/// let process = ProcessMetrics::new();
/// registry.register("process", &process)?;
/// let text = registry.render_prometheus();
/// if cfg!(target_os = "linux") {
///     assert!(text.contains("tidegate_process_resident_memory_bytes{name=\"process\"} "));
/// }
/// # Ok::<(), tidegate::metrics::RegistryError>(())
/// ```
#[derive(Debug, Default)]
#[must_use = "a ProcessMetrics leaves the registry as soon as it is dropped"]
pub struct ProcessMetrics {
    // Only there to be held weakly: the gauges describe the process, which outlives any registry.
    alive: Arc<()>,
}

impl ProcessMetrics {
    /// Process gauges, to register.
    pub fn new() -> Self {
        ProcessMetrics::default()
    }
}

impl Observe for ProcessMetrics {
    fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(ProcessObserver(Arc::downgrade(&self.alive)))
    }
}

struct ProcessObserver(Weak<()>);

impl Observer for ProcessObserver {
    fn collect(&self, out: &mut Collector<'_>) -> bool {
        if self.0.strong_count() == 0 {
            return false;
        }
        #[cfg(target_os = "linux")]
        {
            if let Some(bytes) = linux::resident_bytes() {
                out.gauge(&RESIDENT, bytes as f64);
            }
            if let Some(fds) = linux::open_fds() {
                out.gauge(&OPEN_FDS, fds as f64);
            }
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let metrics = handle.metrics();
            out.gauge(&ALIVE_TASKS, metrics.num_alive_tasks() as f64);
            out.gauge(&WORKERS, metrics.num_workers() as f64);
        }
        true
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs;

    /// `VmRSS` from `/proc/self/status`, which the kernel gives in kibibytes whatever its label says.
    pub(super) fn resident_bytes() -> Option<u64> {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        parse_vm_rss(&status)
    }

    pub(super) fn parse_vm_rss(status: &str) -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let mut words = line["VmRSS:".len()..].split_whitespace();
        let kib: u64 = words.next()?.parse().ok()?;
        match words.next() {
            Some("kB") => kib.checked_mul(1024),
            _ => None,
        }
    }

    /// Listing the directory opens a descriptor of its own, which the listing shows: it is not counted.
    pub(super) fn open_fds() -> Option<u64> {
        let entries = fs::read_dir("/proc/self/fd").ok()?;
        let listed = entries.filter(|e| e.is_ok()).count() as u64;
        Some(listed.saturating_sub(1))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::linux::parse_vm_rss;

    #[test]
    fn vm_rss_is_read_in_kibibytes() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
    }
}
