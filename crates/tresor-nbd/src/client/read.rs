//! Reads (`NBD_CMD_READ`): split to the server's maximum request, widened to
//! its minimum block size, with simple or structured replies (data, holes as
//! zeros, error chunks).

use std::io::Read;

use super::{
    check_cookie, io_err, server_err, too_many_chunks, NbdClient, DEFAULT_MAX_REQUEST,
    MAX_OTHER_CHUNKS,
};
use crate::error::{NbdError, Result};
use crate::proto::*;

impl NbdClient {
    /// Reads `buf.len()` bytes at `offset`. Requests larger than the server's
    /// maximum block size (or 32 MiB) are split; unaligned requests are widened to
    /// the server's minimum block size. Holes are returned as zeros.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check_usable()?;
        let len = buf.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(NbdError::OutOfRange {
                offset,
                length: len,
                size: self.size,
            });
        }
        if len == 0 {
            return Ok(());
        }
        let min = self.block_size.minimum as u64;
        if !offset.is_multiple_of(min) || !len.is_multiple_of(min) {
            let start = offset / min * min;
            let end = (offset + len).div_ceil(min) * min;
            let end = end.min(self.size.div_ceil(min) * min);
            let mut tmp = vec![0u8; (end - start) as usize];
            self.read_aligned(start, &mut tmp)?;
            let skip = (offset - start) as usize;
            buf.copy_from_slice(&tmp[skip..skip + buf.len()]);
            return Ok(());
        }
        self.read_aligned(offset, buf)
    }

    fn read_aligned(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let max = self.max_request() as usize;
        let mut done = 0usize;
        while done < buf.len() {
            let n = (buf.len() - done).min(max);
            let r = self.read_one(offset + done as u64, &mut buf[done..done + n]);
            if let Err(e) = &r {
                if !matches!(e, NbdError::Server { .. }) {
                    self.broken = true;
                }
            }
            r?;
            done += n;
        }
        Ok(())
    }

    fn max_request(&self) -> u64 {
        let m = self
            .block_size
            .maximum
            .min(DEFAULT_MAX_REQUEST)
            .max(self.block_size.minimum);
        // Keep requests a multiple of the minimum block size.
        let min = self.block_size.minimum as u64;
        (m as u64 / min) * min
    }

    fn read_one(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let cookie = self.cookie();
        let len = buf.len() as u64;
        let what = format!("read at {offset} length {len}");
        self.send(
            &encode_request(0, CMD_READ, cookie, offset, len as u32),
            &what,
        )?;
        let mut covered = 0u64;
        let mut error: Option<(u32, String)> = None;
        let mut other_chunks = 0usize;
        loop {
            match self.read_reply(&what, len as u32)? {
                Reply::Simple {
                    cookie: c,
                    error: e,
                } => {
                    check_cookie(c, cookie)?;
                    if e != 0 {
                        return Err(server_err("read", offset, len, e, String::new()));
                    }
                    self.reader
                        .read_exact(buf)
                        .map_err(io_err(format!("reading data of {what}")))?;
                    return Ok(());
                }
                Reply::Chunk(ch) => {
                    check_cookie(ch.cookie, cookie)?;
                    let done = ch.is_done();
                    if !matches!(
                        ch.payload,
                        ChunkPayload::OffsetData { .. } | ChunkPayload::OffsetHole { .. }
                    ) {
                        other_chunks += 1;
                        if other_chunks > MAX_OTHER_CHUNKS {
                            return Err(too_many_chunks(&what));
                        }
                    }
                    match ch.payload {
                        ChunkPayload::None => {}
                        ChunkPayload::OffsetData { offset: o, data } => {
                            let rel = range_in(o, data.len() as u64, offset, len, &what)?;
                            buf[rel..rel + data.len()].copy_from_slice(&data);
                            covered += data.len() as u64;
                        }
                        ChunkPayload::OffsetHole { offset: o, length } => {
                            let rel = range_in(o, length as u64, offset, len, &what)?;
                            buf[rel..rel + length as usize].fill(0);
                            covered += length as u64;
                        }
                        ChunkPayload::Error { errno, message, .. } => {
                            error.get_or_insert((errno, message));
                        }
                        ChunkPayload::BlockStatus { .. } => {
                            return Err(NbdError::Protocol(format!(
                                "block status chunk in reply to {what}"
                            )))
                        }
                        ChunkPayload::Unknown { kind } => {
                            return Err(NbdError::Protocol(format!(
                                "unknown chunk type {kind} in reply to {what}"
                            )))
                        }
                    }
                    // Chunks must not overlap: more bytes than asked for is a lie.
                    if covered > len {
                        return Err(NbdError::Protocol(format!(
                            "reply to {what} covered {covered} bytes"
                        )));
                    }
                    if done {
                        break;
                    }
                }
            }
        }
        if let Some((errno, message)) = error {
            return Err(server_err("read", offset, len, errno, message));
        }
        if covered != len {
            return Err(NbdError::Protocol(format!(
                "reply to {what} covered {covered} bytes"
            )));
        }
        Ok(())
    }
}

/// Checks that `[o, o+l)` lies inside the request `[offset, offset+len)` and
/// returns its position relative to the request.
fn range_in(o: u64, l: u64, offset: u64, len: u64, what: &str) -> Result<usize> {
    if o < offset || o.checked_add(l).is_none_or(|e| e > offset + len) {
        return Err(NbdError::Protocol(format!(
            "chunk at {o} length {l} outside {what}"
        )));
    }
    Ok((o - offset) as usize)
}
