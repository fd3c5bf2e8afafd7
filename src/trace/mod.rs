//! `tracing` events where a limit refuses, evicts or backs off (feature `tracing`).
//!
//! Call sites use [`debug!`] for what happens to one connection (an evicted peer, a refused frame) and
//! [`warn_limited!`] for what an operator can act on (a full executor, an exhausted budget, accept backoff on
//! resource exhaustion). Without the feature both compile to nothing: the fields are type-checked inside an
//! `if false`, so a call site builds the same way either way and costs nothing.

mod macros;
#[cfg(feature = "tracing")]
mod rate_limit;

#[cfg(not(feature = "tracing"))]
pub(crate) use macros::touch;
pub(crate) use macros::{debug, warn_limited};
#[cfg(feature = "tracing")]
pub(crate) use rate_limit::RateLimit;
