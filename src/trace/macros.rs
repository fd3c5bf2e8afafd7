//! The crate's event macros: a thin layer over `tracing`'s, gone without the feature.
//!
//! Syntax: a message literal, then `tracing` fields: `key = value`, `key = %display` or `key = ?debug`, no
//! trailing comma. The target is the calling module (`tidegate::exec::shared`, ...), so a subscriber can filter on
//! `tidegate` or on one part.

/// A `DEBUG` event: something that happened to one connection or one stream.
macro_rules! debug {
    ($msg:literal $(, $($fields:tt)*)?) => {{
        #[cfg(feature = "tracing")]
        ::tracing::debug!($($($fields)*,)? $msg);
        #[cfg(not(feature = "tracing"))]
        if false {
            $($crate::trace::touch!($($fields)*);)?
        }
    }};
}

/// A `WARN` event for what an operator can act on, at most one per second per call site: the one that gets
/// through carries `suppressed`, the number of events this call site dropped since the previous one.
///
/// Counting happens only while a subscriber wants the event, so an attack costs two relaxed atomic operations
/// per refusal when logging is on and nothing when it is off.
macro_rules! warn_limited {
    ($msg:literal $(, $($fields:tt)*)?) => {{
        #[cfg(feature = "tracing")]
        {
            static LIMIT: $crate::trace::RateLimit = $crate::trace::RateLimit::new();
            if ::tracing::enabled!(::tracing::Level::WARN) {
                if let Some(suppressed) = LIMIT.admit() {
                    ::tracing::warn!($($($fields)*,)? suppressed = suppressed, $msg);
                }
            }
        }
        #[cfg(not(feature = "tracing"))]
        if false {
            $($crate::trace::touch!($($fields)*);)?
        }
    }};
}

/// Borrows each field's value, so that without the feature a value used only by an event is still "used".
#[cfg_attr(feature = "tracing", allow(unused_macros))]
macro_rules! touch {
    () => {};
    ($key:ident = % $value:expr $(, $($rest:tt)*)?) => {
        let _ = &$value;
        $($crate::trace::touch!($($rest)*);)?
    };
    ($key:ident = ? $value:expr $(, $($rest:tt)*)?) => {
        let _ = &$value;
        $($crate::trace::touch!($($rest)*);)?
    };
    ($key:ident = $value:expr $(, $($rest:tt)*)?) => {
        let _ = &$value;
        $($crate::trace::touch!($($rest)*);)?
    };
}

#[cfg_attr(feature = "tracing", allow(unused_imports))]
pub(crate) use touch;
pub(crate) use {debug, warn_limited};
