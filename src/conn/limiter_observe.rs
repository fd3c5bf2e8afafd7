//! A connection limiter's report to a metrics registry, and its live limits.

use std::sync::{Arc, Weak};

use crate::metrics::{Collector, Family, Observe, Observer, Settings, SettingsCheck};

use super::limiter::{ConnectionLimiter, Shared};

const ACTIVE: Family = Family::gauge(
    "limiter_active",
    "Live connections: permits granted and not yet dropped.",
);
const PEAK: Family = Family::gauge("limiter_peak", "The most connections ever live at once.");
const LIMIT: Family = Family::gauge("limiter_limit", "The limit on live connections.");
const PER_IP_LIMIT: Family = Family::gauge(
    "limiter_per_ip_limit",
    "The limit on live connections per peer address (absent when off).",
);
const TRACKED_IPS: Family = Family::gauge(
    "limiter_tracked_ips",
    "Addresses with at least one live connection counted per address.",
);
const ACCEPTED: Family = Family::counter(
    "limiter_accepted_total",
    "Permits granted since the limiter was made.",
);
const REFUSED: Family = Family::counter(
    "limiter_refused_total",
    "Connections refused, by the limit that refused them (scope global or per_ip).",
);

const LIMIT_KEY: &str = "limit";
const PER_IP_KEY: &str = "per_ip";

/// The observer holds the limiter's state weakly; permits still alive keep that state, so a dropped limiter
/// reports until its last connection closes.
impl Observe for ConnectionLimiter {
    fn observer(&self) -> Arc<dyn Observer> {
        Arc::new(LimiterObserver(Arc::downgrade(&self.shared)))
    }
}

struct LimiterObserver(Weak<Shared>);

impl LimiterObserver {
    fn limiter(&self) -> Option<ConnectionLimiter> {
        self.0.upgrade().map(|shared| ConnectionLimiter { shared })
    }
}

impl Observer for LimiterObserver {
    fn collect(&self, out: &mut Collector<'_>) -> bool {
        let Some(limiter) = self.limiter() else {
            return false;
        };
        let m = limiter.metrics();
        out.gauge(&ACTIVE, m.active as f64);
        out.gauge(&PEAK, m.peak as f64);
        out.gauge(&LIMIT, m.limit as f64);
        if let Some(per_ip) = m.per_ip_limit {
            out.gauge(&PER_IP_LIMIT, per_ip as f64);
        }
        out.gauge(&TRACKED_IPS, m.tracked_ips as f64);
        out.counter(&ACCEPTED, m.accepted);
        out.counter_with(&REFUSED, ("scope", "global"), m.refused_global);
        out.counter_with(&REFUSED, ("scope", "per_ip"), m.refused_per_ip);
        true
    }

    /// `limit` and `per_ip` (`off` when connections are not limited per address).
    fn settings(&self) -> Option<Settings> {
        let (limit, per_ip) = self.limiter()?.limits();
        Some(
            Settings::new()
                .with(LIMIT_KEY, Some(limit as u64))
                .with(PER_IP_KEY, per_ip.map(|n| n as u64)),
        )
    }

    fn check(&self, settings: &Settings) -> Result<(), Vec<String>> {
        let mut check = SettingsCheck::new(settings, "a limiter", &[LIMIT_KEY, PER_IP_KEY]);
        let limit = check.required(LIMIT_KEY, usize::MAX as u64);
        // `usize::MAX` per address is how the limiter spells "no limit": `off` says it.
        if let Some(Some(per_ip)) = check.switchable(PER_IP_KEY, usize::MAX as u64 - 1) {
            if let Some(limit) = limit.filter(|limit| per_ip > *limit) {
                check.refuse(format!(
                    "{PER_IP_KEY} {per_ip} is above {LIMIT_KEY} {limit}: one address could never reach it"
                ));
            }
        }
        check.finish()
    }

    fn apply(&self, settings: &Settings) -> bool {
        let Some(limiter) = self.limiter() else {
            return false;
        };
        let (limit, per_ip) = limiter.limits();
        let limit = match settings.get(LIMIT_KEY) {
            Some(Some(n)) => usize::try_from(n).unwrap_or(usize::MAX),
            _ => limit,
        };
        let per_ip = match settings.get(PER_IP_KEY) {
            Some(n) => n.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            None => per_ip,
        };
        limiter.set_limits(limit, per_ip);
        true
    }
}
