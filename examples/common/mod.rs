//! What the example servers share: hand-parsed flags, the runtime, the signals that end them and the RSS figure of
//! their stats lines. No dependency beyond the crate's own.

pub mod reload;

use std::collections::HashMap;
use std::io::{self, Write};
use std::str::FromStr;

/// Flags as `--name value` pairs and bare `--name` switches, parsed from `std::env::args` by hand.
pub struct Flags {
    values: HashMap<&'static str, String>,
    switches: Vec<&'static str>,
}

impl Flags {
    /// Parses the process's arguments: `valued` flags take the next argument, `switches` take none. Anything
    /// else (an unknown flag, a missing value) is an error that names it.
    pub fn parse(valued: &[&'static str], switches: &[&'static str]) -> Result<Self, String> {
        let mut flags = Flags {
            values: HashMap::new(),
            switches: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                return Err(HELP.to_owned());
            }
            let name = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {arg:?}"))?;
            if let Some(&flag) = valued.iter().find(|&&v| v == name) {
                let value = args
                    .next()
                    .ok_or_else(|| format!("--{flag} needs a value"))?;
                flags.values.insert(flag, value);
            } else if let Some(&flag) = switches.iter().find(|&&s| s == name) {
                flags.switches.push(flag);
            } else {
                return Err(format!("unknown flag --{name}"));
            }
        }
        Ok(flags)
    }

    /// The value of `--name` parsed as a `T`, or `default` when the flag was not given.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        match self.values.get(name) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .map_err(|err| format!("--{name} {value:?}: {err}")),
        }
    }

    /// The value of `--name` as given, if it was.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether the switch `--name` was given.
    pub fn switch(&self, name: &str) -> bool {
        self.switches.contains(&name)
    }
}

/// Prints a line on stdout and flushes it at once: a test (or a pipe) reads these lines as they come, and stdout
/// is block-buffered when it is not a terminal.
pub fn say(line: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    // A closed stdout (the reader went away) must not take the server down.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The process's resident set in KiB (`VmRSS` in `/proc/self/status`); 0 where that file does not exist.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Raises the soft limit on open descriptors to the hard one: a server meant for thousands of connections should
/// not stop at the common soft default of 1024. Failing leaves the limit as it was (the listener backs off on
/// `EMFILE` then).
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A multi-thread runtime of `workers` threads (0: one per core), built by hand so the flag can set it.
/// The body of a server's `main`: raises the descriptor limit, runs `serve` on a runtime of `workers` threads, and
/// exits with status 1 and the error if it fails.
pub fn run_server(
    name: &str,
    workers: usize,
    serve: impl std::future::Future<Output = io::Result<()>>,
) {
    raise_fd_limit();
    if let Err(err) = runtime(workers).and_then(|rt| rt.block_on(serve)) {
        eprintln!("{name}: {err}");
        std::process::exit(1);
    }
}

/// Binds `addr` with the system's full backlog and a limit of `max_conns` live connections.
pub async fn bind_limited(
    addr: &str,
    max_conns: usize,
) -> io::Result<(
    tidegate::conn::ConnectionLimiter,
    tidegate::conn::LimitedListener,
)> {
    let limiter = tidegate::conn::ConnectionLimiter::new(max_conns);
    let listener = tidegate::conn::LimitedListener::builder()
        .limiter(limiter.clone())
        .bind(addr)
        .await?;
    Ok((limiter, listener))
}

pub fn runtime(workers: usize) -> io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        builder.worker_threads(workers);
    }
    builder.enable_all().build()
}

/// Resolves when the process gets SIGINT or SIGTERM; says which.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers now, before the server says it listens, so a signal sent right after cannot kill
    /// the process with the default action.
    pub fn new() -> io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next SIGINT or SIGTERM.
    ///
    /// Cancel-safe: a signal that arrives while no one waits is kept for the next call.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// What [`Flags::parse`] returns for `--help`: not an error, the usage text is wanted.
const HELP: &str = "help";

/// Prints the usage text and exits: status 0 for `--help`, 2 after a flag error.
pub fn usage_exit(err: &str, usage: &str) -> ! {
    if err == HELP {
        println!("{usage}");
        std::process::exit(0)
    }
    eprintln!("error: {err}\n\n{usage}");
    std::process::exit(2)
}
