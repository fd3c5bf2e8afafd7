//! Shared codec counters' report to a metrics registry, and their live maximum.

use std::sync::{Arc, Weak};

use crate::metrics::{Collector, Family, Observe, Observer, Settings, SettingsCheck};

use super::stats::{CodecStats, StatsInner};

const FRAMES: Family = Family::counter(
    "codec_frames_total",
    "Frames decoded and handed out by the attached decoders.",
);
const BYTES: Family = Family::counter(
    "codec_bytes_total",
    "Bytes in the frames handed out (after stripping headers or delimiters).",
);
const TOO_LONG: Family = Family::counter(
    "codec_too_long_total",
    "Frames found longer than the maximum, under either oversize policy.",
);
const DISCARDED: Family = Family::counter(
    "codec_discarded_bytes_total",
    "Bytes thrown away while skipping oversize frames, headers and delimiters included.",
);
const MALFORMED: Family = Family::counter(
    "codec_malformed_total",
    "Malformed length headers seen (each one is fatal to its decoder).",
);
const COPIED: Family = Family::counter(
    "codec_copied_frames_total",
    "Frames copied out of the read buffer so that a small frame does not keep a large buffer alive.",
);
const ATTACHED: Family = Family::gauge("codec_attached", "Decoders attached and alive.");
const MAX: Family = Family::gauge(
    "codec_max_frame_length_bytes",
    "The live maximum the attached decoders follow (absent when each keeps its own).",
);

const MAX_KEY: &str = "max_frame_length";

/// The registry holds the counters weakly: they go when the handle and every attached decoder are gone.
impl Observe for CodecStats {
    fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(StatsObserver(Arc::downgrade(&self.inner)))
    }
}

struct StatsObserver(Weak<StatsInner>);

impl StatsObserver {
    fn stats(&self) -> Option<CodecStats> {
        self.0.upgrade().map(|inner| CodecStats { inner })
    }
}

impl Observer for StatsObserver {
    fn collect(&self, out: &mut Collector<'_>) -> bool {
        let Some(stats) = self.stats() else {
            return false;
        };
        let m = stats.metrics();
        out.counter(&FRAMES, m.frames);
        out.counter(&BYTES, m.bytes);
        out.counter(&TOO_LONG, m.too_long);
        out.counter(&DISCARDED, m.discarded_bytes);
        out.counter(&MALFORMED, m.malformed);
        out.counter(&COPIED, m.copied_frames);
        out.gauge(&ATTACHED, stats.attached() as f64);
        if let Some(max) = stats.max_frame_length() {
            out.gauge(&MAX, max as f64);
        }
        true
    }

    /// One key, `max_frame_length`; `off` lets each attached decoder keep the maximum it has.
    fn settings(&self) -> Option<Settings> {
        let stats = self.stats()?;
        let max = stats.max_frame_length().map(|m| m as u64);
        Some(Settings::new().with(MAX_KEY, max))
    }

    fn check(&self, settings: &Settings) -> Result<(), Vec<String>> {
        let mut check = SettingsCheck::new(settings, "codec stats", &[MAX_KEY]);
        if let Some(Some(max)) = check.switchable(MAX_KEY, u64::MAX) {
            let (min, limit) = self
                .stats()
                .map_or((1, usize::MAX), |s| s.max_frame_length_range());
            if max < min as u64 || max > limit as u64 {
                check.refuse(format!(
                    "{MAX_KEY} {max} is outside {min}..={limit}, the range every attached decoder accepts"
                ));
            }
        }
        check.finish()
    }

    fn apply(&self, settings: &Settings) -> bool {
        let Some(stats) = self.stats() else {
            return false;
        };
        if let Some(max) = settings.get(MAX_KEY) {
            // Checked before: in range, so this is accepted.
            let max = max.map(|m| usize::try_from(m).unwrap_or(usize::MAX));
            let _ = stats.set_max_frame_length(max);
        }
        true
    }
}
