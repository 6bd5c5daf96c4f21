//! Byte-level primitives shared by the block codec and the segment: a bounds-checked reader,
//! LEB128 varints, zigzag, and fixed-width bit packing.

use crate::Error;

/// Longest LEB128 encoding of a `u64`.
const VARINT_MAX_LEN: usize = 10;

/// A cursor over untrusted bytes. Every read is bounds-checked; running out of input is
/// [`Error::Truncated`], a malformed encoding is [`Error::Corruption`]. Offsets in errors are
/// `base + position`.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], base: u64) -> Reader<'a> {
        Reader {
            bytes,
            pos: 0,
            base,
        }
    }

    pub(crate) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn truncated(&self, what: &'static str, needed: usize) -> Error {
        Error::Truncated {
            offset: self.offset(),
            what,
            needed: needed as u64,
            available: self.remaining() as u64,
        }
    }

    pub(crate) fn corruption(&self, what: &'static str, expected: u64, found: u64) -> Error {
        Error::Corruption {
            offset: self.offset(),
            what,
            expected,
            found,
        }
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        match self.bytes.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(taken) => {
                self.pos += n;
                Ok(taken)
            }
            None => Err(self.truncated(what, n)),
        }
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        self.pos = self.bytes.len();
        rest
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Error> {
        let taken = self.take(N, what)?;
        let mut array = [0u8; N];
        array.copy_from_slice(taken);
        Ok(array)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// An unsigned LEB128 varint of at most 10 bytes whose value fits in 64 bits.
    pub(crate) fn varint(&mut self, what: &'static str) -> Result<u64, Error> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..VARINT_MAX_LEN {
            let Some(&byte) = self.bytes.get(start + i) else {
                return Err(self.truncated(what, i + 1));
            };
            let low = u64::from(byte & 0x7f);
            let shift = 7 * i as u32;
            if i == VARINT_MAX_LEN - 1 && low > 1 {
                return Err(self.corruption(what, 1, low));
            }
            value |= low << shift;
            if byte & 0x80 == 0 {
                self.pos = start + i + 1;
                return Ok(value);
            }
        }
        Err(self.corruption(what, VARINT_MAX_LEN as u64, VARINT_MAX_LEN as u64 + 1))
    }

    /// Steps over a varint without decoding it.
    pub(crate) fn skip_varint(&mut self, what: &'static str) -> Result<(), Error> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        match rest
            .iter()
            .take(VARINT_MAX_LEN)
            .position(|&b| b & 0x80 == 0)
        {
            Some(i) => {
                self.pos += i + 1;
                Ok(())
            }
            None if rest.len() < VARINT_MAX_LEN => Err(self.truncated(what, rest.len() + 1)),
            None => Err(self.corruption(what, VARINT_MAX_LEN as u64, VARINT_MAX_LEN as u64 + 1)),
        }
    }

    /// A varint that must lie in `min..=max`, else corruption.
    pub(crate) fn varint_in(
        &mut self,
        what: &'static str,
        min: u64,
        max: u64,
    ) -> Result<u64, Error> {
        let at = self.offset();
        let value = self.varint(what)?;
        if value < min || value > max {
            return Err(Error::Corruption {
                offset: at,
                what,
                expected: if value < min { min } else { max },
                found: value,
            });
        }
        Ok(value)
    }

    pub(crate) fn zigzag64(&mut self, what: &'static str) -> Result<i64, Error> {
        Ok(unzigzag64(self.varint(what)?))
    }

    pub(crate) fn zigzag32(&mut self, what: &'static str) -> Result<i32, Error> {
        let value = self.varint_in(what, 0, u64::from(u32::MAX))?;
        Ok(unzigzag32(value as u32))
    }
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn varint_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

pub(crate) fn zigzag64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

pub(crate) fn unzigzag64(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

pub(crate) fn zigzag32(value: i32) -> u32 {
    ((value << 1) ^ (value >> 31)) as u32
}

pub(crate) fn unzigzag32(value: u32) -> i32 {
    ((value >> 1) as i32) ^ -((value & 1) as i32)
}

/// Bits needed to hold `value` (0 for 0).
pub(crate) fn bit_width(value: u32) -> u32 {
    32 - value.leading_zeros()
}

/// Bytes taken by `count` values packed at `width` bits.
pub(crate) fn packed_len(count: usize, width: u32) -> usize {
    (count * width as usize).div_ceil(8)
}

/// Appends bits LSB-first to a byte vector (§1: the first bit is bit 0 of byte 0); the last
/// byte is padded with zeros by [`BitWriter::finish`].
pub(crate) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    bits: u32,
}

impl<'a> BitWriter<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> BitWriter<'a> {
        BitWriter {
            out,
            acc: 0,
            bits: 0,
        }
    }

    /// Appends the low `width` (≤ 32) bits of `value`, whose other bits are 0.
    #[inline]
    pub(crate) fn put(&mut self, value: u32, width: u32) {
        self.acc |= u64::from(value) << self.bits;
        self.bits += width;
        while self.bits >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }

    /// Writes the last, partial byte.
    pub(crate) fn finish(self) {
        if self.bits > 0 {
            self.out.push(self.acc as u8);
        }
    }
}

/// Appends `values` packed LSB-first at `width` bits each (`width` ≥ the width of every value).
pub(crate) fn pack(values: &[u32], width: u32, out: &mut Vec<u8>) {
    if width == 0 {
        return;
    }
    let mut w = BitWriter::new(out);
    for &value in values {
        w.put(value, width);
    }
    w.finish();
}

/// Largest number of values one call to [`unpack`] handles.
pub(crate) const UNPACK_MAX: usize = 128;

/// Unpacks `out.len()` (≤ [`UNPACK_MAX`]) values of `width` (≤ 32) bits from `src`, which holds
/// exactly `packed_len(out.len(), width)` bytes (checked by the caller).
pub(crate) fn unpack(src: &[u8], width: u32, out: &mut [u32]) {
    let mut buf = [0u8; UNPACK_MAX * 4 + 8];
    let len = src.len().min(UNPACK_MAX * 4);
    buf[..len].copy_from_slice(&src[..len]);
    match width {
        0 => out.fill(0),
        8 => {
            for (o, b) in out.iter_mut().zip(buf.iter()) {
                *o = u32::from(*b);
            }
        }
        16 => {
            for (o, b) in out.iter_mut().zip(buf.chunks_exact(2)) {
                *o = u32::from(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        _ => unpack_generic(&buf, width, out),
    }
}

#[inline]
fn unpack_generic(buf: &[u8; UNPACK_MAX * 4 + 8], width: u32, out: &mut [u32]) {
    let mask = if width >= 32 {
        u64::from(u32::MAX)
    } else {
        (1u64 << width) - 1
    };
    let width = width.min(32) as usize;
    for (j, o) in out.iter_mut().take(UNPACK_MAX).enumerate() {
        let bit = j * width;
        let byte = bit >> 3;
        // j < 128 and width ≤ 32: byte + 8 ≤ 516 < buf.len().
        let mut word = [0u8; 8];
        word.copy_from_slice(&buf[byte..byte + 8]);
        *o = ((u64::from_le_bytes(word) >> (bit & 7)) & mask) as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_length() {
        for shift in 0..64 {
            for value in [1u64 << shift, (1u64 << shift) - 1, u64::MAX >> shift] {
                let mut out = Vec::new();
                put_varint(&mut out, value);
                assert_eq!(out.len(), varint_len(value));
                let mut reader = Reader::new(&out, 0);
                assert_eq!(reader.varint("v").unwrap(), value);
                assert!(reader.is_empty());
            }
        }
    }

    #[test]
    fn an_overlong_varint_is_corruption() {
        let bytes = [0xffu8; 11];
        let err = Reader::new(&bytes, 0).varint("v").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corruption);
        let bytes = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        let err = Reader::new(&bytes, 0).varint("v").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corruption);
    }

    #[test]
    fn a_varint_cut_short_is_truncated() {
        let err = Reader::new(&[0x80, 0x80], 0).varint("v").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Truncated);
    }

    #[test]
    fn skipping_a_varint_stops_after_its_last_byte() {
        let mut r = Reader::new(&[0x80, 0x01, 0x05], 0);
        r.skip_varint("v").unwrap();
        assert_eq!(r.remaining(), 1);
        let err = Reader::new(&[0x80], 0).skip_varint("v").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Truncated);
        let err = Reader::new(&[0xff; 11], 0).skip_varint("v").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corruption);
    }

    #[test]
    fn zigzag_round_trips_extremes() {
        for v in [0, 1, -1, i32::MIN, i32::MAX] {
            assert_eq!(unzigzag32(zigzag32(v)), v);
        }
        for v in [0, 1, -1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag64(zigzag64(v)), v);
        }
    }

    #[test]
    fn packing_round_trips_every_width() {
        for width in 0..=32u32 {
            let mask = if width == 32 {
                u32::MAX
            } else {
                (1u32 << width) - 1
            };
            for n in [1usize, 7, 64, 127, 128] {
                let values: Vec<u32> = (0..n as u32)
                    .map(|i| i.wrapping_mul(2_654_435_761) & mask)
                    .collect();
                let mut out = Vec::new();
                pack(&values, width, &mut out);
                assert_eq!(out.len(), packed_len(n, width));
                let mut back = vec![0u32; n];
                unpack(&out, width, &mut back);
                assert_eq!(back, values, "width {width} n {n}");
            }
        }
    }
}
