//! Content-defined chunking of a byte stream: FastCDC (2020) with the
//! repository's keyed gear table.
//!
//! Cut points are exactly those of `fastcdc::v2020::StreamCDC` (the chunker
//! used before, and so what existing repositories deduplicate against): each
//! cut is searched in the next `min(max_size, bytes left in the stream)`
//! bytes with the same `cut_gear`. What differs is the buffering.
//! `StreamCDC` keeps a buffer of `max_size`, copies every chunk out of it and
//! then moves the rest of the buffer to its front — about five times the
//! stream moved in memory for the default sizes. [`Chunker`] reads into a
//! larger buffer, hands out chunks as slices of it, and moves the remainder
//! (less than `max_size`) to the front only when the free space behind it is
//! less than `max_size`.

use std::borrow::Cow;
use std::io::{ErrorKind, Read};

use fastcdc::v2020::{Normalization, cut_gear, get_gear_with_seed, select_masks};

/// Read buffer of a [`Chunker`], at least `max_size` (4 MiB: one `read`
/// per 4 MiB of a file; the remainder is moved once per ~3.5 MiB).
pub(crate) const READ_BUFFER: usize = 4 * 1024 * 1024;

pub(crate) struct Chunker<R> {
    source: R,
    buf: Vec<u8>,
    /// First byte not yet handed out.
    start: usize,
    /// End of the bytes read.
    end: usize,
    eof: bool,
    min_size: usize,
    avg_size: usize,
    max_size: usize,
    mask_s: u64,
    mask_l: u64,
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
}

impl<R: Read> Chunker<R> {
    /// Normalization level 1, as `StreamCDC::with_level_and_seed(…, Level1, seed)`.
    pub(crate) fn new(
        source: R,
        min_size: usize,
        avg_size: usize,
        max_size: usize,
        seed: u64,
        buffer: usize,
    ) -> Self {
        let (mask_s, mask_l) = select_masks(avg_size, Normalization::Level1);
        let (gear, gear_ls) = get_gear_with_seed(seed);
        Self {
            source,
            // Room for two maximum chunks, or every fill would move the rest.
            buf: vec![0; buffer.max(2 * max_size)],
            start: 0,
            end: 0,
            eof: false,
            min_size,
            avg_size,
            max_size,
            mask_s,
            mask_l,
            gear,
            gear_ls,
        }
    }

    /// Reads until at least `max_size` bytes are buffered or the stream ends.
    fn fill(&mut self) -> std::io::Result<()> {
        if self.buf.len() - self.end < self.max_size {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while !self.eof && self.end - self.start < self.max_size {
            match self.source.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next chunk, or `None` at the end of the stream.
    pub(crate) fn next_chunk(&mut self) -> std::io::Result<Option<&[u8]>> {
        if !self.eof && self.end - self.start < self.max_size {
            self.fill()?;
        }
        let available = self.end - self.start;
        if available == 0 {
            return Ok(None);
        }
        let window = &self.buf[self.start..self.start + available.min(self.max_size)];
        let (_, count) = cut_gear(
            window,
            self.min_size,
            self.avg_size,
            self.max_size,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        // cut_gear returns at least min(min_size, window) > 0 bytes; guard anyway.
        let count = count.clamp(1, window.len());
        let at = self.start;
        self.start += count;
        Ok(Some(&self.buf[at..at + count]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most `step` bytes per read, like a pipe.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = out.len().min(self.step).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn pseudo_random(n: usize, mut s: u64) -> Vec<u8> {
        (0..n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                // Runs of repeated bytes now and then, so that some chunks
                // are cut at max_size.
                if (i / 700_000) % 3 == 1 { 7 } else { s as u8 }
            })
            .collect()
    }

    fn stream_cdc(data: &[u8], min: usize, avg: usize, max: usize, seed: u64) -> Vec<Vec<u8>> {
        fastcdc::v2020::StreamCDC::with_level_and_seed(
            data,
            min,
            avg,
            max,
            Normalization::Level1,
            seed,
        )
        .map(|c| c.unwrap().data)
        .collect()
    }

    fn ours<R: Read>(
        r: R,
        min: usize,
        avg: usize,
        max: usize,
        seed: u64,
        buffer: usize,
    ) -> Vec<Vec<u8>> {
        let mut c = Chunker::new(r, min, avg, max, seed, buffer);
        let mut out = Vec::new();
        while let Some(chunk) = c.next_chunk().unwrap() {
            out.push(chunk.to_vec());
        }
        out
    }

    #[test]
    fn cuts_exactly_where_stream_cdc_cuts() {
        let data = pseudo_random(5_000_000, 0x9e37_79b9_7f4a_7c15);
        for (min, avg, max) in [(16384, 65536, 524288), (4096, 16384, 131072)] {
            for seed in [0u64, 42, u64::MAX / 3] {
                let expected = stream_cdc(&data, min, avg, max, seed);
                assert!(expected.len() > 10);
                for buffer in [0, max + 1, 3 * max / 2, READ_BUFFER] {
                    for step in [usize::MAX, 65536, 4099] {
                        let got = ours(Trickle { data: &data, step }, min, avg, max, seed, buffer);
                        assert!(
                            got == expected,
                            "min {min} seed {seed} buffer {buffer} step {step}"
                        );
                    }
                }
            }
        }
    }

    /// Taken from fastcdc 5.0.0's StreamCDC (which `ours` equals, above).
    const GOLDEN_COUNT: usize = 29;
    const GOLDEN_FIRST: &[usize] = &[25234, 127476, 142020, 76126, 99970, 85082, 32533, 65140];

    /// Cut points are part of the format: repositories deduplicate against
    /// them. Pinned here against fixed data, so that a change of fastcdc
    /// (which the equivalence test above would follow) is caught.
    #[test]
    fn cut_points_are_pinned() {
        let data = pseudo_random(3_000_000, 7);
        let lengths: Vec<usize> = ours(&data[..], 16384, 65536, 524288, 42, READ_BUFFER)
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(lengths.len(), GOLDEN_COUNT, "{lengths:?}");
        assert_eq!(&lengths[..8], GOLDEN_FIRST, "{lengths:?}");
        assert_eq!(lengths.iter().sum::<usize>(), data.len());
    }

    #[test]
    fn empty_and_tiny_streams() {
        assert!(ours(&b""[..], 16384, 65536, 524288, 1, READ_BUFFER).is_empty());
        assert_eq!(
            ours(&b"abc"[..], 16384, 65536, 524288, 1, READ_BUFFER),
            vec![b"abc".to_vec()]
        );
    }

    #[test]
    fn read_errors_are_returned() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("boom"))
            }
        }
        let mut c = Chunker::new(Failing, 16384, 65536, 524288, 1, READ_BUFFER);
        assert!(c.next_chunk().is_err());
    }
}
