//! `conn::Group`: a fan-out that sends to writable members, skips and counts the others, and prunes closed ones.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use tidegate::conn::{BroadcastReport, Group, GroupMetrics, MemberId};
use tidegate::watermark::{self, CloseReason, Config, Limits, Receiver, Sender, WatermarkWriter};
use tidegate::MemoryBudget;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::timeout;

/// Every wait in these tests gives up after this.
const WAIT: Duration = Duration::from_secs(20);

#[test]
fn handles_are_send_sync_and_group_is_clone() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn clone<T: Clone>() {}
    send_sync::<Group>();
    send_sync::<MemberId>();
    send_sync::<GroupMetrics>();
    send_sync::<BroadcastReport>();
    clone::<Group>();
}

/// `(sent, skipped, refused, pruned)`.
fn parts(r: BroadcastReport) -> (usize, usize, usize, usize) {
    (r.sent, r.skipped, r.refused, r.pruned)
}

fn drain(rx: &mut Receiver<Bytes>) -> usize {
    let mut n = 0;
    while let Ok(Some(_)) = rx.try_recv() {
        n += 1;
    }
    n
}

fn config(low: usize, high: usize, hard: usize) -> Config {
    Config::builder()
        .limits(Limits::new(low, high, hard))
        .build()
}

/// Channels whose receivers the test drives, plus two writers over in-memory pipes whose peers never read: one
/// evicted for staying unwritable, one failing on a stalled write. Every count is scripted.
#[tokio::test(start_paused = true)]
async fn metrics_are_exact_for_a_scripted_scenario() {
    let frame = Bytes::from_static(b"0123456789");
    let group = Group::new();

    let (reader, mut reader_rx) = watermark::channel::<Bytes>(config(8, 16, 40));
    let (slow, mut slow_rx) = watermark::channel::<Bytes>(config(8, 16, 40));
    slow.try_send(Bytes::from(vec![0; 17])).unwrap(); // over high: unwritable
    let (full, _full_rx) = watermark::channel::<Bytes>(config(8, 16, 20));
    full.try_send(Bytes::from(vec![0; 12])).unwrap(); // writable, but 12 + 10 > hard
    let budget = MemoryBudget::new(5);
    let (over_budget, _over_rx) = watermark::channel::<Bytes>(
        Config::builder()
            .limits(Limits::new(8, 16, 40))
            .budget(Some(budget.clone()))
            .build(),
    );
    let (closed, _closed_rx) = watermark::channel::<Bytes>(config(8, 16, 40));
    let (gone, gone_rx) = watermark::channel::<Bytes>(config(8, 16, 40));

    group.add(reader.clone());
    group.add(slow.clone());
    let full_id = group.add(full.clone());
    group.add(over_budget.clone());
    group.add(closed.clone());
    group.add(gone);
    closed.close();
    drop(gone_rx);

    // Reader sent; slow skipped; full and over-budget refused (skipped); closed and gone pruned.
    assert_eq!(parts(group.broadcast(frame.clone())), (1, 3, 2, 2));
    assert_eq!(group.len(), 4);
    let m = group.metrics();
    assert_eq!(
        (m.queued_bytes, m.max_queued_bytes, m.unwritable_members),
        (10 + 17 + 12, 17, 1)
    );
    assert_eq!(
        (slow.pending_bytes(), full.pending_bytes()),
        (17, 12),
        "skipped members got nothing"
    );
    assert_eq!((over_budget.pending_bytes(), budget.used()), (0, 0));
    assert_eq!(
        full.metrics().refused,
        1,
        "the queue counted its own refusal"
    );
    assert_eq!((drain(&mut reader_rx), drain(&mut slow_rx)), (1, 1));

    // Slow drained to low: writable again, it gets the next frame.
    assert_eq!(parts(group.broadcast(frame.clone())), (2, 2, 2, 0));
    assert!(group.remove(full_id).is_some());
    assert!(group.remove(full_id).is_none(), "a removed id names nobody");
    assert_eq!((drain(&mut reader_rx), drain(&mut slow_rx)), (1, 1));

    let (client_a, _peer_a) = tokio::io::duplex(8);
    let (evicted, writer) = WatermarkWriter::builder()
        .limits(Limits::new(8, 16, 40))
        .evict_after(Some(Duration::from_secs(1)))
        .build(client_a);
    let evicted_task = writer.spawn();
    let (client_b, _peer_b) = tokio::io::duplex(8);
    let (stalled, writer) = WatermarkWriter::builder()
        .limits(Limits::new(1000, 2000, 4000))
        .stall_timeout(Some(Duration::from_secs(1)))
        .build(client_b);
    let stalled_task = writer.spawn();
    group.add(evicted.clone());
    group.add(stalled.clone());

    // No frame completes through an 8-byte pipe nobody reads, so the writers' queues count every frame.
    assert_eq!(parts(group.broadcast(frame.clone())), (4, 1, 1, 0));
    drain(&mut reader_rx);
    drain(&mut slow_rx);
    assert_eq!(parts(group.broadcast(frame.clone())), (4, 1, 1, 0));
    drain(&mut reader_rx);
    drain(&mut slow_rx);
    assert!(!evicted.is_writable(), "20 bytes > high");
    assert_eq!(parts(group.broadcast(frame.clone())), (3, 2, 1, 0));
    drain(&mut reader_rx);
    drain(&mut slow_rx);
    let m = group.metrics();
    assert_eq!(
        (
            m.members,
            m.queued_bytes,
            m.max_queued_bytes,
            m.unwritable_members
        ),
        (5, 20 + 30, 30, 1)
    );

    let evicted_reason = timeout(WAIT, evicted.closed()).await.unwrap();
    assert!(
        matches!(evicted_reason, CloseReason::Evicted { .. }),
        "{evicted_reason:?}"
    );
    let stalled_reason = timeout(WAIT, stalled.closed()).await.unwrap();
    assert!(
        matches!(stalled_reason, CloseReason::Stalled { .. }),
        "{stalled_reason:?}"
    );
    assert_eq!(parts(group.broadcast(frame.clone())), (2, 1, 1, 2));

    let m = group.metrics();
    let expected = (
        6,
        1 + 2 + 4 + 4 + 3 + 2,
        3 + 2 + 1 + 1 + 2 + 1,
        2 + 2 + 1 + 1 + 1 + 1,
    );
    assert_eq!((m.broadcasts, m.sent, m.skipped, m.refused), expected);
    assert_eq!(
        (m.pruned, m.pruned_closed, m.pruned_evicted, m.pruned_failed),
        (4, 2, 1, 1)
    );
    assert_eq!((m.added, m.removed, m.members), (8, 1, 3));
    assert_eq!(m.members as u64, m.added - m.removed - m.pruned);

    // Everyone leaves.
    for tx in [&reader, &slow, &over_budget] {
        tx.abort();
    }
    assert_eq!(group.prune(), 3);
    assert_eq!(group.prune(), 0);
    let m = group.metrics();
    assert_eq!((m.members, m.pruned_closed, m.queued_bytes), (0, 5, 0));
    timeout(WAIT, evicted_task).await.unwrap().unwrap();
    timeout(WAIT, stalled_task).await.unwrap().unwrap();
}

#[test]
fn one_frame_is_shared_by_every_member() {
    let group = Group::new();
    let mut receivers = Vec::new();
    for _ in 0..10 {
        let (tx, rx) = watermark::channel::<Bytes>(Default::default());
        group.add(tx);
        receivers.push(rx);
    }
    let frame = Bytes::from(vec![7u8; 1000]);
    let origin = frame.as_ptr();
    assert_eq!(group.broadcast(frame).sent, 10);
    for rx in &mut receivers {
        let got = rx.try_recv().unwrap().unwrap();
        assert_eq!(got.as_ptr(), origin, "a clone of the frame, not a copy");
    }
}

/// Broadcasts from several threads while members join, leave and close: the reports add up to the metrics, every
/// closed member is pruned exactly once, and the members present throughout got every frame.
#[test]
fn concurrent_broadcasts_adds_and_removes_add_up() {
    const THREADS: usize = 3;
    const ROUNDS: usize = 300;
    let group = Group::new();
    let mut receivers = Vec::new();
    for _ in 0..20 {
        let (tx, rx) = watermark::channel::<Bytes>(config(1 << 20, 1 << 20, 1 << 20));
        group.add(tx);
        receivers.push(rx);
    }
    let reports: Vec<Vec<BroadcastReport>> = std::thread::scope(|s| {
        let churn = s.spawn(|| {
            let mut kept = Vec::new();
            for i in 0..ROUNDS {
                let (tx, rx) = watermark::channel::<Bytes>(config(1 << 20, 1 << 20, 1 << 20));
                let id = group.add(tx);
                if i % 2 == 0 {
                    drop(rx); // leaves: pruned by some broadcast or the final prune
                } else {
                    kept.push((id, rx));
                }
                if i % 3 == 0 {
                    if let Some((id, rx)) = kept.pop() {
                        let tx = group.remove(id).expect("only this thread removes");
                        drop((tx, rx));
                    }
                }
            }
            kept
        });
        let broadcasters: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    (0..ROUNDS)
                        .map(|_| group.broadcast(Bytes::from_static(b"x")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let reports = broadcasters
            .into_iter()
            .map(|b| b.join().unwrap())
            .collect();
        receivers.extend(churn.join().unwrap().into_iter().map(|(_, rx)| rx));
        reports
    });
    let final_prune = group.prune();
    let m = group.metrics();
    let sum = |f: fn(&BroadcastReport) -> usize| -> u64 {
        reports.iter().flatten().map(|r| f(r) as u64).sum()
    };
    assert_eq!(m.broadcasts, (THREADS * ROUNDS) as u64);
    assert_eq!(m.sent, sum(|r| r.sent));
    assert_eq!(m.skipped, 0);
    assert_eq!(m.pruned, sum(|r| r.pruned) + final_prune as u64);
    assert_eq!(m.members as u64, m.added - m.removed - m.pruned);
    assert_eq!(m.members, receivers.len());
    assert_eq!(
        m.pruned,
        (ROUNDS / 2) as u64,
        "every departed member pruned exactly once"
    );
    // The frames still queued to present members, plus those the departed ones took with them, are all sent.
    let queued: u64 = receivers.iter_mut().map(|rx| drain(rx) as u64).sum();
    assert!(queued <= m.sent);
    assert!(
        queued >= (20 * THREADS * ROUNDS) as u64,
        "the 20 first members got every frame"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Loopback TCP: readers get every frame, stalled clients are skipped, evicted and pruned.

const FRAME_LEN: usize = 1024;
const READERS: usize = 3;
const STALLED: usize = 2;

fn frame(seq: u64, last: bool) -> Bytes {
    let mut buf = BytesMut::with_capacity(FRAME_LEN);
    buf.put_u64(seq);
    buf.put_u8(u8::from(last));
    buf.resize(FRAME_LEN, 0xAB);
    buf.freeze()
}

/// Reads frames until the one marked last, then leaves (drops the connection); returns their sequence numbers.
async fn read_until_last(mut stream: TcpStream) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut buf = [0u8; FRAME_LEN];
    loop {
        stream.read_exact(&mut buf).await.unwrap();
        assert!(buf[9..].iter().all(|&b| b == 0xAB), "frame body intact");
        seqs.push(u64::from_be_bytes(buf[..8].try_into().unwrap()));
        if buf[8] == 1 {
            return seqs;
        }
    }
}

/// A client connection with a small receive window (set before connecting), and the server's end of it.
async fn connect(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let (client, accepted) = tokio::join!(
        socket.connect(listener.local_addr().unwrap()),
        listener.accept()
    );
    let server = accepted.unwrap().0;
    socket2::SockRef::from(&server)
        .set_send_buffer_size(4096)
        .unwrap();
    (client.unwrap(), server)
}

/// The server's side of one fan: a writer for the write half, and a task that ends the queue when the client
/// leaves (EOF on the read half) or the writer gives up, and returns why the queue closed.
fn serve(
    group: &Group,
    stream: TcpStream,
) -> (Sender<Bytes>, tokio::task::JoinHandle<CloseReason>) {
    let (mut read, write) = stream.into_split();
    let (tx, writer) = WatermarkWriter::builder()
        .limits(Limits::new(4 * FRAME_LEN, 16 * FRAME_LEN, 64 * FRAME_LEN))
        .evict_after(Some(Duration::from_millis(500)))
        .stall_timeout(Some(Duration::from_secs(2)))
        .build(write);
    let writer = writer.spawn();
    group.add(tx.clone());
    let handle = tx.clone();
    let task = tokio::spawn(async move {
        let mut byte = [0u8; 1];
        tokio::select! {
            // The client left (clients here never send).
            _ = read.read(&mut byte) => handle.abort(),
            _ = handle.closed() => {}
        }
        timeout(WAIT, writer).await.unwrap().unwrap();
        handle.closed().await
    });
    (tx, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_get_every_frame_stalled_clients_are_skipped_evicted_and_pruned() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let group = Group::new();
    let mut reader_tasks = Vec::new();
    let mut reader_handles = Vec::new();
    let mut reasons = Vec::new();
    for _ in 0..READERS {
        let (client, server) = timeout(WAIT, connect(&listener)).await.unwrap();
        let (tx, reason) = serve(&group, server);
        reader_handles.push(tx);
        reasons.push(reason);
        reader_tasks.push(tokio::spawn(read_until_last(client)));
    }
    let mut stalled_clients = Vec::new();
    let mut stalled_reasons = Vec::new();
    for _ in 0..STALLED {
        let (client, server) = timeout(WAIT, connect(&listener)).await.unwrap();
        let (_tx, reason) = serve(&group, server);
        stalled_reasons.push(reason);
        stalled_clients.push(client); // never read
    }
    assert_eq!(group.len(), READERS + STALLED);

    // Push until both stalled clients are evicted and pruned; before each frame, wait until the readers'
    // queues are writable so that they never miss one.
    const MAX_FRAMES: u64 = 100_000;
    let started = tokio::time::Instant::now();
    let (mut seq, mut sent, mut skipped) = (0u64, 0u64, 0u64);
    while group.metrics().pruned_evicted < STALLED as u64 {
        assert!(
            seq < MAX_FRAMES && started.elapsed() < WAIT,
            "stalled clients not evicted"
        );
        for tx in &reader_handles {
            timeout(WAIT, tx.writable()).await.unwrap();
            assert!(!tx.is_closed());
        }
        let report = group.broadcast(frame(seq, false));
        assert!(report.sent >= READERS, "{report:?}");
        sent += report.sent as u64;
        skipped += report.skipped as u64;
        seq += 1;
        if seq % 16 == 0 {
            // Let time pass without flooding the readers: eviction is measured on the clock.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(group.len(), READERS);
    for reason in stalled_reasons {
        let reason = timeout(WAIT, reason).await.unwrap().unwrap();
        assert!(matches!(reason, CloseReason::Evicted { .. }), "{reason:?}");
    }
    for tx in &reader_handles {
        timeout(WAIT, tx.writable()).await.unwrap();
    }
    let last = group.broadcast(frame(seq, true));
    assert_eq!((last.sent, last.skipped, last.pruned), (READERS, 0, 0));
    sent += READERS as u64;
    seq += 1;

    for task in reader_tasks {
        let seqs = timeout(WAIT, task).await.unwrap().unwrap();
        assert_eq!(seqs, (0..seq).collect::<Vec<_>>(), "every frame, in order");
    }
    // The readers have left: their server tasks end the queues, and the group empties.
    for reason in reasons {
        let reason = timeout(WAIT, reason).await.unwrap().unwrap();
        assert!(matches!(reason, CloseReason::Aborted), "{reason:?}");
    }
    assert_eq!(group.prune(), READERS);
    let m = group.metrics();
    assert!(
        skipped > 0,
        "stalled clients were skipped before their eviction"
    );
    assert_eq!((m.members, m.queued_bytes), (0, 0));
    assert_eq!((m.broadcasts, m.sent, m.skipped), (seq, sent, skipped));
    assert_eq!(
        (m.pruned_evicted, m.pruned_closed, m.pruned_failed),
        (STALLED as u64, READERS as u64, 0)
    );
    drop(stalled_clients);
}

// ---------------------------------------------------------------------------------------------------------------
// A model: members are open or closed, with queued bytes and a writability flag under the marks below.

const LOW: usize = 8;
const HIGH: usize = 16;
const HARD: usize = 40;

#[derive(Debug, Clone)]
enum Op {
    Add,
    /// Removes the id issued `n`-th (modulo the ids issued so far, so old ids come up too).
    Remove(usize),
    Close(usize, Ending),
    /// Queues `bytes` through the member's own handle (if the hard cap allows).
    Fill(usize, usize),
    Drain(usize),
    Broadcast(usize),
    Prune,
}

#[derive(Debug, Clone, Copy)]
enum Ending {
    Graceful,
    Abort,
    DropReceiver,
}

fn ending() -> impl Strategy<Value = Ending> {
    prop_oneof![
        Just(Ending::Graceful),
        Just(Ending::Abort),
        Just(Ending::DropReceiver)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Add),
        1 => any::<usize>().prop_map(Op::Remove),
        1 => (any::<usize>(), ending()).prop_map(|(i, how)| Op::Close(i, how)),
        2 => (any::<usize>(), 1..=HARD).prop_map(|(i, n)| Op::Fill(i, n)),
        2 => any::<usize>().prop_map(Op::Drain),
        4 => (1..=HARD).prop_map(Op::Broadcast),
        1 => Just(Op::Prune),
    ]
}

#[derive(Debug, Default, Clone, Copy)]
struct ModelMember {
    bytes: usize,
    unwritable: bool,
    closed: bool,
}

impl ModelMember {
    /// Mirrors the queue: refuse past hard, turn unwritable past high.
    fn push(&mut self, n: usize) -> bool {
        if self.closed || self.bytes + n > HARD {
            return false;
        }
        self.bytes += n;
        self.unwritable |= self.bytes > HIGH;
        true
    }
}

struct Real {
    tx: Sender<Bytes>,
    rx: Option<Receiver<Bytes>>,
}

fn run_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let group = Group::new();
    let mut ids: Vec<MemberId> = Vec::new();
    // Indexed like `ids`: the real handles, and the model for the ones still in the group.
    let mut real: Vec<Real> = Vec::new();
    let mut model: HashMap<usize, ModelMember> = HashMap::new();
    let (mut broadcasts, mut sent, mut skipped, mut refused) = (0u64, 0u64, 0u64, 0u64);
    let (mut added, mut removed, mut pruned) = (0u64, 0u64, 0u64);
    let prune_model = |model: &mut HashMap<usize, ModelMember>| {
        let before = model.len();
        model.retain(|_, m| !m.closed);
        before - model.len()
    };
    for op in ops {
        let pick = |n: usize| (!real.is_empty()).then(|| n % real.len());
        match op {
            Op::Add => {
                let (tx, rx) = watermark::channel::<Bytes>(config(LOW, HIGH, HARD));
                ids.push(group.add(tx.clone()));
                real.push(Real { tx, rx: Some(rx) });
                model.insert(real.len() - 1, ModelMember::default());
                added += 1;
            }
            Op::Remove(n) => {
                let Some(i) = pick(n) else { continue };
                let got = group.remove(ids[i]);
                let expected = model.remove(&i);
                prop_assert_eq!(got.is_some(), expected.is_some());
                removed += u64::from(expected.is_some());
            }
            Op::Close(n, how) => {
                let Some(i) = pick(n) else { continue };
                match how {
                    Ending::Graceful => real[i].tx.close(),
                    Ending::Abort => real[i].tx.abort(),
                    Ending::DropReceiver => drop(real[i].rx.take()),
                }
                if let Some(m) = model.get_mut(&i) {
                    m.closed = true;
                    // Abort and a dropped receiver discard what was queued: 0 <= low, writable.
                    if !matches!(how, Ending::Graceful) {
                        m.bytes = 0;
                        m.unwritable = false;
                    }
                }
            }
            Op::Fill(n, bytes) => {
                let Some(i) = pick(n) else { continue };
                let ok = real[i].tx.try_send(Bytes::from(vec![0; bytes])).is_ok();
                if let Some(m) = model.get_mut(&i) {
                    prop_assert_eq!(ok, m.push(bytes));
                }
            }
            Op::Drain(n) => {
                let Some(i) = pick(n) else { continue };
                if let Some(rx) = &mut real[i].rx {
                    drain(rx);
                    if let Some(m) = model.get_mut(&i) {
                        m.bytes = 0;
                        m.unwritable = false; // 0 <= low
                    }
                }
            }
            Op::Broadcast(len) => {
                let r = group.broadcast(Bytes::from(vec![1; len]));
                let mut expected = BroadcastReport::default();
                for m in model.values_mut() {
                    if m.closed {
                        continue;
                    } else if m.unwritable {
                        expected.skipped += 1;
                    } else if m.push(len) {
                        expected.sent += 1;
                    } else {
                        expected.skipped += 1;
                        expected.refused += 1;
                    }
                }
                expected.pruned = prune_model(&mut model);
                prop_assert_eq!(r, expected);
                broadcasts += 1;
                sent += r.sent as u64;
                skipped += r.skipped as u64;
                refused += r.refused as u64;
                pruned += r.pruned as u64;
            }
            Op::Prune => {
                let n = group.prune();
                prop_assert_eq!(n, prune_model(&mut model));
                pruned += n as u64;
            }
        }
        prop_assert_eq!(group.len(), model.len());
        let m = group.metrics();
        prop_assert_eq!(
            (m.broadcasts, m.sent, m.skipped, m.refused),
            (broadcasts, sent, skipped, refused)
        );
        prop_assert_eq!((m.added, m.removed, m.pruned), (added, removed, pruned));
        prop_assert_eq!(m.pruned_closed, pruned);
        prop_assert_eq!(
            m.queued_bytes,
            model.values().map(|m| m.bytes).sum::<usize>()
        );
        prop_assert_eq!(
            m.max_queued_bytes,
            model.values().map(|m| m.bytes).max().unwrap_or(0)
        );
        prop_assert_eq!(
            m.unwritable_members,
            model.values().filter(|m| m.unwritable).count()
        );
        for (&i, m) in &model {
            prop_assert_eq!(real[i].tx.pending_bytes(), m.bytes);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn group_matches_a_model(ops in proptest::collection::vec(op(), 1..80)) {
        run_model(ops)?;
    }
}
