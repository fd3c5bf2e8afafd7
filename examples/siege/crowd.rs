//! The crowd: the normal clients, whose service is measured, and the hostile ones.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wire::{encode, read_frame};

/// What the clients count.
#[derive(Default)]
pub(crate) struct ClientCounters {
    pub(crate) normal_frames: AtomicU64,
    pub(crate) normal_errors: AtomicU64,
    pub(crate) latencies_us: Mutex<Vec<u32>>,
    pub(crate) slow_cut: AtomicU64,
    pub(crate) liars_cut: AtomicU64,
    pub(crate) slowloris_cut: AtomicU64,
    pub(crate) flood_served: AtomicU64,
    pub(crate) flood_refused: AtomicU64,
    pub(crate) storm_served: AtomicU64,
    pub(crate) storm_refused: AtomicU64,
    pub(crate) connect_errors: AtomicU64,
}

/// A small xorshift, so that the crowd does not move in lockstep (no `rand` dependency).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

async fn connect(addr: SocketAddr, cc: &ClientCounters) -> Option<TcpStream> {
    match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Some(stream)
        }
        _ => {
            cc.connect_errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(200)).await;
            None
        }
    }
}

/// Closes with a reset: a client of the crowd leaves no TIME_WAIT behind, so the storm does not run out of ports.
fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

pub(crate) async fn normal_client(addr: SocketAddr, cc: Arc<ClientCounters>, id: u64) {
    let mut n = 0u64;
    loop {
        let Some(mut stream) = connect(addr, &cc).await else {
            cc.normal_errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        loop {
            n += 1;
            let mut payload = vec![b'E'; 256];
            payload[1..9].copy_from_slice(&id.to_be_bytes());
            payload[9..17].copy_from_slice(&n.to_be_bytes());
            let started = Instant::now();
            let round = async {
                stream.write_all(&encode(&payload)).await?;
                read_frame(&mut stream).await
            };
            match tokio::time::timeout(Duration::from_secs(5), round).await {
                Ok(Ok(answer)) if answer == payload => {
                    let us = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
                    cc.latencies_us.lock().unwrap().push(us);
                    cc.normal_frames.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    cc.normal_errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

pub(crate) async fn slow_reader(addr: SocketAddr, cc: Arc<ClientCounters>) {
    let frame = encode(&[b'E'; 16 * 1024]);
    loop {
        let Some(mut stream) = connect(addr, &cc).await else {
            continue;
        };
        while stream.write_all(&frame).await.is_ok() {}
        cc.slow_cut.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn liar(addr: SocketAddr, cc: Arc<ClientCounters>, id: u64) {
    let claim: u32 = if id % 2 == 0 { 4 << 20 } else { 1 << 30 };
    let chunk = [b'L'; 1024];
    loop {
        let Some(mut stream) = connect(addr, &cc).await else {
            continue;
        };
        let mut sent = 0u64;
        let mut ok = stream.write_all(&claim.to_be_bytes()).await.is_ok();
        while ok && sent < u64::from(claim) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            ok = stream.write_all(&chunk).await.is_ok();
            sent += chunk.len() as u64;
        }
        cc.liars_cut.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn slowloris(addr: SocketAddr, cc: Arc<ClientCounters>) {
    loop {
        let Some(mut stream) = connect(addr, &cc).await else {
            continue;
        };
        let mut buf = [0u8; 64];
        loop {
            if stream.write_all(b"\0").await.is_err() {
                break;
            }
            let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await;
            if matches!(read, Ok(Ok(0) | Err(_))) {
                break; // closed by the server
            }
        }
        cc.slowloris_cut.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn flood(addr: SocketAddr, cc: Arc<ClientCounters>) {
    let mut burst = Vec::new();
    for i in 0..20u8 {
        burst.extend_from_slice(&encode(&[b'S', i, 0, 0, 0, 0, 0, 0]));
    }
    loop {
        let Some(stream) = connect(addr, &cc).await else {
            continue;
        };
        let (mut rd, mut wr) = stream.into_split();
        let reader = async {
            while let Ok(len) = rd.read_u32().await {
                if len == 0 {
                    cc.flood_refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let mut payload = vec![0; (len as usize).min(1 << 16)];
                if rd.read_exact(&mut payload).await.is_err() {
                    break;
                }
                cc.flood_served.fetch_add(1, Ordering::Relaxed);
            }
        };
        let writer = async {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tick.tick().await;
                if wr.write_all(&burst).await.is_err() {
                    break;
                }
            }
        };
        tokio::select! {
            _ = reader => {}
            _ = writer => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn storm(addr: SocketAddr, cc: Arc<ClientCounters>, id: u64) {
    let mut rng = Rng::new(id + 1);
    // Spread the first connections over a second rather than 2,000 SYNs at once.
    tokio::time::sleep(Duration::from_millis(rng.below(1000))).await;
    let payload = [b'E', 1, 2, 3, 4, 5, 6, 7];
    loop {
        let Some(mut stream) = connect(addr, &cc).await else {
            continue;
        };
        let round = async {
            stream.write_all(&encode(&payload)).await?;
            read_frame(&mut stream).await
        };
        match tokio::time::timeout(Duration::from_secs(2), round).await {
            Ok(Ok(answer)) if answer == payload => {
                cc.storm_served.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2000 + rng.below(3000))).await;
            }
            _ => {
                cc.storm_refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200 + rng.below(300))).await;
            }
        }
        reset(stream);
    }
}
