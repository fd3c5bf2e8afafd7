//! Where the length field sits, how to read and write it, and which layouts can work.

use bytes::{BufMut, BytesMut};

use super::CodecError;

/// A validated length-field layout. Every constructor path goes through [`Layout::new`], so a `Layout` that exists
/// can decode at least one frame and its arithmetic cannot overflow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) offset: usize,
    pub(crate) width: usize,
    pub(crate) big_endian: bool,
    pub(crate) adjustment: i64,
    pub(crate) strip: usize,
    pub(crate) max: usize,
    /// `offset + width`: bytes needed before the frame length is known.
    pub(crate) header_len: usize,
    /// The smallest field value whose frame is at least as long as the header.
    min_value: u64,
    /// The frame length `min_value` gives.
    min_len: usize,
    /// `max - min_len`: field values in `min_value..=min_value + span` give frames within `min_len..=max`.
    span: u64,
}

impl Layout {
    /// Checks that the configuration can decode frames, and refuses it with the numbers that make it impossible.
    pub(crate) fn new(
        offset: usize,
        width: usize,
        big_endian: bool,
        adjustment: i64,
        strip: Option<usize>,
        max: usize,
    ) -> Result<Layout, CodecError> {
        if !matches!(width, 1 | 2 | 3 | 4 | 8) {
            return Err(CodecError::InvalidFieldWidth { width });
        }
        let header_len = offset.saturating_add(width);
        if max < header_len {
            return Err(CodecError::MaxBelowHeader { max, header_len });
        }
        let min_frame = header_len as i128 + i128::from(adjustment);
        let reachable = min_frame + i128::from(field_max(width));
        if min_frame > max as i128 || reachable < header_len as i128 {
            return Err(CodecError::AdjustmentOutOfRange {
                adjustment,
                min_frame,
                header_len,
                max,
            });
        }
        if reachable < max as i128 {
            return Err(CodecError::FieldTooNarrow {
                width,
                reachable,
                max,
            });
        }
        // Checked above: header_len <= max_valid <= max, so this fits a usize.
        let min_valid = min_frame.max(header_len as i128) as usize;
        let strip = strip.unwrap_or(header_len);
        if strip > min_valid {
            return Err(CodecError::StripTooLarge {
                strip,
                min_frame: min_valid,
            });
        }
        // Checked above: `-adjustment <= field_max(width)` when negative, and `min_valid <= max`.
        let min_value = if adjustment < 0 {
            adjustment.unsigned_abs()
        } else {
            0
        };
        Ok(Layout {
            offset,
            width,
            big_endian,
            adjustment,
            strip,
            max,
            header_len,
            min_value,
            min_len: min_valid,
            span: (max - min_valid) as u64,
        })
    }

    /// The same layout with another maximum, validated again.
    pub(crate) fn with_max(&self, max: usize) -> Result<Layout, CodecError> {
        let l = self;
        Layout::new(
            l.offset,
            l.width,
            l.big_endian,
            l.adjustment,
            Some(l.strip),
            max,
        )
    }

    /// Reads the field, or `None` while `src` is shorter than the header.
    #[inline]
    pub(crate) fn read(&self, src: &[u8]) -> Option<u64> {
        // One bounds check for the header; fixed-size arrays then compile to one load (plus a byte swap).
        let f = src.get(self.offset..self.header_len)?;
        Some(match (self.width, self.big_endian) {
            (4, true) => u64::from(u32::from_be_bytes(*f.first_chunk::<4>()?)),
            (4, false) => u64::from(u32::from_le_bytes(*f.first_chunk::<4>()?)),
            (2, true) => u64::from(u16::from_be_bytes(*f.first_chunk::<2>()?)),
            (2, false) => u64::from(u16::from_le_bytes(*f.first_chunk::<2>()?)),
            (8, true) => u64::from_be_bytes(*f.first_chunk::<8>()?),
            (8, false) => u64::from_le_bytes(*f.first_chunk::<8>()?),
            (_, true) => f.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b)),
            (_, false) => f.iter().rev().fold(0, |acc, &b| (acc << 8) | u64::from(b)),
        })
    }

    /// The frame length for a field value, when it is within the limits: at least the header, at most `max`.
    /// `None` sends the caller to the checks that name what is wrong.
    #[inline]
    pub(crate) fn accepted_len(&self, value: u64) -> Option<usize> {
        // One comparison for both bounds: values below `min_value` wrap around to above `span`.
        let above_min = value.wrapping_sub(self.min_value);
        // At most `span`, which came from a usize, so the sum is at most `max`.
        (above_min <= self.span).then(|| self.min_len + above_min as usize)
    }

    /// The whole frame length (header included) a field value gives, before any checks.
    #[inline]
    pub(crate) fn frame_len(&self, value: u64) -> i128 {
        self.header_len as i128 + i128::from(value) + i128::from(self.adjustment)
    }

    /// Appends a header for a payload of `payload_len` bytes: zeros up to the field, then the field.
    pub(crate) fn write_header(
        &self,
        payload_len: usize,
        dst: &mut BytesMut,
    ) -> Result<(), CodecError> {
        self.put_header(payload_len, self.header_len + payload_len, dst)
    }

    /// [`write_header`](Self::write_header) for a payload sent from its own storage: reserves room for the header
    /// alone, so a large payload does not make `dst` grow.
    pub(crate) fn write_header_only(
        &self,
        payload_len: usize,
        dst: &mut BytesMut,
    ) -> Result<(), CodecError> {
        self.put_header(payload_len, self.header_len, dst)
    }

    fn put_header(
        &self,
        payload_len: usize,
        room: usize,
        dst: &mut BytesMut,
    ) -> Result<(), CodecError> {
        let len = self.header_len as u128 + payload_len as u128;
        if len > self.max as u128 {
            return Err(CodecError::ItemTooLong {
                len: u64::try_from(len).unwrap_or(u64::MAX),
                max: self.max,
            });
        }
        let value = payload_len as i128 - i128::from(self.adjustment);
        if value < 0 || value > i128::from(field_max(self.width)) {
            return Err(CodecError::LengthNotRepresentable {
                len: payload_len,
                value,
                width: self.width,
            });
        }
        dst.reserve(room);
        dst.put_bytes(0, self.offset);
        if self.big_endian {
            dst.put_uint(value as u64, self.width);
        } else {
            dst.put_uint_le(value as u64, self.width);
        }
        Ok(())
    }
}

/// The largest value a field of `width` bytes holds.
fn field_max(width: usize) -> u64 {
    if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    }
}
