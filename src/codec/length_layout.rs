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
    /// The smallest payload a header can be written for (the field cannot go below zero).
    encodable_min: usize,
    /// `encodable_max - encodable_min`, or `usize::MAX` with `encodable_min` above every payload when none fits:
    /// payloads in `encodable_min..=encodable_min + encodable_span` pass every check of `put_header` at once.
    encodable_span: usize,
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
        // A payload's frame is `header_len + payload` long and its field holds `payload - adjustment`.
        let lowest = i128::from(adjustment).max(0);
        let highest =
            ((max - header_len) as i128).min(i128::from(field_max(width)) + i128::from(adjustment));
        let (encodable_min, encodable_span) =
            match (usize::try_from(lowest), usize::try_from(highest)) {
                (Ok(lo), Ok(hi)) if lo <= hi => (lo, hi - lo),
                _ => (usize::MAX, 0),
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
            encodable_min,
            encodable_span,
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

    /// The smallest and largest maximum [`with_max`](Self::with_max) accepts for this layout.
    pub(crate) fn max_range(&self) -> (usize, usize) {
        let reachable = self.header_len as i128
            + i128::from(self.adjustment)
            + i128::from(field_max(self.width));
        let largest = usize::try_from(reachable).unwrap_or(usize::MAX);
        (self.min_len.max(self.strip), largest)
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

    #[inline]
    fn put_header(
        &self,
        payload_len: usize,
        room: usize,
        dst: &mut BytesMut,
    ) -> Result<(), CodecError> {
        // One comparison for every check: payloads below `encodable_min` wrap around to above the span.
        if payload_len.wrapping_sub(self.encodable_min) > self.encodable_span
            || self.encodable_min == usize::MAX
        {
            return Err(self.unencodable(payload_len));
        }
        let value = (payload_len as i128 - i128::from(self.adjustment)) as u64;
        dst.reserve(room);
        if self.offset > 0 {
            dst.put_bytes(0, self.offset);
        }
        // The common widths as fixed-size stores: `put_uint` copies a runtime-sized slice (a `memcpy` call), which
        // cost more than the rest of a header on the zero-copy path, where one header is written per frame.
        match (self.width, self.big_endian) {
            (1, _) => dst.put_u8(value as u8),
            (2, true) => dst.put_u16(value as u16),
            (2, false) => dst.put_u16_le(value as u16),
            (4, true) => dst.put_u32(value as u32),
            (4, false) => dst.put_u32_le(value as u32),
            (8, true) => dst.put_u64(value),
            (8, false) => dst.put_u64_le(value),
            (width, true) => dst.put_uint(value, width),
            (width, false) => dst.put_uint_le(value, width),
        }
        Ok(())
    }

    /// Why no header can be written for a payload of `payload_len` bytes.
    #[cold]
    fn unencodable(&self, payload_len: usize) -> CodecError {
        let len = self.header_len as u128 + payload_len as u128;
        if len > self.max as u128 {
            return CodecError::ItemTooLong {
                len: u64::try_from(len).unwrap_or(u64::MAX),
                max: self.max,
            };
        }
        CodecError::LengthNotRepresentable {
            len: payload_len,
            value: payload_len as i128 - i128::from(self.adjustment),
            width: self.width,
        }
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
