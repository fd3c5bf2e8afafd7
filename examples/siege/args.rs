//! The command-line flags (listed in the crate doc of `main.rs`).

use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) duration: Duration,
    pub(crate) normal: usize,
    pub(crate) slow: usize,
    pub(crate) liars: usize,
    pub(crate) slowloris: usize,
    pub(crate) flood: usize,
    pub(crate) storm: usize,
    pub(crate) ceiling_mb: u64,
    pub(crate) json: bool,
    pub(crate) unguarded: bool,
}

impl Options {
    pub(crate) fn parse() -> Result<Options, String> {
        let mut o = Options {
            duration: Duration::from_secs(20),
            normal: 16,
            slow: 50,
            liars: 20,
            slowloris: 50,
            flood: 8,
            storm: 2000,
            ceiling_mb: 2048,
            json: false,
            unguarded: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut number = || -> Result<u64, String> {
                args.next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("{flag} needs a number"))
            };
            match flag.as_str() {
                "--duration-s" => o.duration = Duration::from_secs(number()?.max(2)),
                "--normal" => o.normal = number()? as usize,
                "--slow" => o.slow = number()? as usize,
                "--liars" => o.liars = number()? as usize,
                "--slowloris" => o.slowloris = number()? as usize,
                "--flood" => o.flood = number()? as usize,
                "--storm" => o.storm = number()? as usize,
                "--ceiling-mb" => o.ceiling_mb = number()?,
                "--json" => o.json = true,
                "--unguarded" => o.unguarded = true,
                other => {
                    return Err(format!(
                        "unknown flag {other} (see the doc comment of examples/siege/main.rs)"
                    ))
                }
            }
        }
        Ok(o)
    }
}
