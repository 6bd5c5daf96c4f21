//! The entropy stage of the value codec: zigzag residuals mapped to 128 bins (exact below 16,
//! then by bit width and the two bits under the leading one), bin numbers Huffman-coded with
//! codes of at most [`MAX_CODE_LEN`] bits, the remaining low bits stored raw.
//!
//! Bit order: LSB-first, codes bit-reversed so that a decoder peeks the low bits of its buffer.

use crate::bits::{bit_width, put_varint, unzigzag32, BitWriter, Reader};
use crate::Error;

/// Number of bins (symbols).
pub const SYMBOLS: usize = 128;
/// Longest code; the decoder's lookup table has `1 << MAX_CODE_LEN` entries.
pub const MAX_CODE_LEN: u32 = 11;

/// Bin of a zigzagged residual.
#[inline]
pub fn symbol_of(u: u32) -> usize {
    if u < 16 {
        u as usize
    } else {
        let b = bit_width(u);
        16 + (b as usize - 5) * 4 + ((u >> (b - 3)) & 3) as usize
    }
}

/// Raw bits stored after a symbol's code.
#[inline]
pub fn extra_bits(symbol: usize) -> u32 {
    if symbol < 16 {
        0
    } else {
        (symbol as u32 - 16) / 4 + 2
    }
}

/// Smallest zigzagged residual of a bin.
#[inline]
pub(crate) fn base_of(symbol: usize) -> u32 {
    if symbol < 16 {
        symbol as u32
    } else {
        let b = (symbol as u32 - 16) / 4 + 5;
        (4 | (symbol as u32 & 3)) << (b - 3)
    }
}

/// Code lengths (0 = unused) for symbol counts, limited to [`MAX_CODE_LEN`].
pub fn code_lengths(counts: &[u64; SYMBOLS]) -> [u8; SYMBOLS] {
    let mut lengths = [0u8; SYMBOLS];
    // On the stack: a block's tables are sized for every finalist lag of every block.
    let mut used = [(0u64, 0usize); SYMBOLS];
    let mut n = 0;
    for (s, &c) in counts.iter().enumerate() {
        if c > 0 {
            used[n] = (c, s);
            n += 1;
        }
    }
    let used = &mut used[..n];
    match n {
        0 => return lengths,
        1 => {
            lengths[used[0].1] = 1;
            return lengths;
        }
        _ => {}
    }
    used.sort_unstable();
    // Huffman tree by two queues: leaves sorted by weight, internal nodes in creation order.
    let mut parent = [0usize; 2 * SYMBOLS];
    let mut weight = [0u64; 2 * SYMBOLS];
    for (w, &(c, _)) in weight.iter_mut().zip(used.iter()) {
        *w = c;
    }
    let (mut leaf, mut node) = (0usize, n);
    for next in n..2 * n - 1 {
        let mut pick = || {
            if leaf < n && (node >= next || weight[leaf] <= weight[node]) {
                leaf += 1;
                leaf - 1
            } else {
                node += 1;
                node - 1
            }
        };
        let (a, b) = (pick(), pick());
        weight[next] = weight[a] + weight[b];
        parent[a] = next;
        parent[b] = next;
    }
    let mut depth = [0u32; 2 * SYMBOLS];
    for i in (0..2 * n - 2).rev() {
        depth[i] = depth[parent[i]] + 1;
    }
    for (i, &(_, s)) in used.iter().enumerate() {
        lengths[s] = depth[i].min(MAX_CODE_LEN) as u8;
    }
    // Clamping may over-subscribe the code space: lengthen the deepest codes still short of the
    // limit until the Kraft sum fits.
    let limit = 1u64 << MAX_CODE_LEN;
    let kraft = |lengths: &[u8; SYMBOLS]| -> u64 {
        lengths
            .iter()
            .filter(|&&l| l > 0)
            .map(|&l| 1u64 << (MAX_CODE_LEN - u32::from(l)))
            .sum()
    };
    while kraft(&lengths) > limit {
        let deepest = lengths
            .iter()
            .enumerate()
            .filter(|(_, &l)| l > 0 && u32::from(l) < MAX_CODE_LEN)
            .max_by_key(|(s, &l)| (l, std::cmp::Reverse(counts[*s])))
            .map(|(s, _)| s);
        match deepest {
            Some(s) => lengths[s] += 1,
            None => break,
        }
    }
    lengths
}

/// Canonical codes, bit-reversed for LSB-first output.
fn codes(lengths: &[u8; SYMBOLS]) -> [u16; SYMBOLS] {
    let mut count = [0u16; MAX_CODE_LEN as usize + 1];
    for &l in lengths {
        count[usize::from(l)] += 1;
    }
    count[0] = 0;
    let mut next = [0u16; MAX_CODE_LEN as usize + 2];
    let mut code = 0u16;
    for len in 1..=MAX_CODE_LEN as usize {
        code = (code + count[len - 1]) << 1;
        next[len] = code;
    }
    let mut codes = [0u16; SYMBOLS];
    for (s, &l) in lengths.iter().enumerate() {
        if l > 0 {
            let c = next[usize::from(l)];
            next[usize::from(l)] += 1;
            codes[s] = c.reverse_bits() >> (16 - u32::from(l));
        }
    }
    codes
}

/// Bits the payload takes for `counts` under `lengths`.
pub fn payload_bits(counts: &[u64; SYMBOLS], lengths: &[u8; SYMBOLS]) -> u64 {
    counts
        .iter()
        .zip(lengths)
        .enumerate()
        .map(|(s, (&c, &l))| c * (u64::from(l) + u64::from(extra_bits(s))))
        .sum()
}

/// Bytes of the table: its symbol count, then one nibble per symbol (stream lengths excluded).
pub fn table_len(lengths: &[u8; SYMBOLS]) -> usize {
    let used = lengths.iter().rposition(|&l| l > 0).map_or(0, |p| p + 1);
    1 + used.div_ceil(2)
}

/// Appends the table and the payload (length-prefixed) coding `values` (zigzagged residuals).
pub fn encode(values: &[u32], lengths: &[u8; SYMBOLS], out: &mut Vec<u8>) {
    let used = lengths.iter().rposition(|&l| l > 0).map_or(0, |p| p + 1);
    out.push(used as u8);
    for pair in lengths[..used].chunks(2) {
        out.push(pair[0] | pair.get(1).map_or(0, |&h| h << 4));
    }
    let codes = codes(lengths);
    // Two interleaved streams (the first half of the values, then the second) let a decoder
    // overlap the latency of two lookups.
    let (first, second) = values.split_at(values.len().div_ceil(2));
    let a = encode_stream(first, lengths, &codes);
    let b = encode_stream(second, lengths, &codes);
    put_varint(out, a.len() as u64);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(&a);
    out.extend_from_slice(&b);
}

fn encode_stream(values: &[u32], lengths: &[u8; SYMBOLS], codes: &[u16; SYMBOLS]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(values.len() * 2);
    let mut w = BitWriter::new(&mut payload);
    for &u in values {
        let s = symbol_of(u);
        w.put(u32::from(codes[s]), u32::from(lengths[s]));
        w.put(u - base_of(s), extra_bits(s));
    }
    w.finish();
    payload
}

/// Entry of the decoding table: code length in bits 0..4 (0: no code has these bits), raw-bit
/// count in bits 4..9, and in bits 9..13 the bin's leading bits `m`: the bin's base is
/// `m << raw_bits` (for bins below 16, `m` is the value itself and there are no raw bits).
type Entry = u16;

fn entry(symbol: usize, len: u8) -> Entry {
    let extra = extra_bits(symbol);
    let lead = base_of(symbol) >> extra;
    ((lead as u16) << 9) | ((extra as u16) << 4) | u16::from(len)
}

/// Reads a table and payload written by [`encode`], decoding `n` residuals (unzigzagged) into
/// `out`.
pub fn decode(r: &mut Reader<'_>, n: usize, out: &mut Vec<i32>) -> Result<(), Error> {
    let used = usize::from(r.u8("huffman symbol count")?);
    if used == 0 || used > SYMBOLS {
        return Err(r.corruption("huffman symbol count", SYMBOLS as u64, used as u64));
    }
    let nibbles = r.take(used.div_ceil(2), "huffman code lengths")?;
    let mut lengths = [0u8; SYMBOLS];
    for (s, l) in lengths.iter_mut().enumerate().take(used) {
        let byte = nibbles.get(s / 2).copied().unwrap_or(0);
        *l = if s % 2 == 0 { byte & 15 } else { byte >> 4 };
    }
    let kraft: u64 = lengths
        .iter()
        .filter(|&&l| l > 0)
        .map(|&l| {
            if u32::from(l) <= MAX_CODE_LEN {
                1u64 << (MAX_CODE_LEN - u32::from(l))
            } else {
                u64::MAX / 256
            }
        })
        .sum();
    if kraft > 1 << MAX_CODE_LEN || kraft == 0 {
        return Err(r.corruption("huffman code lengths (kraft sum)", 1 << MAX_CODE_LEN, kraft));
    }
    let codes = codes(&lengths);
    // Built by doubling: once `table[..1 << (k - 1)]` decodes every code shorter than k, its copy
    // above it does too (the extra peeked bit belongs to the next value), and each code of length
    // k then takes its one slot below `1 << k` (codes are prefix-free, so the slot is free).
    const LENS: usize = MAX_CODE_LEN as usize + 1;
    // Bins grouped by code length (a counting sort).
    let mut starts = [0usize; LENS + 1];
    for &l in &lengths {
        starts[usize::from(l) + 1] += 1;
    }
    for k in 1..=LENS {
        starts[k] += starts[k - 1];
    }
    let mut by_len = [0u8; SYMBOLS];
    let mut next = starts;
    for (s, &l) in lengths.iter().enumerate() {
        if let Some(slot) = by_len.get_mut(next[usize::from(l)]) {
            *slot = s as u8;
        }
        next[usize::from(l)] += 1;
    }
    let mut table = [0 as Entry; 1 << MAX_CODE_LEN];
    for k in 1..LENS {
        let half = 1usize << (k - 1);
        table.copy_within(..half, half);
        for &s in by_len.get(starts[k]..starts[k + 1]).unwrap_or_default() {
            let s = usize::from(s) & (SYMBOLS - 1);
            if let Some(slot) = table.get_mut(usize::from(codes[s])) {
                *slot = entry(s, k as u8);
            }
        }
    }
    let len_a = r.varint_in("huffman stream length", 0, r.remaining() as u64)? as usize;
    let len_b = r.varint_in("huffman stream length", 0, r.remaining() as u64)? as usize;
    let at_a = r.offset();
    let mut a = Stream::new(r.take(len_a, "huffman stream")?);
    let at_b = r.offset();
    let mut b = Stream::new(r.take(len_b, "huffman stream")?);

    out.clear();
    out.resize(n, 0);
    let (first, second) = out.split_at_mut(n.div_ceil(2));
    let mut invalid = false;
    for (x, y) in first.iter_mut().zip(second.iter_mut()) {
        *x = a.next(&table, &mut invalid);
        *y = b.next(&table, &mut invalid);
    }
    if first.len() > second.len() {
        if let Some(x) = first.last_mut() {
            *x = a.next(&table, &mut invalid);
        }
    }
    if invalid {
        return Err(Error::Corruption {
            offset: at_a,
            what: "huffman code",
            expected: 0,
            found: 1,
        });
    }
    a.check_end(at_a)?;
    b.check_end(at_b)
}

/// An LSB-first bit reader over one stream.
struct Stream<'p> {
    payload: &'p [u8],
    /// Next payload byte to load.
    pos: usize,
    buf: u64,
    avail: u32,
}

impl<'p> Stream<'p> {
    fn new(payload: &'p [u8]) -> Stream<'p> {
        Stream {
            payload,
            pos: 0,
            buf: 0,
            avail: 0,
        }
    }

    /// Decodes one residual; a bit pattern with no code sets `invalid`.
    #[inline(always)]
    fn next(&mut self, table: &[Entry; 1 << MAX_CODE_LEN], invalid: &mut bool) -> i32 {
        // A value takes at most 11 + 29 bits; refill to at least 56 when fewer are buffered.
        // Bytes past the payload read as zero.
        if self.avail < 40 {
            let word = match self.payload.get(self.pos..self.pos + 8) {
                Some(w) => {
                    let mut word = [0u8; 8];
                    word.copy_from_slice(w);
                    u64::from_le_bytes(word)
                }
                None => tail_word(self.payload, self.pos),
            };
            self.buf |= word << self.avail;
            self.pos += ((63 - self.avail) >> 3) as usize;
            self.avail |= 56;
        }
        let e = table[(self.buf & ((1u64 << MAX_CODE_LEN) - 1)) as usize];
        let len = u32::from(e & 15);
        *invalid |= len == 0;
        let extra = u32::from((e >> 4) & 31);
        // `extra` ≤ 29 and `len` ≤ 11: the raw bits are the low `extra` of `buf >> len`.
        let low = ((self.buf >> len) as u32) & ((1u32 << extra) - 1);
        self.buf >>= len + extra;
        self.avail -= len + extra;
        unzigzag32((u32::from(e >> 9) << extra) | low)
    }

    /// Every byte of the stream was needed, and none past it.
    fn check_end(&self, at: u64) -> Result<(), Error> {
        let consumed = (self.pos as u64 * 8)
            .saturating_sub(u64::from(self.avail))
            .div_ceil(8);
        let len = self.payload.len() as u64;
        let what = "huffman stream length";
        if consumed > len {
            return Err(Error::Truncated {
                offset: at,
                what,
                needed: consumed,
                available: len,
            });
        }
        if consumed < len {
            return Err(Error::Corruption {
                offset: at,
                what,
                expected: len,
                found: consumed,
            });
        }
        Ok(())
    }
}

/// The 8 bytes at `pos`, zero past the end of `payload`.
#[cold]
fn tail_word(payload: &[u8], pos: usize) -> u64 {
    let mut word = [0u8; 8];
    let rest = payload.get(pos..).unwrap_or_default();
    for (w, b) in word.iter_mut().zip(rest) {
        *w = *b;
    }
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::zigzag32;

    fn round_trip(values: &[u32]) -> Vec<u8> {
        let mut counts = [0u64; SYMBOLS];
        for &u in values {
            counts[symbol_of(u)] += 1;
        }
        let lengths = code_lengths(&counts);
        let mut out = Vec::new();
        encode(values, &lengths, &mut out);
        let mut back = Vec::new();
        decode(&mut Reader::new(&out, 0), values.len(), &mut back).expect("decodes");
        let back: Vec<u32> = back.into_iter().map(zigzag32).collect();
        assert_eq!(back, values);
        out
    }

    #[test]
    fn every_bin_maps_back_to_its_values() {
        for u in (0..70_000u32).chain([u32::MAX, u32::MAX - 1, 1 << 31, (1 << 31) - 1]) {
            let s = symbol_of(u);
            assert!(s < SYMBOLS);
            let low = u - base_of(s);
            assert!(u64::from(low) < 1u64 << extra_bits(s), "u {u} symbol {s}");
        }
    }

    #[test]
    fn skewed_counts_are_limited_to_the_longest_code() {
        // Fibonacci weights would need codes of ~30 bits without the limit.
        let mut counts = [0u64; SYMBOLS];
        let (mut a, mut b) = (1u64, 1u64);
        for c in counts.iter_mut().take(40) {
            *c = a;
            (a, b) = (b, a + b);
        }
        let lengths = code_lengths(&counts);
        assert!(lengths.iter().all(|&l| u32::from(l) <= MAX_CODE_LEN));
        let kraft: u64 = lengths
            .iter()
            .filter(|&&l| l > 0)
            .map(|&l| 1u64 << (MAX_CODE_LEN - u32::from(l)))
            .sum();
        assert!(kraft <= 1 << MAX_CODE_LEN);
        let values: Vec<u32> = (0..40u32)
            .flat_map(|s| std::iter::repeat_n(base_of(s as usize), (s % 5 + 1) as usize))
            .collect();
        round_trip(&values);
    }

    #[test]
    fn one_symbol_and_extreme_values_round_trip() {
        round_trip(&[7; 100]);
        round_trip(&[u32::MAX, 0, 1 << 31, 12345, u32::MAX]);
    }

    #[test]
    fn a_payload_longer_than_its_values_is_corruption() {
        let mut out = round_trip(&[1, 2, 3, 4, 5, 6, 7, 8]);
        out.push(0);
        // Grow the first stream by one byte: its length is the byte after the table.
        let table = 1 + 9usize.div_ceil(2);
        out[table] += 1;
        let mut back = Vec::new();
        let err = decode(&mut Reader::new(&out, 0), 8, &mut back).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corruption);
    }
}
