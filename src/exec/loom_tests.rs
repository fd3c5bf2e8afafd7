//! Loom models of the run-slot gate (grants racing cancellation, releases racing enqueues, live limit changes),
//! of the state word (a submitter waiting for room racing a task leaving) and of the abort registry (an abort
//! racing a registration).
//!
//! Run with `scripts/loom.sh` (`RUSTFLAGS="--cfg tidegate_loom" cargo test --lib --release loom`).

use std::future::poll_fn;
use std::task::{Context, Poll, Wake, Waker};

use ::loom::future::block_on;
use ::loom::thread;

use super::gate::{Gate, WaiterRef};
use super::registry::Registry;
use super::state::{IN_FLIGHT_ONE, ROOM_WANTED};
use crate::loom::Arc;

struct Noop;

impl Wake for Noop {
    fn wake(self: std::sync::Arc<Self>) {}
}

/// Takes a slot, waiting in the queue as a task would.
fn acquire(gate: &Gate) {
    let mut waiter = None;
    block_on(poll_fn(|cx| gate.poll_acquire(cx, &mut waiter)));
}

/// Polls for a slot once: `None` if granted at once, else the queued place.
fn enqueue(gate: &Gate) -> Option<WaiterRef> {
    let waker = Waker::from(std::sync::Arc::new(Noop));
    let mut waiter = None;
    match gate.poll_acquire(&mut Context::from_waker(&waker), &mut waiter) {
        Poll::Ready(()) => None,
        Poll::Pending => waiter,
    }
}

fn assert_settled(gate: &Gate) {
    assert_eq!(gate.running(), 0, "a slot leaked or was double-freed");
    assert_eq!(gate.queued(), (false, 0), "(waiting flag, queue length)");
}

/// A queued task is cancelled (abort, shutdown) while the running one releases its slot, which may grant it:
/// the slot is then the cancelling task's to give back, never lost and never given back twice.
#[test]
fn loom_exec_gate_grant_racing_cancel() {
    ::loom::model(|| {
        let gate = Arc::new(Gate::new(1));
        acquire(&gate);
        let waiter = enqueue(&gate).expect("the only slot is taken");
        let releaser = {
            let gate = gate.clone();
            thread::spawn(move || gate.release())
        };
        if gate.cancel(&waiter) {
            gate.release();
        }
        releaser.join().unwrap();
        assert_settled(&gate);
    });
}

/// A newcomer queues while the holder releases: it either takes the freed slot itself or is granted it by the
/// release (loom reports a deadlock if neither happens).
#[test]
fn loom_exec_gate_release_racing_enqueue() {
    ::loom::model(|| {
        let gate = Arc::new(Gate::new(1));
        acquire(&gate);
        let newcomer = {
            let gate = gate.clone();
            thread::spawn(move || {
                acquire(&gate);
                gate.release();
            })
        };
        gate.release();
        newcomer.join().unwrap();
        assert_settled(&gate);
    });
}

/// Raising the limit while tasks arrive starts them without any release; lowering it again never lets more
/// than the limit run at once.
#[test]
fn loom_exec_gate_live_limit_change() {
    ::loom::model(|| {
        let gate = Arc::new(Gate::new(0));
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let gate = gate.clone();
                thread::spawn(move || {
                    acquire(&gate);
                    assert!(gate.running() <= 1, "more running than the limit");
                    gate.release();
                })
            })
            .collect();
        gate.set_limit(1);
        for task in tasks {
            task.join().unwrap();
        }
        assert_settled(&gate);
    });
}

/// A submitter finds the executor full and announces it waits for room (as `admit_wait` does before re-trying)
/// while the only task leaves: either the re-try sees the room or the leaving task sees the flag and is the one
/// to wake it (loom explores whether the leave takes the quiet path or the flagged one).
#[test]
fn loom_exec_state_room_wanted_racing_a_leave() {
    ::loom::model(|| {
        let gate = Arc::new(Gate::new(1));
        gate.state.try_admit(1).expect("empty");
        let leaver = {
            let gate = gate.clone();
            thread::spawn(move || {
                // As `SharedRef::leave`: only a leave that took the flagged path wakes anyone.
                let (prev, flagged) = gate.leave(IN_FLIGHT_ONE, false, || ());
                flagged.is_some() && gate.state.take_room_wanted(prev)
            })
        };
        gate.state.set(ROOM_WANTED);
        let admitted = gate.state.try_admit(1).is_ok();
        let woken = leaver.join().unwrap();
        assert!(
            admitted || woken,
            "the submitter neither saw room nor was woken"
        );
    });
}

/// A shutdown's abort races a task suspending for the first time: the task is woken either by the walk over
/// the registry or by its own check of the flag after registering.
#[test]
fn loom_exec_registry_abort_reaches_a_task_registering_concurrently() {
    ::loom::model(|| {
        let registry = Arc::new(Registry::new());
        let task = {
            let registry = registry.clone();
            thread::spawn(move || {
                let mut entry = None;
                block_on(poll_fn(|cx| {
                    if registry.is_aborting() {
                        return Poll::Ready(());
                    }
                    if entry.is_none() {
                        entry = Some(registry.register(cx.waker()));
                    }
                    Poll::Pending
                }));
                if let Some(entry) = entry {
                    registry.deregister(entry);
                }
            })
        };
        registry.abort_all();
        task.join().unwrap();
    });
}
