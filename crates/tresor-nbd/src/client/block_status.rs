//! Block status (`NBD_CMD_BLOCK_STATUS`) for one negotiated meta context,
//! repeated until the asked range is covered.

use super::{check_cookie, server_err, too_many_chunks, NbdClient, MAX_OTHER_CHUNKS};
use crate::error::{NbdError, Result};
use crate::proto::*;

impl NbdClient {
    /// Queries the negotiated meta context `context_name` for the range starting at
    /// `offset`, `len` bytes long, clamped to the export size.
    ///
    /// Returns `(length, flags)` extents that start at `offset` and together cover
    /// exactly the (clamped) range; adjacent extents with equal flags are merged.
    /// The server may answer a request for less than asked; this function sends
    /// further requests until the range is covered. Flag meanings depend on the
    /// context: for `base:allocation` see [`crate::STATE_HOLE`] and
    /// [`crate::STATE_ZERO`]; for `qemu:dirty-bitmap:*` see [`crate::STATE_DIRTY`].
    pub fn block_status(
        &mut self,
        context_name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<(u64, u32)>> {
        self.check_usable()?;
        let id = *self
            .contexts
            .get(context_name)
            .ok_or_else(|| NbdError::ContextNotNegotiated(context_name.to_string()))?;
        if offset > self.size {
            return Err(NbdError::OutOfRange {
                offset,
                length: len,
                size: self.size,
            });
        }
        let end = offset.saturating_add(len).min(self.size);
        let min = self.block_size.minimum as u64;
        // Largest u32 length that is a multiple of the minimum block size.
        let max_req = (u32::MAX as u64) / min * min;
        let mut out: Vec<(u64, u32)> = Vec::new();
        let mut pos = offset;
        while pos < end {
            let before = pos;
            // The request itself is aligned; extents before `pos` are skipped below.
            let req_start = pos / min * min;
            let req_end = end.div_ceil(min) * min;
            let req_len = (req_end - req_start).min(max_req);
            let r = self.block_status_one(id, req_start, req_len);
            if r.as_ref()
                .is_err_and(|e| !matches!(e, NbdError::Server { .. }))
            {
                self.broken = true;
            }
            let extents = r?;
            let mut at = req_start;
            for (l, f) in extents {
                let l = l as u64;
                // Saturating: descriptors are the server's, their sum may be anything.
                let (s, e) = (at.max(pos), at.saturating_add(l).min(end));
                at = at.saturating_add(l);
                if s >= e {
                    continue;
                }
                match out.last_mut() {
                    Some(last) if last.1 == f => last.0 += e - s,
                    _ => out.push((e - s, f)),
                }
                pos = e;
                if pos >= end {
                    break;
                }
            }
            if pos == before {
                self.broken = true;
                return Err(NbdError::Protocol(format!(
                    "block status reply for {req_start}+{req_len} made no progress past {pos}"
                )));
            }
        }
        Ok(out)
    }

    /// One block status request; returns the descriptors for context `id`.
    fn block_status_one(&mut self, id: u32, offset: u64, len: u64) -> Result<Vec<(u32, u32)>> {
        let cookie = self.cookie();
        let what = format!("block status at {offset} length {len}");
        self.send(
            &encode_request(0, CMD_BLOCK_STATUS, cookie, offset, len as u32),
            &what,
        )?;
        let mut extents: Option<Vec<(u32, u32)>> = None;
        let mut error: Option<(u32, String)> = None;
        let mut chunks = 0usize;
        loop {
            chunks += 1;
            if chunks > MAX_OTHER_CHUNKS {
                return Err(too_many_chunks(&what));
            }
            match self.read_reply(&what, 0)? {
                Reply::Simple {
                    cookie: c,
                    error: e,
                } => {
                    check_cookie(c, cookie)?;
                    if e != 0 {
                        return Err(server_err("block status", offset, len, e, String::new()));
                    }
                    return Err(NbdError::Protocol(format!(
                        "simple reply without error to {what}"
                    )));
                }
                Reply::Chunk(ch) => {
                    check_cookie(ch.cookie, cookie)?;
                    let done = ch.is_done();
                    match ch.payload {
                        ChunkPayload::None => {}
                        ChunkPayload::BlockStatus {
                            context_id,
                            extents: e,
                        } => {
                            if context_id == id {
                                if e.iter().any(|&(l, _)| l == 0) {
                                    return Err(NbdError::Protocol(format!(
                                        "zero-length extent in reply to {what}"
                                    )));
                                }
                                if extents.replace(e).is_some() {
                                    return Err(NbdError::Protocol(format!(
                                        "two block status chunks for one context in reply to {what}"
                                    )));
                                }
                            } else if !self.contexts.values().any(|&v| v == context_id) {
                                return Err(NbdError::Protocol(format!(
                                    "block status for unknown context id {context_id}"
                                )));
                            }
                        }
                        ChunkPayload::Error { errno, message, .. } => {
                            error.get_or_insert((errno, message));
                        }
                        ChunkPayload::OffsetData { .. } | ChunkPayload::OffsetHole { .. } => {
                            return Err(NbdError::Protocol(format!(
                                "read chunk in reply to {what}"
                            )))
                        }
                        ChunkPayload::Unknown { kind } => {
                            return Err(NbdError::Protocol(format!(
                                "unknown chunk type {kind} in reply to {what}"
                            )))
                        }
                    }
                    if done {
                        break;
                    }
                }
            }
        }
        if let Some((errno, message)) = error {
            return Err(server_err("block status", offset, len, errno, message));
        }
        extents.ok_or_else(|| {
            NbdError::Protocol(format!(
                "no extents for the requested context in reply to {what}"
            ))
        })
    }
}
