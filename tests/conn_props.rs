//! Whatever the peer sends, however its bytes are split, a `Connection` hands the handler the frames of the whole
//! byte stream (the reference model), then the reason the stream ended; answers fed per frame reach the peer in
//! order and in full.

use std::time::Duration;

use proptest::prelude::*;
use tidegate::codec::LengthFieldCodec;
use tidegate::conn::{ConnClose, Connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const MAX: usize = 1024;
const WAIT: Duration = Duration::from_secs(10);

/// The model: length-prefixed frames, as the codec cuts them from the whole stream at once.
fn model(wire: &[u8]) -> (Vec<Vec<u8>>, Option<u64>) {
    let (mut frames, mut at) = (Vec::new(), 0);
    while wire.len() - at >= 4 {
        let len = u32::from_be_bytes(wire[at..at + 4].try_into().unwrap()) as usize;
        if len + 4 > MAX {
            return (frames, Some(len as u64 + 4));
        }
        if wire.len() - at - 4 < len {
            break;
        }
        frames.push(wire[at + 4..at + 4 + len].to_vec());
        at += 4 + len;
    }
    (frames, None)
}

fn wire(frames: &[Vec<u8>], oversize: Option<u32>) -> Vec<u8> {
    let mut wire = Vec::new();
    for f in frames {
        wire.extend_from_slice(&(f.len() as u32).to_be_bytes());
        wire.extend_from_slice(f);
    }
    if let Some(len) = oversize {
        wire.extend_from_slice(&len.to_be_bytes());
    }
    wire
}

async fn run(wire: Vec<u8>, cuts: Vec<usize>, pipe: usize) -> (Vec<Vec<u8>>, ConnClose, Vec<u8>) {
    let (server, client) = tokio::io::duplex(pipe);
    let codec = LengthFieldCodec::new(MAX);
    let mut conn = Connection::builder()
        .read_size(64)
        .build(server, codec.clone(), codec)
        .unwrap();
    let (mut rx, mut tx) = tokio::io::split(client);
    let sending = tokio::spawn(async move {
        let mut from = 0;
        for to in cuts.into_iter().chain([wire.len()]) {
            tx.write_all(&wire[from..to]).await.unwrap();
            tokio::task::yield_now().await;
            from = to;
        }
        tx.shutdown().await.unwrap();
    });
    let receiving = tokio::spawn(async move {
        let mut answers = Vec::new();
        rx.read_to_end(&mut answers).await.unwrap();
        answers
    });
    let mut got = Vec::new();
    let reason = loop {
        match timeout(WAIT, conn.next()).await.expect("bounded") {
            Ok(frame) => {
                got.push(frame.to_vec());
                conn.feed(frame).await.unwrap();
            }
            Err(reason) => break reason,
        }
    };
    timeout(WAIT, sending).await.unwrap().unwrap();
    drop(conn);
    let answers = timeout(WAIT, receiving).await.unwrap().unwrap();
    (got, reason, answers)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn frames_and_the_end_do_not_depend_on_how_bytes_are_split(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..10),
        oversize in prop::option::of((MAX as u32 - 3)..u32::MAX / 2),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        pipe in 1usize..512,
    ) {
        let wire = wire(&frames, oversize);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
        cuts.sort_unstable();
        let (want, too_long) = model(&wire);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        let (got, reason, answers) = rt.block_on(run(wire.clone(), cuts, pipe));
        prop_assert_eq!(&got, &want);
        match too_long {
            Some(len) => prop_assert!(
                matches!(reason, ConnClose::FrameTooLarge { len: l, max } if l == len && max == MAX),
                "{:?}", reason
            ),
            None => prop_assert!(matches!(reason, ConnClose::PeerClosed), "{:?}", reason),
        }
        // Every frame handed over was echoed, in order, before the socket closed.
        let echoed: Vec<u8> = want.iter().flat_map(|f| {
            let mut e = (f.len() as u32).to_be_bytes().to_vec();
            e.extend_from_slice(f);
            e
        }).collect();
        prop_assert_eq!(answers, echoed);
    }
}
