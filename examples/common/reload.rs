//! `--config FILE`: live limits read from a file at start and again on every SIGHUP, applied through the server's
//! metrics registry as one step, each outcome logged on stderr.

use std::path::PathBuf;

use tidegate::metrics::{Configuration, Registry};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// The file, the registry its limits go to, and the SIGHUP handler.
pub struct Reloader {
    path: PathBuf,
    registry: Registry,
    hup: Signal,
}

impl Reloader {
    /// Installs the SIGHUP handler, before the server says it listens, so a SIGHUP sent right after cannot kill
    /// the process with the default action. Call [`reload`](Self::reload) once the parts are registered.
    pub fn new(path: &str, registry: &Registry) -> std::io::Result<Self> {
        Ok(Reloader {
            path: PathBuf::from(path),
            registry: registry.clone(),
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next SIGHUP; never resolves without a reloader (no `--config`).
    ///
    /// Cancel-safe: a SIGHUP that arrives while no one waits is kept for the next call.
    pub async fn hangup(this: &mut Option<Reloader>) {
        match this {
            Some(reloader) => {
                reloader.hup.recv().await;
            }
            None => std::future::pending().await,
        }
    }

    /// Logs the limits the parts start with (the names and keys a file may set), then applies the file.
    pub fn start(&self) -> Result<String, String> {
        let current = self.registry.configuration().to_string();
        let current: Vec<&str> = current.lines().collect();
        eprintln!("config: limits at start: {}", current.join("; "));
        self.reload()
    }

    /// Reads the file and applies it whole, or nothing of it. Logs one line on stderr either way: the changes,
    /// or every reason it was refused (an unreadable file, bad lines, limits a part refuses). Returns the line.
    pub fn reload(&self) -> Result<String, String> {
        let path = self.path.display();
        let outcome = std::fs::read_to_string(&self.path)
            .map_err(|err| format!("cannot read it: {err}"))
            .and_then(|text| Configuration::parse(&text).map_err(|errs| joined(errs.errors())))
            .and_then(|config| {
                self.registry
                    .reconfigure(&config)
                    .map_err(|err| joined(err.refusals()))
            });
        match outcome {
            Ok(done) if done.changes().is_empty() => Ok(format!(
                "applied {path} (version {}): no change",
                done.version()
            )),
            Ok(done) => Ok(format!(
                "applied {path} (version {}): {}",
                done.version(),
                joined(done.changes())
            )),
            Err(reasons) => Err(format!("refused {path}, nothing changed: {reasons}")),
        }
        .inspect(|line| eprintln!("config: {line}"))
        .inspect_err(|line| eprintln!("config: {line}"))
    }
}

fn joined<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
