//! Behaviour of `tidegate::exec::BoundedExecutor`: bounds, lossless refusal, keyed order, shutdown, panics,
//! metrics and cancel safety.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidegate::exec::{BoundedExecutor, BuildError, SpawnError, TaskError};
use tokio::sync::watch;
use tokio::time::{sleep, Instant};

/// Tracks how many tasks run at once and the most ever seen.
#[derive(Default)]
struct Concurrency {
    now: AtomicUsize,
    max: AtomicUsize,
    started: AtomicUsize,
}

impl Concurrency {
    fn enter(&self) {
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(now, SeqCst);
        self.started.fetch_add(1, SeqCst);
    }
    fn exit(&self) {
        self.now.fetch_sub(1, SeqCst);
    }
}

/// Counts drops, to prove a refused future (and what it owns) is neither run nor lost.
struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

/// Polls `cond` until it holds; fails the test (instead of hanging it) if it does not within 10 s.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let poll = async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .is_err()
    {
        panic!("timed out waiting until {what}");
    }
}

/// A reusable rendezvous of two threads that gives up after a timeout instead of hanging: the blocking pool
/// cannot be cancelled, so a blocking closure must never wait without bound.
#[derive(Default)]
struct Pair {
    state: Mutex<(usize, u64)>, // (arrived in this round, round)
    met: std::sync::Condvar,
}

impl Pair {
    /// Returns whether a partner arrived within a few seconds.
    fn meet(&self) -> bool {
        let mut state = self.state.lock().unwrap();
        let round = state.1;
        state.0 += 1;
        if state.0 == 2 {
            *state = (0, round + 1);
            self.met.notify_all();
            return true;
        }
        let (state, timeout) = self
            .met
            .wait_timeout_while(state, Duration::from_secs(5), |s| s.1 == round)
            .unwrap();
        drop(state);
        !timeout.timed_out()
    }
}

fn assert_idle(exec: &BoundedExecutor) {
    let m = exec.metrics();
    assert_eq!(
        (m.in_flight, m.running, m.pending, m.active_keys),
        (0, 0, 0, 0),
        "{m:?}"
    );
    assert_eq!(
        m.admitted,
        m.completed + m.panicked + m.aborted + m.never_started,
        "{m:?}"
    );
}

#[tokio::test]
async fn submission_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let exec = BoundedExecutor::new(1, 1);
    let spawn = exec.spawn(async {});
    assert_send(&spawn);
    assert_send(&exec.spawn_keyed(1u8, async {}));
    assert_send(&exec.spawn_timeout(async {}, Duration::from_secs(1)));
    assert_send(&exec.spawn_blocking(|| ()));
    assert_send(&exec.shutdown(Instant::now()));
    spawn.await.unwrap().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flood_of_try_spawn_admits_exactly_the_limits() {
    const MAX_C: usize = 4;
    const MAX_P: usize = 8;
    let exec = BoundedExecutor::new(MAX_C, MAX_P);
    let conc = Arc::new(Concurrency::default());
    let (open, gate) = watch::channel(false);
    let handles = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut submitters = Vec::new();
    for _ in 0..8 {
        let (exec, conc, gate, handles, refused) = (
            exec.clone(),
            conc.clone(),
            gate.clone(),
            handles.clone(),
            refused.clone(),
        );
        submitters.push(tokio::spawn(async move {
            for _ in 0..100 {
                let (conc, mut gate) = (conc.clone(), gate.clone());
                let task = async move {
                    conc.enter();
                    gate.wait_for(|open| *open).await.unwrap();
                    conc.exit();
                };
                match exec.try_spawn(task) {
                    Ok(h) => handles.lock().unwrap().push(h),
                    Err(SpawnError::Full {
                        in_flight, limit, ..
                    }) => {
                        assert_eq!((in_flight, limit), (MAX_C + MAX_P, MAX_C + MAX_P));
                        refused.fetch_add(1, SeqCst);
                    }
                    Err(other) => panic!("unexpected refusal {other:?}"),
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for s in submitters {
        s.await.unwrap();
    }
    wait_until("max_concurrency tasks started", || {
        conc.started.load(SeqCst) == MAX_C && exec.metrics().running == MAX_C
    })
    .await;
    settle().await;
    // Nothing finished, so exactly max_concurrency run and exactly max_pending wait.
    assert_eq!(handles.lock().unwrap().len(), MAX_C + MAX_P);
    assert_eq!(refused.load(SeqCst), 800 - MAX_C - MAX_P);
    assert_eq!(conc.started.load(SeqCst), MAX_C);
    let m = exec.metrics();
    assert_eq!((m.running, m.pending, m.refused), (MAX_C, MAX_P, 800 - 12));
    open.send(true).unwrap();
    let handles = std::mem::take(&mut *handles.lock().unwrap());
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(conc.max.load(SeqCst), MAX_C);
    assert_eq!(conc.started.load(SeqCst), MAX_C + MAX_P);
    assert_idle(&exec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flood_of_awaiting_spawn_never_exceeds_max_concurrency() {
    const MAX_C: usize = 3;
    let exec = BoundedExecutor::new(MAX_C, 5);
    let conc = Arc::new(Concurrency::default());
    let mut submitters = Vec::new();
    for s in 0..8 {
        let (exec, conc) = (exec.clone(), conc.clone());
        submitters.push(tokio::spawn(async move {
            let mut handles = Vec::new();
            for i in 0..200usize {
                let conc = conc.clone();
                let h = exec
                    .spawn(async move {
                        conc.enter();
                        for _ in 0..(i + s) % 4 {
                            tokio::task::yield_now().await;
                        }
                        conc.exit();
                    })
                    .await
                    .unwrap();
                handles.push(h);
                // Inside the bound, checked by the executor's own counter from the outside.
                assert!(exec.metrics().in_flight <= MAX_C + 5);
            }
            for h in handles {
                h.await.unwrap();
            }
        }));
    }
    for s in submitters {
        s.await.unwrap();
    }
    assert!(conc.max.load(SeqCst) <= MAX_C);
    assert_eq!(conc.started.load(SeqCst), 1600);
    let m = exec.metrics();
    assert_eq!((m.admitted, m.completed, m.refused), (1600, 1600, 0));
    assert!(m.peak_pending <= MAX_C + 5, "{m:?}");
    assert_idle(&exec);
}

#[tokio::test]
async fn refused_future_comes_back_intact_and_runs_elsewhere() {
    let exec = BoundedExecutor::new(1, 0);
    let busy = exec.try_spawn(std::future::pending::<()>()).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let owned = DropCount(drops.clone());
    let payload = String::from("kept");
    let err = exec
        .try_spawn(async move {
            let _owned = owned;
            payload.len()
        })
        .unwrap_err();
    assert!(err.to_string().contains("limit 1"), "{err}");
    assert_eq!(drops.load(SeqCst), 0, "a refused future is not dropped");
    let output = tokio::spawn(err.into_inner()).await.unwrap();
    assert_eq!(output, 4);
    assert_eq!(drops.load(SeqCst), 1);

    let closure = exec.try_spawn_blocking(|| 7).unwrap_err().into_inner();
    assert_eq!(closure(), 7);
    assert_eq!(exec.metrics().refused, 2);
    busy.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyed_tasks_keep_submission_order_under_concurrent_submitters() {
    const KEYS: usize = 4;
    let exec = BoundedExecutor::new(8, 1000);
    // The submission order is defined as the order of successful admissions under this lock.
    let submitted: Arc<Mutex<Vec<Vec<usize>>>> = Arc::new(Mutex::new(vec![Vec::new(); KEYS]));
    let executed: Arc<Mutex<Vec<Vec<usize>>>> = Arc::new(Mutex::new(vec![Vec::new(); KEYS]));
    let per_key: Arc<Vec<AtomicUsize>> = Arc::new((0..KEYS).map(|_| AtomicUsize::new(0)).collect());
    let mut submitters = Vec::new();
    for s in 0..6usize {
        let (exec, submitted, executed, per_key) = (
            exec.clone(),
            submitted.clone(),
            executed.clone(),
            per_key.clone(),
        );
        submitters.push(tokio::spawn(async move {
            let mut handles = Vec::new();
            for i in 0..60usize {
                let key = (i * 7 + s) % KEYS;
                let id = s * 1000 + i;
                let (executed, per_key) = (executed.clone(), per_key.clone());
                let task = async move {
                    assert_eq!(
                        per_key[key].fetch_add(1, SeqCst),
                        0,
                        "two tasks of key {key} at once"
                    );
                    tokio::task::yield_now().await;
                    executed.lock().unwrap()[key].push(id);
                    per_key[key].fetch_sub(1, SeqCst);
                };
                {
                    let mut order = submitted.lock().unwrap();
                    handles.push(exec.try_spawn_keyed(key, task).unwrap());
                    order[key].push(id);
                }
                tokio::task::yield_now().await;
            }
            for h in handles {
                h.await.unwrap();
            }
        }));
    }
    for s in submitters {
        s.await.unwrap();
    }
    assert_eq!(*executed.lock().unwrap(), *submitted.lock().unwrap());
    assert_idle(&exec);
}

#[tokio::test]
async fn different_keys_run_in_parallel() {
    let exec = BoundedExecutor::new(4, 4);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let blocked = exec
        .try_spawn_keyed("a", async move { rx.await.unwrap() })
        .unwrap();
    let behind = exec.try_spawn_keyed("a", async { "a2" }).unwrap();
    let other = exec.try_spawn_keyed("b", async { "b" }).unwrap();
    assert_eq!(other.await.unwrap(), "b");
    settle().await;
    assert!(!behind.is_finished(), "same key waits for its predecessor");
    tx.send(()).unwrap();
    blocked.await.unwrap();
    assert_eq!(behind.await.unwrap(), "a2");
    assert_idle(&exec);
}

#[tokio::test]
async fn cancelling_a_keyed_task_before_its_turn_keeps_the_line_in_order() {
    let exec = BoundedExecutor::new(4, 4);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = Arc::new(AtomicUsize::new(0));
    let first = {
        let running = running.clone();
        exec.try_spawn_keyed(1, async move {
            running.fetch_add(1, SeqCst);
            rx.await.unwrap();
            running.fetch_sub(1, SeqCst);
        })
        .unwrap()
    };
    let second = exec
        .try_spawn_keyed(1, async { unreachable!("cancelled before its turn") })
        .unwrap();
    let third = {
        let running = running.clone();
        exec.try_spawn_keyed(1, async move { running.load(SeqCst) })
            .unwrap()
    };
    settle().await;
    second.abort();
    assert!(second.await.unwrap_err().is_cancelled());
    settle().await;
    assert!(
        !third.is_finished(),
        "the third must still wait for the first"
    );
    tx.send(()).unwrap();
    first.await.unwrap();
    assert_eq!(
        third.await.unwrap(),
        0,
        "the third ran after the first finished"
    );
    settle().await;
    assert_idle(&exec);
}

#[tokio::test(start_paused = true)]
async fn shutdown_reports_exact_counts() {
    let exec = BoundedExecutor::new(2, 3);
    let a = exec.try_spawn(sleep(Duration::from_millis(10))).unwrap(); // runs, completes
    let b = exec.try_spawn(sleep(Duration::from_secs(3600))).unwrap(); // runs, aborted
    let c = exec.try_spawn(sleep(Duration::from_millis(5))).unwrap(); // waits, then completes
    let d = exec.try_spawn(sleep(Duration::from_secs(3600))).unwrap(); // waits, runs, aborted
    let e = exec.try_spawn(async { "never" }).unwrap(); // waits behind b and d: never starts
    let report = exec.shutdown(Instant::now() + Duration::from_secs(1)).await;
    assert_eq!(
        (
            report.completed,
            report.panicked,
            report.aborted,
            report.never_started
        ),
        (2, 0, 2, 1)
    );
    assert_eq!(report.detached, 0);
    assert!(a.await.is_ok() && c.await.is_ok());
    for h in [b, d] {
        assert!(matches!(h.await, Err(TaskError::Cancelled)));
    }
    assert!(e.await.unwrap_err().is_cancelled());
    assert!(matches!(
        exec.try_spawn(async {}),
        Err(SpawnError::Closed { .. })
    ));
    assert!(matches!(
        exec.spawn(async {}).await,
        Err(SpawnError::Closed { .. })
    ));
    assert_idle(&exec);
}

#[tokio::test(start_paused = true)]
async fn shutdown_before_deadline_when_work_finishes() {
    let exec = BoundedExecutor::new(1, 1);
    let waiter = {
        let exec = exec.clone();
        tokio::spawn(async move {
            // Waits for room; shutdown must wake it with Closed.
            // `sleep` fixes its deadline when created, so create it when the task runs.
            let _first = exec
                .try_spawn(async { sleep(Duration::from_millis(20)).await })
                .unwrap();
            let _second = exec
                .try_spawn(async { sleep(Duration::from_millis(20)).await })
                .unwrap();
            exec.spawn(async {}).await.map(|_| ())
        })
    };
    settle().await;
    let start = Instant::now();
    let report = exec.shutdown(start + Duration::from_secs(10)).await;
    assert_eq!(
        (report.completed, report.aborted, report.never_started),
        (2, 0, 0)
    );
    assert_eq!(start.elapsed(), Duration::from_millis(40));
    assert!(matches!(
        waiter.await.unwrap(),
        Err(SpawnError::Closed { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_release_their_slots() {
    let exec = BoundedExecutor::new(1, 0);
    for i in 0..50 {
        let h = exec
            .try_spawn(async move { panic!("boom {i}") })
            .expect("the slot came back");
        let err = h.await.unwrap_err();
        assert!(err.is_panic());
        assert!(err.to_string().contains(&format!("boom {i}")), "{err}");
    }
    let h = exec.try_spawn_blocking(|| panic!("blocking boom")).unwrap();
    assert!(h.await.unwrap_err().is_panic());
    assert_eq!(exec.try_spawn(async { 1 }).unwrap().await.unwrap(), 1);
    let m = exec.metrics();
    assert_eq!((m.panicked, m.completed), (51, 1));
    assert_idle(&exec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_return_to_zero_after_a_mixed_workload() {
    let exec = BoundedExecutor::new(2, 64);
    let mut handles = Vec::new();
    for i in 0..40u64 {
        let h = match i % 4 {
            0 => exec.try_spawn(async move { i }).unwrap(),
            1 => exec
                .try_spawn_keyed(i % 3, async move {
                    tokio::task::yield_now().await;
                    i
                })
                .unwrap(),
            2 => exec.try_spawn_blocking(move || i).unwrap(),
            _ => exec
                .try_spawn(async move {
                    sleep(Duration::from_millis(1)).await;
                    i
                })
                .unwrap(),
        };
        handles.push(h);
    }
    let aborted = exec.try_spawn(std::future::pending::<u64>()).unwrap();
    aborted.abort();
    let sum: u64 = futures_util::future::join_all(handles)
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    assert_eq!(sum, (0..40).sum());
    assert!(aborted.await.unwrap_err().is_cancelled());
    let m = exec.metrics();
    assert_eq!(m.admitted, 41);
    assert_eq!(m.completed, 40);
    assert_eq!(m.aborted + m.never_started, 1);
    assert_idle(&exec);
}

#[tokio::test(start_paused = true)]
async fn cancelled_awaiting_spawn_admits_nothing() {
    let exec = BoundedExecutor::new(1, 0);
    let busy = exec.try_spawn(std::future::pending::<()>()).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let (owned, ran2) = (DropCount(drops.clone()), ran.clone());
    let wait = exec.spawn(async move {
        let _owned = owned;
        ran2.fetch_add(1, SeqCst);
    });
    assert!(tokio::time::timeout(Duration::from_millis(10), wait)
        .await
        .is_err());
    let keyed = exec.spawn_keyed("k", async {});
    assert!(tokio::time::timeout(Duration::from_millis(10), keyed)
        .await
        .is_err());
    let blocking = exec.spawn_blocking(|| ());
    assert!(tokio::time::timeout(Duration::from_millis(10), blocking)
        .await
        .is_err());
    assert_eq!(
        drops.load(SeqCst),
        1,
        "the cancelled wait dropped the future unrun"
    );
    assert_eq!(ran.load(SeqCst), 0);
    let m = exec.metrics();
    assert_eq!(
        (m.admitted, m.in_flight, m.refused, m.active_keys),
        (1, 1, 0, 0)
    );
    busy.abort();
    settle().await;
    // The key took no place in line: a new task with that key runs at once.
    exec.try_spawn_keyed("k", async {}).unwrap().await.unwrap();
    assert_idle(&exec);
}

#[tokio::test(start_paused = true)]
async fn spawn_timeout_gives_the_future_back_or_admits_in_time() {
    let exec = BoundedExecutor::new(1, 0);
    let busy = exec.try_spawn(sleep(Duration::from_millis(100))).unwrap();
    let start = Instant::now();
    let err = exec
        .spawn_timeout(async { 5 }, Duration::from_millis(30))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SpawnError::TimedOut { timeout, .. } if timeout == Duration::from_millis(30))
    );
    assert_eq!(start.elapsed(), Duration::from_millis(30));
    assert_eq!(err.into_inner().await, 5);
    let h = exec
        .spawn_timeout(async { 6 }, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(h.await.unwrap(), 6);
    busy.await.unwrap();
    assert_eq!(exec.metrics().refused, 1);
}

#[tokio::test(start_paused = true)]
async fn load_shedding_refuses_when_the_oldest_pending_task_is_too_old() {
    let exec = BoundedExecutor::builder()
        .max_concurrency(1)
        .max_pending(10)
        .shed_after(Some(Duration::from_millis(100)))
        .build()
        .unwrap();
    let busy = exec.try_spawn(sleep(Duration::from_secs(1))).unwrap();
    let queued = exec.try_spawn(async {}).unwrap();
    settle().await;
    sleep(Duration::from_millis(50)).await;
    let young = exec
        .try_spawn(async {})
        .expect("oldest waited 50ms, under the limit");
    sleep(Duration::from_millis(100)).await;
    match exec.try_spawn(async { 9 }) {
        Err(SpawnError::Overloaded {
            task,
            oldest_pending,
            limit,
        }) => {
            assert_eq!(oldest_pending, Duration::from_millis(150));
            assert_eq!(limit, Duration::from_millis(100));
            assert_eq!(task.await, 9);
        }
        other => panic!("expected Overloaded, got {other:?}"),
    }
    assert!(matches!(
        exec.spawn(async {}).await,
        Err(SpawnError::Overloaded { .. })
    ));
    exec.set_shed_after(None);
    let late = exec.try_spawn(async {}).expect("shedding off");
    for h in [busy, queued, young, late] {
        h.await.unwrap();
    }
    let m = exec.metrics();
    assert_eq!(m.refused, 2);
    assert_eq!(m.pending_time_max, Duration::from_millis(1000));
    assert!(m.pending_time_mean > Duration::ZERO);
}

#[tokio::test]
async fn limits_change_at_run_time() {
    let exec = BoundedExecutor::new(1, 2);
    let (open, gate) = watch::channel(false);
    let conc = Arc::new(Concurrency::default());
    let mut handles = Vec::new();
    for _ in 0..3 {
        let (mut gate, conc) = (gate.clone(), conc.clone());
        handles.push(
            exec.try_spawn(async move {
                conc.enter();
                gate.wait_for(|o| *o).await.unwrap();
                conc.exit();
            })
            .unwrap(),
        );
    }
    settle().await;
    assert_eq!(conc.started.load(SeqCst), 1);
    exec.set_max_concurrency(3);
    settle().await;
    assert_eq!(
        conc.started.load(SeqCst),
        3,
        "raising the limit starts waiting tasks"
    );
    exec.set_max_pending(0);
    exec.set_max_concurrency(2);
    assert!(matches!(
        exec.try_spawn(async {}),
        Err(SpawnError::Full {
            in_flight: 3,
            limit: 2,
            ..
        })
    ));
    assert_eq!((exec.max_concurrency(), exec.max_pending()), (2, 0));
    open.send(true).unwrap();
    for h in handles {
        h.await.unwrap();
    }
    assert_idle(&exec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_work_is_bounded_and_keeps_its_slot_when_aborted() {
    let exec = BoundedExecutor::new(2, 100);
    let conc = Arc::new(Concurrency::default());
    // Each closure waits inside its slot until a second one is running too, so two always overlap (no timing
    // luck needed) and a third can only join if the bound is broken.
    let pair = Arc::new(Pair::default());
    let mut handles = Vec::new();
    for _ in 0..20 {
        let (conc, pair) = (conc.clone(), pair.clone());
        handles.push(
            exec.try_spawn_blocking(move || {
                conc.enter();
                let met = pair.meet();
                conc.exit();
                met
            })
            .unwrap(),
        );
    }
    for h in handles {
        assert!(
            h.await.unwrap(),
            "a closure ran alone although two slots were free"
        );
    }
    assert_eq!(conc.max.load(SeqCst), 2);

    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let running = exec.try_spawn_blocking(move || rx.recv().unwrap()).unwrap();
    wait_until("the blocking closure holds its slot", || {
        exec.metrics().running == 1
    })
    .await;
    running.abort();
    assert!(
        running.await.unwrap_err().is_cancelled(),
        "an aborted blocking task's handle reports Cancelled"
    );
    assert_eq!(
        exec.metrics().running,
        1,
        "abort cannot stop a blocking closure; it keeps its slot"
    );
    tx.send(()).unwrap();
    wait_until("the blocking closure returned", || {
        exec.metrics().in_flight == 0
    })
    .await;
    assert_idle(&exec);
}

#[tokio::test]
async fn aborting_a_pending_task_frees_its_place() {
    let exec = BoundedExecutor::new(1, 1);
    let busy = exec.try_spawn(std::future::pending::<()>()).unwrap();
    let queued = exec
        .try_spawn(async { unreachable!("aborted before it ran") })
        .unwrap();
    settle().await;
    queued.abort();
    assert!(queued.await.unwrap_err().is_cancelled());
    assert_eq!(exec.metrics().never_started, 1);
    let next = exec
        .try_spawn(async { 1 })
        .expect("the aborted task's place is free");
    busy.abort();
    assert_eq!(next.await.unwrap(), 1);
    assert_idle(&exec);
}

#[test]
fn dropping_the_executor_without_shutdown_lets_tasks_finish() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let exec = BoundedExecutor::builder()
        .max_concurrency(2)
        .max_pending(8)
        .handle(rt.handle().clone())
        .build()
        .unwrap();
    let handles: Vec<_> = (0..10u32)
        .map(|i| exec.try_spawn(async move { i * 2 }).unwrap())
        .collect();
    drop(exec);
    let sum: u32 = rt
        .block_on(async { futures_util::future::join_all(handles).await })
        .into_iter()
        .map(Result::unwrap)
        .sum();
    assert_eq!(sum, 90);
    // Queued tasks dropped by a runtime shutdown are settled too (no panic, no hang).
    let exec = BoundedExecutor::builder()
        .max_concurrency(1)
        .max_pending(4)
        .handle(rt.handle().clone())
        .build()
        .unwrap();
    let pending: Vec<_> = (0..3)
        .map(|_| exec.try_spawn(std::future::pending::<()>()).unwrap())
        .collect();
    drop(rt);
    let m = exec.metrics();
    assert_eq!(m.in_flight, 0, "{m:?}");
    drop(pending);
}

#[tokio::test]
async fn refusals_convert_to_io_errors_that_are_not_would_block() {
    let exec = BoundedExecutor::builder()
        .max_concurrency(1)
        .max_pending(0)
        .build()
        .unwrap();
    let busy = exec.try_spawn(std::future::pending::<()>()).unwrap();
    let full = std::io::Error::from(exec.try_spawn(async {}).unwrap_err());
    assert_eq!(full.kind(), std::io::ErrorKind::Other, "{full}");
    assert!(full.to_string().contains("executor full"), "{full}");
    busy.abort();
    let report = exec.shutdown(Instant::now()).await;
    assert_eq!(report.aborted + report.never_started, 1);
    let closed = std::io::Error::from(exec.try_spawn(async {}).unwrap_err());
    assert_eq!(closed.kind(), std::io::ErrorKind::NotConnected);
}

#[tokio::test(start_paused = true)]
async fn overloaded_refusal_is_not_would_block_either() {
    let exec = BoundedExecutor::builder()
        .max_concurrency(1)
        .max_pending(4)
        .shed_after(Some(Duration::from_millis(10)))
        .build()
        .unwrap();
    let busy = exec.try_spawn(std::future::pending::<()>()).unwrap();
    let queued = exec.try_spawn(async {}).unwrap();
    settle().await;
    sleep(Duration::from_millis(20)).await;
    let err = exec.try_spawn(async {}).unwrap_err();
    assert!(matches!(err, SpawnError::Overloaded { .. }), "{err:?}");
    assert_eq!(std::io::Error::from(err).kind(), std::io::ErrorKind::Other);
    busy.abort();
    queued.await.unwrap();
}

#[test]
fn build_reports_invalid_configurations_as_errors() {
    use std::error::Error as _;

    let err = BoundedExecutor::builder().build().unwrap_err();
    assert!(matches!(err, BuildError::NoRuntime(_)), "{err:?}");
    let source = err
        .source()
        .expect("the runtime lookup error is the source");
    assert!(
        !err.to_string().contains(&source.to_string()),
        "the cause is not repeated in Display: {err}"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut builder = BoundedExecutor::builder();
    builder.handle(rt.handle().clone()).max_concurrency(0);
    assert!(matches!(
        builder.max_pending(0).build(),
        Err(BuildError::NoCapacity)
    ));
    // Zero running with a backlog is a paused executor, which is allowed.
    let paused = builder.max_pending(1).build().unwrap();
    assert!(paused.try_spawn(async {}).is_ok());
    assert!(paused.try_spawn(async {}).is_err());
}

#[tokio::test(start_paused = true)]
async fn shutdown_report_agrees_with_metrics() {
    let exec = BoundedExecutor::new(1, 3);
    exec.try_spawn(async {}).unwrap().await.unwrap(); // before the shutdown: not in the report
    let _quick = exec.try_spawn(sleep(Duration::from_millis(5))).unwrap();
    let _stuck = exec.try_spawn(std::future::pending::<()>()).unwrap();
    let _never = exec.try_spawn(async {}).unwrap();
    let before = exec.metrics();
    let report = exec.shutdown(Instant::now() + Duration::from_secs(1)).await;
    let after = exec.metrics();
    assert_eq!(
        (report.completed, report.aborted, report.never_started),
        (1, 1, 1)
    );
    assert_eq!(report.completed, after.completed - before.completed);
    assert_eq!(report.aborted, after.aborted - before.aborted);
    assert_eq!(
        report.never_started,
        after.never_started - before.never_started
    );
    assert_eq!(report.detached, after.in_flight);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "timed out waiting until the impossible")]
async fn wait_until_fails_instead_of_hanging() {
    wait_until("the impossible", || false).await;
}
