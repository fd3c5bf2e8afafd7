//! Behaviour of `tidegate::conn::ConnectionLimiter`: exact counting against a model, per-address limits, live
//! limit changes, RAII release across threads.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};

use proptest::prelude::*;
use tidegate::conn::{ConnectionLimiter, ConnectionPermit, LimitError, LimiterMetrics};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn limiter_types_are_send_and_sync() {
    assert_send_sync::<ConnectionLimiter>();
    assert_send_sync::<ConnectionPermit>();
    assert_send_sync::<LimitError>();
    assert_send_sync::<LimiterMetrics>();
}

fn addr(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

const V4_A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const V4_B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
/// `::ffff:192.0.2.1`: a dual-stack listener's view of `V4_A`.
const MAPPED_A: IpAddr = IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201));
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
const PEERS: [IpAddr; 4] = [V4_A, V4_B, MAPPED_A, V6];

#[derive(Debug, Clone)]
enum Op {
    Acquire(usize),
    Release(usize),
    SetLimit(usize),
    SetPerIp(Option<usize>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..PEERS.len()).prop_map(Op::Acquire),
        3 => any::<usize>().prop_map(Op::Release),
        1 => (0usize..6).prop_map(Op::SetLimit),
        1 => proptest::option::of(0usize..4).prop_map(Op::SetPerIp),
    ]
}

/// What the limiter should do, written the obvious way.
#[derive(Debug, Default)]
struct Model {
    limit: usize,
    per_ip_limit: Option<usize>,
    per_ip: HashMap<IpAddr, usize>,
    /// Held permits: the canonical address and whether it counts per address.
    held: Vec<(IpAddr, bool)>,
    peak: usize,
    accepted: u64,
    refused_global: u64,
    refused_per_ip: u64,
}

fn canonical(ip: IpAddr) -> IpAddr {
    if ip == MAPPED_A {
        V4_A
    } else {
        ip
    }
}

impl Model {
    fn acquire(&mut self, ip: IpAddr) -> Result<bool, LimitError> {
        let ip = canonical(ip);
        let active = self.held.len();
        if active >= self.limit {
            self.refused_global += 1;
            return Err(LimitError::Global {
                active,
                limit: self.limit,
            });
        }
        let counted = match self.per_ip_limit {
            None => false,
            Some(limit) => {
                let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
                if from_ip >= limit {
                    self.refused_per_ip += 1;
                    return Err(LimitError::PerIp {
                        ip,
                        active: from_ip,
                        limit,
                    });
                }
                *self.per_ip.entry(ip).or_insert(0) += 1;
                true
            }
        };
        self.held.push((ip, counted));
        self.peak = self.peak.max(self.held.len());
        self.accepted += 1;
        Ok(counted)
    }

    fn release(&mut self, index: usize) {
        let (ip, counted) = self.held.remove(index);
        if counted {
            let count = self.per_ip.get_mut(&ip).unwrap();
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    fn metrics(&self) -> (usize, usize, u64, u64, u64, usize, Option<usize>, usize) {
        (
            self.held.len(),
            self.peak,
            self.accepted,
            self.refused_global,
            self.refused_per_ip,
            self.limit,
            self.per_ip_limit,
            self.per_ip.len(),
        )
    }
}

fn observed(m: &LimiterMetrics) -> (usize, usize, u64, u64, u64, usize, Option<usize>, usize) {
    (
        m.active,
        m.peak,
        m.accepted,
        m.refused_global,
        m.refused_per_ip,
        m.limit,
        m.per_ip_limit,
        m.tracked_ips,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any sequence of admissions, releases and live limit changes: every answer, every error's numbers and every
    /// counter match the model, and once all permits are dropped nothing is left, not even a map entry.
    #[test]
    fn limiter_matches_the_model(initial in 0usize..5, ops in proptest::collection::vec(op(), 0..80)) {
        let limiter = ConnectionLimiter::new(initial);
        let mut model = Model { limit: initial, ..Model::default() };
        let mut held: Vec<ConnectionPermit> = Vec::new();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Acquire(i) => {
                    let peer = addr(PEERS[i], 1000 + step as u16);
                    let got = limiter.try_acquire(peer);
                    let want = model.acquire(PEERS[i]);
                    match (got, want) {
                        (Ok(permit), Ok(counted)) => {
                            prop_assert_eq!(permit.peer(), peer);
                            prop_assert_eq!(permit.counted_per_ip(), counted);
                            held.push(permit);
                        }
                        (Err(got), Err(want)) => prop_assert_eq!(got, want),
                        (got, want) => prop_assert!(false, "step {step}: got {got:?}, model {want:?}"),
                    }
                }
                Op::Release(i) if !held.is_empty() => {
                    let i = i % held.len();
                    drop(held.remove(i));
                    model.release(i);
                }
                Op::Release(_) => {}
                Op::SetLimit(n) => {
                    limiter.set_limit(n);
                    model.limit = n;
                }
                Op::SetPerIp(n) => {
                    limiter.set_per_ip_limit(n);
                    model.per_ip_limit = n;
                }
            }
            prop_assert_eq!(observed(&limiter.metrics()), model.metrics(), "after step {}", step);
            prop_assert_eq!(limiter.active(), held.len());
        }
        held.clear();
        let m = limiter.metrics();
        prop_assert_eq!((m.active, m.tracked_ips), (0, 0));
        prop_assert_eq!(m.peak, model.peak);
    }
}

#[test]
fn lowering_the_limit_keeps_live_connections_and_refuses_until_under_it() {
    let limiter = ConnectionLimiter::new(3);
    let mut held: Vec<_> = (0..3)
        .map(|port| limiter.try_acquire(addr(V4_A, port)).unwrap())
        .collect();
    limiter.set_limit(1);
    assert_eq!(limiter.active(), 3, "lowering cuts nothing");
    assert_eq!(
        limiter.try_acquire(addr(V4_B, 9)).unwrap_err(),
        LimitError::Global {
            active: 3,
            limit: 1
        }
    );
    held.pop();
    held.pop();
    assert!(
        limiter.try_acquire(addr(V4_B, 9)).is_err(),
        "1 live, limit 1"
    );
    held.pop();
    let again = limiter.try_acquire(addr(V4_B, 9)).unwrap();
    assert_eq!(limiter.metrics().refused_global, 2);
    drop(again);
    assert_eq!(limiter.active(), 0);
}

#[test]
fn a_per_ip_limit_set_live_counts_connections_admitted_from_then_on() {
    let limiter = ConnectionLimiter::new(100);
    let before: Vec<_> = (0..5)
        .map(|port| limiter.try_acquire(addr(V4_A, port)).unwrap())
        .collect();
    assert!(before.iter().all(|p| !p.counted_per_ip()));
    assert_eq!(
        limiter.metrics().tracked_ips,
        0,
        "no map work without a per-address limit"
    );

    limiter.set_per_ip_limit(Some(1));
    let counted = limiter.try_acquire(addr(V4_A, 10)).unwrap();
    assert!(counted.counted_per_ip());
    assert!(matches!(
        limiter.try_acquire(addr(V4_A, 11)),
        Err(LimitError::PerIp {
            active: 1,
            limit: 1,
            ..
        })
    ));
    drop(before); // not counted per address: the address stays at its limit
    assert!(limiter.try_acquire(addr(V4_A, 12)).is_err());

    // Removing the limit live: a counted permit still leaves the map when dropped.
    limiter.set_per_ip_limit(None);
    let uncounted = limiter.try_acquire(addr(V4_A, 13)).unwrap();
    drop(counted);
    assert_eq!(limiter.metrics().tracked_ips, 0);
    drop(uncounted);
    assert_eq!(limiter.active(), 0);
}

#[test]
fn ipv4_mapped_peers_share_their_ipv4_address_count() {
    let limiter = ConnectionLimiter::new(10);
    limiter.set_per_ip_limit(Some(1));
    let _v4 = limiter.try_acquire(addr(V4_A, 1)).unwrap();
    assert_eq!(
        limiter.try_acquire(addr(MAPPED_A, 2)).unwrap_err(),
        LimitError::PerIp {
            ip: V4_A,
            active: 1,
            limit: 1
        }
    );
}

#[test]
fn a_limit_of_zero_refuses_everything_until_raised() {
    let limiter = ConnectionLimiter::new(0);
    assert!(limiter.try_acquire(addr(V4_A, 1)).is_err());
    limiter.set_limit(1);
    let _p = limiter.try_acquire(addr(V4_A, 1)).unwrap();
}

#[test]
fn refusals_carry_their_numbers_in_text_and_io_errors() {
    let global = LimitError::Global {
        active: 7,
        limit: 5,
    };
    assert_eq!(
        global.to_string(),
        "connection limit reached: 7 live connections, limit 5"
    );
    let per_ip = LimitError::PerIp {
        ip: V4_B,
        active: 3,
        limit: 3,
    };
    assert!(per_ip.is_per_ip() && !global.is_per_ip());
    assert!(per_ip.to_string().contains("192.0.2.2"));
    let io: std::io::Error = per_ip.clone().into();
    assert_eq!(io.kind(), std::io::ErrorKind::Other);
    assert_eq!(
        io.get_ref().unwrap().downcast_ref::<LimitError>(),
        Some(&per_ip)
    );
}

#[test]
fn debug_output_shows_the_numbers() {
    let limiter = ConnectionLimiter::new(4);
    let permit = limiter.try_acquire(addr(V4_A, 80)).unwrap();
    let text = format!("{limiter:?} {permit:?}");
    assert!(
        text.contains("active: 1") && text.contains("limit: 4"),
        "{text}"
    );
    assert!(text.contains("192.0.2.1:80"), "{text}");
}

/// Threads racing to admit and release never push the count past the limit (checked by a counter of their own);
/// afterwards everything is back to zero. Without a per-address limit only the compare-and-swap guards the count;
/// with one, half of the threads share an address whose limit is checked too.
#[test]
fn racing_threads_never_exceed_the_limits_and_leave_nothing_behind() {
    race(None);
    race(Some(1));
}

fn race(per_ip: Option<usize>) {
    const THREADS: usize = 8;
    const ROUNDS: usize = 2_000;
    const LIMIT: usize = 3;
    let limiter = ConnectionLimiter::new(LIMIT);
    limiter.set_per_ip_limit(per_ip);
    let live = Arc::new(AtomicUsize::new(0));
    let live_max = Arc::new(AtomicUsize::new(0));
    let live_a = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (limiter, live, live_max, live_a, barrier) = (
                limiter.clone(),
                live.clone(),
                live_max.clone(),
                live_a.clone(),
                barrier.clone(),
            );
            std::thread::spawn(move || {
                // Even threads share one address; odd threads each have their own.
                let ip = if t % 2 == 0 {
                    V4_A
                } else {
                    IpAddr::V4(Ipv4Addr::new(10, 0, 0, t as u8))
                };
                barrier.wait();
                let mut admitted = 0u64;
                for round in 0..ROUNDS {
                    if let Ok(permit) = limiter.try_acquire(addr(ip, round as u16)) {
                        admitted += 1;
                        let now = live.fetch_add(1, SeqCst) + 1;
                        live_max.fetch_max(now, SeqCst);
                        let from_a = if ip == V4_A {
                            live_a.fetch_add(1, SeqCst) + 1
                        } else {
                            0
                        };
                        if let Some(per_ip) = per_ip {
                            assert!(from_a <= per_ip, "per-address limit broken");
                        }
                        std::thread::yield_now(); // hold the slot across a reschedule
                        if ip == V4_A {
                            live_a.fetch_sub(1, SeqCst);
                        }
                        live.fetch_sub(1, SeqCst);
                        drop(permit);
                    }
                }
                admitted
            })
        })
        .collect();
    let admitted: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let m = limiter.metrics();
    assert!(
        live_max.load(SeqCst) <= LIMIT,
        "{per_ip:?}: {} live",
        live_max.load(SeqCst)
    );
    assert!(m.peak <= LIMIT);
    assert_eq!(m.accepted, admitted);
    assert_eq!(
        m.accepted + m.refused_global + m.refused_per_ip,
        (THREADS * ROUNDS) as u64
    );
    assert_eq!((m.active, m.tracked_ips), (0, 0));
}
