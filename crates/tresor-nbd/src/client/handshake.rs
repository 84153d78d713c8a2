//! The handshake: connecting, the fixed newstyle negotiation (structured
//! replies, meta contexts) and opening the export with `NBD_OPT_GO`, up to the
//! transmission phase.

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::{io_err, BlockSize, NbdClient, Stream, DEFAULT_MAX_REQUEST};
use crate::error::{NbdError, Result};
use crate::proto::*;

/// Most replies accepted to one handshake option. Each option this client sends is
/// answered with a handful; a server that keeps sending is cut off, not followed.
const MAX_OPTION_REPLIES: usize = 1024;

/// Largest export size accepted: NBD sizes are file offsets (`off_t`), and keeping
/// them below 2^63 keeps the client's rounding to block sizes free of overflow.
const MAX_EXPORT_SIZE: u64 = i64::MAX as u64;

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
}

fn too_many_replies(option: u32) -> NbdError {
    NbdError::Protocol(format!(
        "more than {MAX_OPTION_REPLIES} replies to {}",
        option_name(option)
    ))
}
