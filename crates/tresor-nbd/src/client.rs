//! The single-connection client.

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::error::{NbdError, Result};
use crate::proto::*;

/// Largest read request sent when the server announces no maximum block size.
pub const DEFAULT_MAX_REQUEST: u32 = MAX_READ_LEN;

/// Most replies accepted to one handshake option. Each option this client sends is
/// answered with a handful; a server that keeps sending is cut off, not followed.
const MAX_OPTION_REPLIES: usize = 1024;

/// Most chunks that carry no data (none, error, block status of another context)
/// accepted in one reply. Data and hole chunks are bounded by the bytes they must
/// cover; these are not, and a server that keeps sending them is cut off.
const MAX_OTHER_CHUNKS: usize = 1024;

/// Largest export size accepted: NBD sizes are file offsets (`off_t`), and keeping
/// them below 2^63 keeps the client's rounding to block sizes free of overflow.
const MAX_EXPORT_SIZE: u64 = i64::MAX as u64;

/// A connected socket of either kind.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }
    fn shutdown(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// Block size constraints announced by the server (`NBD_INFO_BLOCK_SIZE`), or the
/// protocol defaults when it announced none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSize {
    /// Minimum block size: offsets and lengths of requests are multiples of it.
    pub minimum: u32,
    /// Preferred block size.
    pub preferred: u32,
    /// Maximum payload of one request.
    pub maximum: u32,
}

/// A connection to one export of an NBD server, in the transmission phase.
///
/// Requests are sent one at a time and are answered before the next one is sent;
/// use one client per thread (see [`crate::NbdPool`]) for parallel I/O. After an I/O
/// or protocol error the connection is marked broken and every later call returns
/// [`NbdError::Broken`].
#[derive(Debug)]
pub struct NbdClient {
    reader: BufReader<Stream>,
    writer: Stream,
    export: String,
    size: u64,
    flags: u16,
    block_size: BlockSize,
    block_size_announced: bool,
    structured: bool,
    contexts: HashMap<String, u32>,
    next_cookie: u64,
    broken: bool,
    closed: bool,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> NbdError {
    let context = context.into();
    move |source| NbdError::Io { context, source }
}

fn put_str(v: &mut Vec<u8>, s: &str) {
    v.extend_from_slice(&(s.len() as u32).to_be_bytes());
    v.extend_from_slice(s.as_bytes());
}

impl NbdClient {
    /// Connects to a server on a Unix socket, negotiates structured replies and the
    /// given meta contexts (e.g. `base:allocation`, `qemu:dirty-bitmap:NAME`), and
    /// opens `export_name` with `NBD_OPT_GO`.
    ///
    /// Fails with [`NbdError::MetaContextUnsupported`] naming the first requested
    /// context the server does not offer, and with [`NbdError::GoUnsupported`] for
    /// servers without `NBD_OPT_GO`.
    pub fn connect_unix(
        path: impl AsRef<Path>,
        export_name: &str,
        meta_contexts: &[&str],
    ) -> Result<NbdClient> {
        let path = path.as_ref();
        let s = UnixStream::connect(path).map_err(|source| NbdError::Connect {
            target: path.display().to_string(),
            source,
        })?;
        Self::handshake(Stream::Unix(s), export_name, meta_contexts)
    }

    /// Like [`NbdClient::connect_unix`], over TCP (tries every resolved address).
    pub fn connect_tcp(
        addr: impl ToSocketAddrs,
        export_name: &str,
        meta_contexts: &[&str],
    ) -> Result<NbdClient> {
        let addrs: Vec<_> = addr
            .to_socket_addrs()
            .map_err(|source| NbdError::Connect {
                target: "<unresolved address>".into(),
                source,
            })?
            .collect();
        let target = addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let s = TcpStream::connect(&addrs[..])
            .map_err(|source| NbdError::Connect { target, source })?;
        let _ = s.set_nodelay(true);
        Self::handshake(Stream::Tcp(s), export_name, meta_contexts)
    }

    /// Like [`NbdClient::connect_unix`], on an already connected Unix socket (one
    /// end of a socket pair, a descriptor passed by another process).
    pub fn from_unix_stream(
        stream: UnixStream,
        export_name: &str,
        meta_contexts: &[&str],
    ) -> Result<NbdClient> {
        Self::handshake(Stream::Unix(stream), export_name, meta_contexts)
    }

    /// Runs the handshake on an already connected stream.
    pub(crate) fn handshake(
        stream: Stream,
        export_name: &str,
        meta_contexts: &[&str],
    ) -> Result<NbdClient> {
        let writer = stream.try_clone().map_err(io_err("cloning the socket"))?;
        let mut c = NbdClient {
            reader: BufReader::with_capacity(256 * 1024, stream),
            writer,
            export: export_name.to_string(),
            size: 0,
            flags: 0,
            block_size: BlockSize {
                minimum: 1,
                preferred: 4096,
                maximum: DEFAULT_MAX_REQUEST,
            },
            block_size_announced: false,
            structured: false,
            contexts: HashMap::new(),
            next_cookie: 1,
            broken: false,
            closed: false,
        };
        match c.negotiate(export_name, meta_contexts) {
            Ok(()) => Ok(c),
            Err(e) => {
                // Soft disconnect where possible; the error is what matters.
                c.closed = true;
                let _ = c.writer.write_all(&encode_option(OPT_ABORT, &[]));
                let _ = c.writer.shutdown();
                Err(e)
            }
        }
    }

    fn read_exact_ctx(&mut self, buf: &mut [u8], ctx: &str) -> Result<()> {
        self.reader.read_exact(buf).map_err(io_err(ctx))
    }

    fn negotiate(&mut self, export: &str, meta_contexts: &[&str]) -> Result<()> {
        let mut hello = [0u8; 18];
        self.read_exact_ctx(&mut hello, "reading the server greeting")?;
        if u64::from_be_bytes(hello[0..8].try_into().unwrap()) != NBD_MAGIC {
            return Err(NbdError::Protocol(
                "greeting does not start with NBDMAGIC".into(),
            ));
        }
        match u64::from_be_bytes(hello[8..16].try_into().unwrap()) {
            IHAVEOPT => {}
            CLISERV_MAGIC => return Err(NbdError::UnsupportedHandshake("oldstyle server")),
            m => return Err(NbdError::Protocol(format!("bad greeting magic {m:#018x}"))),
        }
        let hflags = u16::from_be_bytes([hello[16], hello[17]]);
        if hflags & FLAG_FIXED_NEWSTYLE == 0 {
            return Err(NbdError::UnsupportedHandshake("plain newstyle server"));
        }
        let mut cflags = FLAG_C_FIXED_NEWSTYLE;
        if hflags & FLAG_NO_ZEROES != 0 {
            cflags |= FLAG_C_NO_ZEROES;
        }
        self.send(&cflags.to_be_bytes(), "sending client flags")?;

        // Structured replies.
        self.send(
            &encode_option(OPT_STRUCTURED_REPLY, &[]),
            "sending NBD_OPT_STRUCTURED_REPLY",
        )?;
        let r = self.option_reply(OPT_STRUCTURED_REPLY)?;
        match r.kind {
            REP_ACK => self.structured = true,
            REP_ERR_UNSUP => {
                if !meta_contexts.is_empty() {
                    return Err(NbdError::StructuredRepliesUnsupported(
                        meta_contexts.iter().map(|s| s.to_string()).collect(),
                    ));
                }
            }
            k => return Err(self.unexpected(OPT_STRUCTURED_REPLY, k, &r.data)),
        }

        // Meta contexts.
        if !meta_contexts.is_empty() {
            let mut d = Vec::new();
            put_str(&mut d, export);
            d.extend_from_slice(&(meta_contexts.len() as u32).to_be_bytes());
            for q in meta_contexts {
                put_str(&mut d, q);
            }
            self.send(
                &encode_option(OPT_SET_META_CONTEXT, &d),
                "sending NBD_OPT_SET_META_CONTEXT",
            )?;
            for replies in 1.. {
                if replies > MAX_OPTION_REPLIES {
                    return Err(too_many_replies(OPT_SET_META_CONTEXT));
                }
                let r = self.option_reply(OPT_SET_META_CONTEXT)?;
                match r.kind {
                    REP_ACK => break,
                    REP_META_CONTEXT => {
                        if r.data.len() < 4 {
                            return Err(NbdError::Protocol("short NBD_REP_META_CONTEXT".into()));
                        }
                        let id = u32::from_be_bytes(r.data[..4].try_into().unwrap());
                        let name = String::from_utf8_lossy(&r.data[4..]).into_owned();
                        self.contexts.insert(name, id);
                    }
                    k => return Err(self.unexpected(OPT_SET_META_CONTEXT, k, &r.data)),
                }
            }
            for q in meta_contexts {
                if !self.contexts.contains_key(*q) {
                    return Err(NbdError::MetaContextUnsupported {
                        name: q.to_string(),
                        export: export.to_string(),
                    });
                }
            }
        }

        // GO, asking for block size constraints.
        let mut d = Vec::new();
        put_str(&mut d, export);
        d.extend_from_slice(&1u16.to_be_bytes());
        d.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
        self.send(&encode_option(OPT_GO, &d), "sending NBD_OPT_GO")?;
        let mut have_export = false;
        for replies in 1.. {
            if replies > MAX_OPTION_REPLIES {
                return Err(too_many_replies(OPT_GO));
            }
            let r = self.option_reply(OPT_GO)?;
            match r.kind {
                REP_ACK => break,
                REP_INFO => {
                    let data = &r.data;
                    if data.len() < 2 {
                        return Err(NbdError::Protocol("short NBD_REP_INFO".into()));
                    }
                    match u16::from_be_bytes([data[0], data[1]]) {
                        INFO_EXPORT => {
                            if data.len() != 12 {
                                return Err(NbdError::Protocol(format!(
                                    "NBD_INFO_EXPORT of {} bytes",
                                    data.len()
                                )));
                            }
                            self.size = u64::from_be_bytes(data[2..10].try_into().unwrap());
                            if self.size > MAX_EXPORT_SIZE {
                                return Err(NbdError::Protocol(format!(
                                    "export size {} exceeds the limit of {MAX_EXPORT_SIZE}",
                                    self.size
                                )));
                            }
                            self.flags = u16::from_be_bytes([data[10], data[11]]);
                            have_export = true;
                        }
                        INFO_BLOCK_SIZE => {
                            if data.len() != 14 {
                                return Err(NbdError::Protocol(format!(
                                    "NBD_INFO_BLOCK_SIZE of {} bytes",
                                    data.len()
                                )));
                            }
                            let g =
                                |i: usize| u32::from_be_bytes(data[i..i + 4].try_into().unwrap());
                            let bs = BlockSize {
                                minimum: g(2),
                                preferred: g(6),
                                maximum: g(10),
                            };
                            if bs.minimum == 0
                                || !bs.minimum.is_power_of_two()
                                || bs.minimum > 64 * 1024
                                || bs.maximum < bs.minimum
                            {
                                return Err(NbdError::Protocol(format!(
                                    "invalid block size constraints {bs:?}"
                                )));
                            }
                            self.block_size = bs;
                            self.block_size_announced = true;
                        }
                        _ => {} // Unrequested info: ignore, as the spec allows.
                    }
                }
                REP_ERR_UNSUP => return Err(NbdError::GoUnsupported),
                REP_ERR_UNKNOWN => return Err(NbdError::UnknownExport(export.to_string())),
                k => return Err(self.unexpected(OPT_GO, k, &r.data)),
            }
        }
        if !have_export {
            return Err(NbdError::Protocol(
                "NBD_OPT_GO acknowledged without NBD_INFO_EXPORT".into(),
            ));
        }
        Ok(())
    }

    fn unexpected(&self, option: u32, kind: u32, data: &[u8]) -> NbdError {
        if kind & REP_FLAG_ERROR != 0 {
            NbdError::OptionRefused {
                option: option_name(option),
                reply: rep_err_name(kind),
                message: String::from_utf8_lossy(data).into_owned(),
            }
        } else {
            NbdError::Protocol(format!(
                "unexpected reply type {kind} to {}",
                option_name(option)
            ))
        }
    }

    fn send(&mut self, bytes: &[u8], ctx: &str) -> Result<()> {
        self.writer.write_all(bytes).map_err(io_err(ctx))
    }

    fn option_reply(&mut self, option: u32) -> Result<OptionReply> {
        let mut buf = Vec::new();
        loop {
            match parse_option_reply(&buf)? {
                Parse::Incomplete { needed } => {
                    let old = buf.len();
                    buf.resize(needed, 0);
                    let ctx = format!("reading the reply to {}", option_name(option));
                    self.read_exact_ctx(&mut buf[old..], &ctx)?;
                }
                Parse::Complete { value, .. } => {
                    if value.option != option {
                        return Err(NbdError::Protocol(format!(
                            "reply for option {} while waiting for {}",
                            value.option,
                            option_name(option)
                        )));
                    }
                    return Ok(value);
                }
            }
        }
    }

    /// Export size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The export name this client opened.
    pub fn export_name(&self) -> &str {
        &self.export
    }

    /// Transmission flags (`NBD_FLAG_*`) announced by the server.
    pub fn transmission_flags(&self) -> u16 {
        self.flags
    }

    /// Whether the server marked the export read-only.
    pub fn is_read_only(&self) -> bool {
        self.flags & TFLAG_READ_ONLY != 0
    }

    /// Whether the server allows several connections to the same export
    /// (`NBD_FLAG_CAN_MULTI_CONN`). Read-only exports are consistent across
    /// connections anyway.
    pub fn can_multi_conn(&self) -> bool {
        self.flags & TFLAG_CAN_MULTI_CONN != 0
    }

    /// Block size constraints (protocol defaults if the server announced none:
    /// minimum 1, preferred 4096, maximum 32 MiB).
    pub fn block_size(&self) -> BlockSize {
        self.block_size
    }

    /// Whether structured replies were negotiated.
    pub fn structured_replies(&self) -> bool {
        self.structured
    }

    /// The negotiated meta contexts and the ids the server gave them. Ids are
    /// chosen by the server and are not necessarily consecutive.
    pub fn meta_contexts(&self) -> &HashMap<String, u32> {
        &self.contexts
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

    fn check_usable(&self) -> Result<()> {
        if self.broken || self.closed {
            Err(NbdError::Broken)
        } else {
            Ok(())
        }
    }

    fn cookie(&mut self) -> u64 {
        let c = self.next_cookie;
        self.next_cookie = self.next_cookie.wrapping_add(1);
        c
    }

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

    /// Reads one reply message to a request of `max_data` bytes of data (see
    /// [`parse_reply_for`]): never buffers more than that request's limits.
    fn read_reply(&mut self, what: &str, max_data: u32) -> Result<Reply> {
        let mut buf = Vec::new();
        loop {
            match parse_reply_for(&buf, max_data)? {
                Parse::Incomplete { needed } => {
                    let old = buf.len();
                    buf.resize(needed, 0);
                    self.reader
                        .read_exact(&mut buf[old..])
                        .map_err(io_err(format!("reading the reply to {what}")))?;
                }
                Parse::Complete { value, .. } => return Ok(value),
            }
        }
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

    /// Sends `NBD_CMD_DISC` and closes the connection. Later calls fail with
    /// [`NbdError::Broken`]; dropping the client does this best-effort.
    pub fn disconnect(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let cookie = self.cookie();
        let r = self.send(
            &encode_request(0, CMD_DISC, cookie, 0, 0),
            "sending NBD_CMD_DISC",
        );
        let _ = self.writer.shutdown();
        r
    }
}

impl Drop for NbdClient {
    fn drop(&mut self) {
        if !self.broken {
            let _ = self.disconnect();
        }
    }
}

fn too_many_replies(option: u32) -> NbdError {
    NbdError::Protocol(format!(
        "more than {MAX_OPTION_REPLIES} replies to {}",
        option_name(option)
    ))
}

fn too_many_chunks(what: &str) -> NbdError {
    NbdError::Protocol(format!(
        "more than {MAX_OTHER_CHUNKS} chunks without data in the reply to {what}"
    ))
}

fn check_cookie(got: u64, want: u64) -> Result<()> {
    if got != want {
        return Err(NbdError::Protocol(format!(
            "reply for cookie {got} while waiting for {want}"
        )));
    }
    Ok(())
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

fn server_err(
    command: &'static str,
    offset: u64,
    length: u64,
    errno: u32,
    message: String,
) -> NbdError {
    NbdError::Server {
        command,
        offset,
        length,
        errno,
        message,
    }
}

#[cfg(test)]
mod tests {
    //! The client against a scripted in-process server, for behaviour `qemu-nbd`
    //! does not show on demand (short block status replies, error chunks, no GO).

    use super::*;
    use std::thread;

    struct Fake(UnixStream);

    impl Fake {
        fn greet(&mut self) {
            self.0.write_all(&NBD_MAGIC.to_be_bytes()).unwrap();
            self.0.write_all(&IHAVEOPT.to_be_bytes()).unwrap();
            self.0
                .write_all(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes())
                .unwrap();
            let mut f = [0u8; 4];
            self.0.read_exact(&mut f).unwrap();
            assert_eq!(
                u32::from_be_bytes(f),
                FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES
            );
        }
        fn option(&mut self) -> (u32, Vec<u8>) {
            let mut h = [0u8; 16];
            self.0.read_exact(&mut h).unwrap();
            assert_eq!(u64::from_be_bytes(h[..8].try_into().unwrap()), IHAVEOPT);
            let opt = u32::from_be_bytes(h[8..12].try_into().unwrap());
            let mut d = vec![0u8; u32::from_be_bytes(h[12..].try_into().unwrap()) as usize];
            self.0.read_exact(&mut d).unwrap();
            (opt, d)
        }
        fn reply(&mut self, opt: u32, kind: u32, data: &[u8]) {
            let mut v = OPT_REPLY_MAGIC.to_be_bytes().to_vec();
            v.extend_from_slice(&opt.to_be_bytes());
            v.extend_from_slice(&kind.to_be_bytes());
            v.extend_from_slice(&(data.len() as u32).to_be_bytes());
            v.extend_from_slice(data);
            self.0.write_all(&v).unwrap();
        }
        /// Full successful negotiation of a `size`-byte export with one context id 7.
        fn negotiate(&mut self, size: u64, context: Option<&str>) {
            self.greet();
            assert_eq!(self.option().0, OPT_STRUCTURED_REPLY);
            self.reply(OPT_STRUCTURED_REPLY, REP_ACK, &[]);
            if let Some(name) = context {
                assert_eq!(self.option().0, OPT_SET_META_CONTEXT);
                let mut d = 7u32.to_be_bytes().to_vec();
                d.extend_from_slice(name.as_bytes());
                self.reply(OPT_SET_META_CONTEXT, REP_META_CONTEXT, &d);
                self.reply(OPT_SET_META_CONTEXT, REP_ACK, &[]);
            }
            assert_eq!(self.option().0, OPT_GO);
            let mut d = INFO_EXPORT.to_be_bytes().to_vec();
            d.extend_from_slice(&size.to_be_bytes());
            d.extend_from_slice(&(TFLAG_HAS_FLAGS | TFLAG_READ_ONLY).to_be_bytes());
            self.reply(OPT_GO, REP_INFO, &d);
            self.reply(OPT_GO, REP_ACK, &[]);
        }
        /// Reads a request: (type, cookie, offset, length).
        fn request(&mut self) -> (u16, u64, u64, u32) {
            let mut r = [0u8; 28];
            self.0.read_exact(&mut r).unwrap();
            (
                u16::from_be_bytes([r[6], r[7]]),
                u64::from_be_bytes(r[8..16].try_into().unwrap()),
                u64::from_be_bytes(r[16..24].try_into().unwrap()),
                u32::from_be_bytes(r[24..28].try_into().unwrap()),
            )
        }
        fn chunk(&mut self, flags: u16, kind: u16, cookie: u64, payload: &[u8]) {
            let mut v = STRUCTURED_REPLY_MAGIC.to_be_bytes().to_vec();
            v.extend_from_slice(&flags.to_be_bytes());
            v.extend_from_slice(&kind.to_be_bytes());
            v.extend_from_slice(&cookie.to_be_bytes());
            v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            v.extend_from_slice(payload);
            self.0.write_all(&v).unwrap();
        }
    }

    fn with_server(
        contexts: &[&str],
        server: impl FnOnce(Fake) + Send + 'static,
    ) -> (Result<NbdClient>, thread::JoinHandle<()>) {
        let (a, b) = UnixStream::pair().unwrap();
        let h = thread::spawn(move || server(Fake(b)));
        (NbdClient::handshake(Stream::Unix(a), "x", contexts), h)
    }

    #[test]
    fn go_unsupported_is_a_clear_error() {
        let (r, h) = with_server(&[], |mut s| {
            s.greet();
            s.option();
            s.reply(OPT_STRUCTURED_REPLY, REP_ACK, &[]);
            s.option();
            s.reply(OPT_GO, REP_ERR_UNSUP, &[]);
            assert_eq!(s.option().0, OPT_ABORT);
        });
        assert!(matches!(r, Err(NbdError::GoUnsupported)), "{r:?}");
        h.join().unwrap();
    }

    #[test]
    fn meta_context_needs_structured_replies() {
        let (r, h) = with_server(&["base:allocation"], |mut s| {
            s.greet();
            s.option();
            s.reply(OPT_STRUCTURED_REPLY, REP_ERR_UNSUP, &[]);
        });
        let e = r.unwrap_err();
        assert!(e.to_string().contains("base:allocation"), "{e}");
        h.join().unwrap();
    }

    #[test]
    fn short_block_status_replies_are_continued() {
        let (r, h) = with_server(&["base:allocation"], |mut s| {
            s.negotiate(1 << 20, Some("base:allocation"));
            // Answer every request only up to the next 4 KiB boundary; flags
            // alternate 0/3 per 4 KiB block.
            loop {
                let (kind, cookie, off, len) = s.request();
                if kind == CMD_DISC {
                    break;
                }
                assert_eq!(kind, CMD_BLOCK_STATUS);
                let l = len.min(4096 - (off % 4096) as u32);
                let flags = ((off / 4096) % 2) as u32 * 3;
                let mut p = 7u32.to_be_bytes().to_vec();
                p.extend_from_slice(&l.to_be_bytes());
                p.extend_from_slice(&flags.to_be_bytes());
                s.chunk(REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, cookie, &p);
            }
        });
        let mut c = r.unwrap();
        assert_eq!(c.meta_contexts()["base:allocation"], 7);
        let ext = c.block_status("base:allocation", 100, 3 * 4096).unwrap();
        assert_eq!(ext, vec![(3996, 0), (4096, 3), (4096, 0), (100, 3)]);
        // Clamped at the export end.
        let ext = c
            .block_status("base:allocation", (1 << 20) - 4096, 1 << 30)
            .unwrap();
        assert_eq!(ext, vec![(4096, 3)]);
        c.disconnect().unwrap();
        h.join().unwrap();
    }

    #[test]
    fn read_chunks_holes_and_errors() {
        let (r, h) = with_server(&[], |mut s| {
            s.negotiate(1 << 20, None);
            // Read 1: data chunk out of order after a hole.
            let (kind, cookie, off, len) = s.request();
            assert_eq!((kind, off, len), (CMD_READ, 0, 8));
            let mut p = 4u64.to_be_bytes().to_vec();
            p.extend_from_slice(&4u32.to_be_bytes());
            s.chunk(0, REPLY_TYPE_OFFSET_HOLE, cookie, &p);
            let mut p = 0u64.to_be_bytes().to_vec();
            p.extend_from_slice(b"abcd");
            s.chunk(REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, cookie, &p);
            // Read 2: error chunk then done.
            let (_, cookie, _, _) = s.request();
            let mut p = 5u32.to_be_bytes().to_vec();
            p.extend_from_slice(&4u16.to_be_bytes());
            p.extend_from_slice(b"oops");
            p.extend_from_slice(&16u64.to_be_bytes());
            s.chunk(0, REPLY_TYPE_ERROR_OFFSET, cookie, &p);
            s.chunk(REPLY_FLAG_DONE, REPLY_TYPE_NONE, cookie, &[]);
            // Read 3: incomplete coverage is a protocol error.
            let (_, cookie, _, _) = s.request();
            s.chunk(REPLY_FLAG_DONE, REPLY_TYPE_NONE, cookie, &[]);
        });
        let mut c = r.unwrap();
        let mut b = [0xffu8; 8];
        c.read_at(0, &mut b).unwrap();
        assert_eq!(&b, b"abcd\0\0\0\0");
        let e = c.read_at(16, &mut b).unwrap_err();
        assert!(matches!(e, NbdError::Server { errno: 5, .. }), "{e}");
        assert!(
            e.to_string().contains("oops") && e.to_string().contains("EIO"),
            "{e}"
        );
        // A server error leaves the connection usable...
        let e = c.read_at(0, &mut b).unwrap_err();
        assert!(matches!(e, NbdError::Protocol(_)), "{e}");
        // ...a protocol error does not.
        assert!(matches!(c.read_at(0, &mut b), Err(NbdError::Broken)));
        h.join().unwrap();
    }

    #[test]
    fn oversized_option_reply_is_refused_from_its_header() {
        let (r, h) = with_server(&[], |mut s| {
            s.greet();
            s.option();
            // Announce 4 GiB of option reply; send only the header.
            let mut v = OPT_REPLY_MAGIC.to_be_bytes().to_vec();
            v.extend_from_slice(&OPT_STRUCTURED_REPLY.to_be_bytes());
            v.extend_from_slice(&REP_ACK.to_be_bytes());
            v.extend_from_slice(&u32::MAX.to_be_bytes());
            s.0.write_all(&v).unwrap();
        });
        let e = r.unwrap_err();
        assert!(
            matches!(e, NbdError::Protocol(_)) && e.to_string().contains("limit of 65536"),
            "{e}"
        );
        h.join().unwrap();
    }

    #[test]
    fn endless_meta_context_replies_are_cut_off() {
        let (r, h) = with_server(&["base:allocation"], |mut s| {
            s.greet();
            s.option();
            s.reply(OPT_STRUCTURED_REPLY, REP_ACK, &[]);
            s.option();
            for i in 0u32.. {
                let mut d = i.to_be_bytes().to_vec();
                d.extend_from_slice(format!("ctx{i}").as_bytes());
                let mut v = OPT_REPLY_MAGIC.to_be_bytes().to_vec();
                v.extend_from_slice(&OPT_SET_META_CONTEXT.to_be_bytes());
                v.extend_from_slice(&REP_META_CONTEXT.to_be_bytes());
                v.extend_from_slice(&(d.len() as u32).to_be_bytes());
                v.extend_from_slice(&d);
                if s.0.write_all(&v).is_err() {
                    break; // The client hung up.
                }
            }
        });
        let e = r.unwrap_err();
        assert!(e.to_string().contains("more than 1024 replies"), "{e}");
        h.join().unwrap();
    }

    #[test]
    fn export_size_beyond_off_t_is_refused() {
        let (r, h) = with_server(&[], |mut s| {
            s.greet();
            s.option();
            s.reply(OPT_STRUCTURED_REPLY, REP_ACK, &[]);
            s.option();
            let mut d = INFO_EXPORT.to_be_bytes().to_vec();
            d.extend_from_slice(&u64::MAX.to_be_bytes());
            d.extend_from_slice(&TFLAG_HAS_FLAGS.to_be_bytes());
            s.reply(OPT_GO, REP_INFO, &d);
        });
        let e = r.unwrap_err();
        assert!(e.to_string().contains("export size"), "{e}");
        h.join().unwrap();
    }

    #[test]
    fn hostile_replies_to_reads_are_cut_off() {
        let (r, h) = with_server(&[], |mut s| {
            s.negotiate(1 << 20, None);
            // Read 1: a data chunk announcing more than the 8 bytes asked for.
            let (_, cookie, _, _) = s.request();
            let mut v = STRUCTURED_REPLY_MAGIC.to_be_bytes().to_vec();
            v.extend_from_slice(&0u16.to_be_bytes());
            v.extend_from_slice(&REPLY_TYPE_OFFSET_DATA.to_be_bytes());
            v.extend_from_slice(&cookie.to_be_bytes());
            v.extend_from_slice(&(16u32 << 20).to_be_bytes());
            s.0.write_all(&v).unwrap();
        });
        let mut c = r.unwrap();
        let mut b = [0u8; 8];
        let e = c.read_at(0, &mut b).unwrap_err();
        assert!(e.to_string().contains("more than the limit of 16"), "{e}");
        h.join().unwrap();

        // Endless error chunks without the done flag.
        let (r, h) = with_server(&[], |mut s| {
            s.negotiate(1 << 20, None);
            let (_, cookie, _, _) = s.request();
            let mut p = 5u32.to_be_bytes().to_vec();
            p.extend_from_slice(&0u16.to_be_bytes());
            loop {
                let mut v = STRUCTURED_REPLY_MAGIC.to_be_bytes().to_vec();
                v.extend_from_slice(&0u16.to_be_bytes());
                v.extend_from_slice(&REPLY_TYPE_ERROR.to_be_bytes());
                v.extend_from_slice(&cookie.to_be_bytes());
                v.extend_from_slice(&(p.len() as u32).to_be_bytes());
                v.extend_from_slice(&p);
                if s.0.write_all(&v).is_err() {
                    break;
                }
            }
        });
        let mut c = r.unwrap();
        let e = c.read_at(0, &mut b).unwrap_err();
        assert!(e.to_string().contains("more than 1024 chunks"), "{e}");
        drop(c);
        h.join().unwrap();

        // Garbage instead of a reply: refused at the first 4 bytes.
        let (r, h) = with_server(&[], |mut s| {
            s.negotiate(1 << 20, None);
            s.request();
            let _ = s.0.write_all(&[0x5a; 1 << 16]);
        });
        let mut c = r.unwrap();
        let e = c.read_at(0, &mut b).unwrap_err();
        assert!(e.to_string().contains("bad reply magic"), "{e}");
        drop(c);
        h.join().unwrap();
    }
}
