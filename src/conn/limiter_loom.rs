//! Loom models of the connection limiter's counts: admissions racing each other and releases never exceed a limit,
//! and every slot and per-address entry comes back.
//!
//! Run with `scripts/loom.sh`. The wake-up of paused listeners goes through tokio's `Notify`, which loom does not
//! see; the listener tests cover it on real sockets.

use std::net::SocketAddr;

use ::loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use ::loom::sync::Arc;
use ::loom::thread;

use super::ConnectionLimiter;

fn peer(last: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, last], 1000))
}

/// Two threads admit and release while the main thread does too: the global limit and the per-address limit hold
/// in every interleaving (checked by counters of the model's own), every attempt is counted once, and nothing is
/// left after.
#[test]
fn loom_limits_hold_and_slots_come_back() {
    ::loom::model(|| {
        let limiter = ConnectionLimiter::new(2);
        limiter.set_per_ip_limit(Some(1));
        let live_same_ip = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = [1u8, 1]
            .into_iter()
            .map(|last| {
                let (limiter, live_same_ip) = (limiter.clone(), live_same_ip.clone());
                thread::spawn(move || {
                    if let Ok(permit) = limiter.try_acquire(peer(last)) {
                        assert_eq!(
                            live_same_ip.fetch_add(1, SeqCst),
                            0,
                            "two live from one address"
                        );
                        assert!(limiter.active() <= 2);
                        live_same_ip.fetch_sub(1, SeqCst);
                        drop(permit);
                    }
                })
            })
            .collect();
        let other = limiter.try_acquire(peer(2));
        assert!(limiter.active() <= 2);
        drop(other);
        for t in threads {
            t.join().unwrap();
        }
        let m = limiter.metrics();
        assert_eq!((m.active, m.tracked_ips), (0, 0));
        assert_eq!(m.accepted + m.refused_global + m.refused_per_ip, 3);
        assert!(m.peak <= 2);
    });
}

/// Without a per-address limit only the compare-and-swap guards the count: with a limit of one, racing threads
/// never hold two permits.
#[test]
fn loom_the_global_count_never_passes_the_limit() {
    ::loom::model(|| {
        let limiter = ConnectionLimiter::new(1);
        let live = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let (limiter, live) = (limiter.clone(), live.clone());
                thread::spawn(move || {
                    if let Ok(permit) = limiter.try_acquire(peer(i)) {
                        assert_eq!(
                            live.fetch_add(1, SeqCst),
                            0,
                            "two permits under a limit of one"
                        );
                        live.fetch_sub(1, SeqCst);
                        drop(permit);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let m = limiter.metrics();
        assert_eq!((m.active, m.accepted + m.refused_global), (0, 2));
        assert_eq!(m.peak, 1, "the first thread to try always gets in");
    });
}
