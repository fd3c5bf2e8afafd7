//! Shared by the fuzz targets: feed the input in chunks whose sizes come from the input itself, and check that the
//! decoder never panics, never hands out a frame over its maximum and never leaves more than `bound` bytes buffered.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// Splits `data` into a chunk-size prefix and a wire, then feeds the wire to `codec`.
pub fn run<D>(codec: &mut D, data: &[u8], max_frame: usize, bound: usize)
where
    D: Decoder<Item = Bytes>,
{
    let (sizes, wire) = data.split_at(data.len().min(8));
    let mut buf = BytesMut::new();
    let mut at = 0;
    let mut i = 0;
    while at < wire.len() {
        let size = usize::from(sizes.get(i % sizes.len().max(1)).copied().unwrap_or(255)) + 1;
        i += 1;
        let end = (at + size).min(wire.len());
        buf.extend_from_slice(&wire[at..end]);
        at = end;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => assert!(frame.len() <= max_frame, "frame of {} over max {max_frame}", frame.len()),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(buf.len() <= bound, "{} bytes buffered without a frame, bound {bound}", buf.len());
    }
    while let Ok(Some(frame)) = codec.decode_eof(&mut buf) {
        assert!(frame.len() <= max_frame);
    }
}
