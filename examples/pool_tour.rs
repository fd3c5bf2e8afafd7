//! A tour of the buffer pool and the memory budget: acquire, freeze, share across tasks, and watch the metrics
//! before and after; then watch the budget refuse and wait.
//!
//! Run with `cargo run --release --example pool_tour`.

use std::time::Duration;

use bytes::{BufMut, Bytes};
use tidegate::budget::MemoryBudget;
use tidegate::buf::BufPool;
use tidegate::buf::LeakTracking;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let process = MemoryBudget::new(256 * 1024);
    let pool = BufPool::builder()
        .budget(Some(process.child(64 * 1024)))
        .max_retained_bytes(128 * 1024)
        .leak_tracking(LeakTracking::All)
        .build()?;

    println!("== a fresh pool\n{:#?}\n", pool.metrics().total);

    // Acquire, fill, freeze: the frozen `Bytes` shares the pooled storage, no copy.
    let mut frames = Vec::new();
    for i in 0..8u32 {
        let mut buf = pool.acquire(1000).await?;
        buf.put_slice(format!("frame {i}: ").as_bytes());
        buf.put_bytes(b'.', 500);
        frames.push(buf.freeze());
    }
    println!(
        "== 8 frames out: {} buffers, {} bytes charged to the budget",
        pool.metrics().total.outstanding_buffers,
        pool.budget().map_or(0, MemoryBudget::used)
    );

    // Share every frame with four tasks; storage returns to the pool when the last clone drops, on any thread.
    let mut tasks = Vec::new();
    for task in 0..4 {
        let frames: Vec<Bytes> = frames.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10 * task)).await;
            frames.iter().map(Bytes::len).sum::<usize>()
        }));
    }
    drop(frames);
    for task in tasks {
        task.await?;
    }
    let after = pool.metrics();
    println!(
        "== all clones dropped: {} outstanding, {} bytes retained for reuse, {} hits / {} misses\n",
        after.total.outstanding_buffers,
        after.total.retained_bytes,
        after.total.hits,
        after.total.misses
    );

    // The budget says no: 64 KiB allows four 16 KiB buffers, the fifth is refused and handed back as an error.
    let held: Vec<_> = (0..4)
        .map(|_| pool.try_acquire(16 * 1024))
        .collect::<Result<_, _>>()?;
    match pool.try_acquire(16 * 1024) {
        Ok(_) => println!("unexpected: the budget should have refused"),
        Err(err) => println!("== refused: {err}"),
    }
    println!("{}", pool.leak_report(Duration::ZERO));

    // `acquire` waits instead, and goes through once a buffer comes back.
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.acquire(16 * 1024).await.map(|b| b.capacity()) }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(held);
    println!(
        "== the waiter got a {}-byte buffer once memory came back",
        waiter.await??
    );
    println!("== budget at the end: {:?}", process.metrics());
    Ok(())
}
