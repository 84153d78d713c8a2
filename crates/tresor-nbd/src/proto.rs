//! Wire constants and a pure parser for server messages.
//!
//! The parser works on byte slices and never touches a socket. Each parse function
//! returns [`Parse::Incomplete`] ("need more bytes": read at least `needed` bytes in
//! total, then call again) or [`Parse::Complete`], and an
//! [`NbdError::Protocol`] error for bytes that can never become valid ("bad bytes").
//! Because `needed` is exact, a reader that reads precisely up to `needed` never
//! reads past the end of a message.

use crate::error::NbdError;

/// `NBDMAGIC`, first 8 bytes sent by a server.
pub const NBD_MAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`, newstyle magic and option request magic.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// Oldstyle `cliserv_magic`.
pub const CLISERV_MAGIC: u64 = 0x0000_4202_8186_1253;
/// Magic of option replies.
pub const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Magic of transmission requests.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Magic of simple replies.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
/// Magic of structured reply chunks.
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

/// Handshake flag: server supports fixed newstyle.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
/// Handshake flag: server can omit the 124 zero bytes.
pub const FLAG_NO_ZEROES: u16 = 1 << 1;
/// Client flag: fixed newstyle.
pub const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
/// Client flag: no zeroes.
pub const FLAG_C_NO_ZEROES: u32 = 1 << 1;

/// Option: abort negotiation.
pub const OPT_ABORT: u32 = 2;
/// Option: enter transmission with info replies.
pub const OPT_GO: u32 = 7;
/// Option: negotiate structured replies.
pub const OPT_STRUCTURED_REPLY: u32 = 8;
/// Option: select meta contexts.
pub const OPT_SET_META_CONTEXT: u32 = 10;

/// Option reply: done.
pub const REP_ACK: u32 = 1;
/// Option reply: information about an export.
pub const REP_INFO: u32 = 3;
/// Option reply: a meta context.
pub const REP_META_CONTEXT: u32 = 4;
/// Bit set in every error option reply.
pub const REP_FLAG_ERROR: u32 = 1 << 31;
/// Option reply error: option unsupported.
pub const REP_ERR_UNSUP: u32 = REP_FLAG_ERROR | 1;
/// Option reply error: unknown export.
pub const REP_ERR_UNKNOWN: u32 = REP_FLAG_ERROR | 6;

/// Info type: export size and flags.
pub const INFO_EXPORT: u16 = 0;
/// Info type: block size constraints.
pub const INFO_BLOCK_SIZE: u16 = 3;

/// Transmission flag: the flags field is valid.
pub const TFLAG_HAS_FLAGS: u16 = 1 << 0;
/// Transmission flag: export is read only.
pub const TFLAG_READ_ONLY: u16 = 1 << 1;
/// Transmission flag: several connections see the same data.
pub const TFLAG_CAN_MULTI_CONN: u16 = 1 << 8;

/// Command: read.
pub const CMD_READ: u16 = 0;
/// Command: disconnect.
pub const CMD_DISC: u16 = 2;
/// Command: block status.
pub const CMD_BLOCK_STATUS: u16 = 7;

/// Chunk flag: last chunk of the reply.
pub const REPLY_FLAG_DONE: u16 = 1 << 0;
/// Chunk type: no payload.
pub const REPLY_TYPE_NONE: u16 = 0;
/// Chunk type: data at an offset.
pub const REPLY_TYPE_OFFSET_DATA: u16 = 1;
/// Chunk type: a hole (zeros) at an offset.
pub const REPLY_TYPE_OFFSET_HOLE: u16 = 2;
/// Chunk type: block status descriptors.
pub const REPLY_TYPE_BLOCK_STATUS: u16 = 5;
/// Bit set in every error chunk type.
pub const REPLY_TYPE_ERROR_BIT: u16 = 1 << 15;
/// Chunk type: error.
pub const REPLY_TYPE_ERROR: u16 = REPLY_TYPE_ERROR_BIT | 1;
/// Chunk type: error at an offset.
pub const REPLY_TYPE_ERROR_OFFSET: u16 = REPLY_TYPE_ERROR_BIT | 2;

/// Largest read request the client sends (and so the largest data a reply may
/// carry): servers commonly cap requests at 32 MiB.
pub const MAX_READ_LEN: u32 = 32 * 1024 * 1024;

/// Largest structured reply chunk payload [`parse_reply`] accepts: the data of the
/// largest read plus the 8-byte offset of `NBD_REPLY_TYPE_OFFSET_DATA`. Bigger
/// ones are bad bytes rather than allocated.
pub const MAX_PAYLOAD: usize = MAX_READ_LEN as usize + 8;

/// Largest handshake option reply payload. The options this client sends are
/// answered with a few bytes of information or one meta context name (NBD strings
/// are at most 4096 bytes), or an error message.
pub const MAX_OPTION_REPLY_PAYLOAD: usize = 64 * 1024;

/// Largest `NBD_REPLY_TYPE_BLOCK_STATUS` payload: a context id and the descriptors.
/// QEMU sends at most 2^17 descriptors per chunk (1 MiB); twice that leaves room
/// for other servers.
pub const MAX_BLOCK_STATUS_PAYLOAD: usize = 4 + 8 * (1 << 18);

/// Largest error chunk payload: errno, a message of at most `u16::MAX` bytes and
/// an offset.
pub const MAX_ERROR_PAYLOAD: usize = 4 + 2 + u16::MAX as usize + 8;

/// Largest payload of a chunk type this client does not know; it refuses such
/// chunks anyway, and reads no more than this before saying so.
pub const MAX_UNKNOWN_PAYLOAD: usize = 64 * 1024;

/// The largest payload a chunk of type `kind` may carry in a reply whose data is at
/// most `max_data` bytes (the request's length for a read, 0 otherwise).
pub fn max_chunk_payload(kind: u16, max_data: u32) -> usize {
    match kind {
        REPLY_TYPE_NONE => 0,
        REPLY_TYPE_OFFSET_DATA => 8 + max_data.min(MAX_READ_LEN) as usize,
        REPLY_TYPE_OFFSET_HOLE => 12,
        REPLY_TYPE_BLOCK_STATUS => MAX_BLOCK_STATUS_PAYLOAD,
        k if k & REPLY_TYPE_ERROR_BIT != 0 => MAX_ERROR_PAYLOAD,
        _ => MAX_UNKNOWN_PAYLOAD,
    }
}

/// Result of parsing a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse<T> {
    /// More input is needed: the message is at least `needed` bytes long.
    Incomplete {
        /// Total number of bytes needed before calling again.
        needed: usize,
    },
    /// A whole message was parsed from the first `consumed` bytes.
    Complete {
        /// The parsed message.
        value: T,
        /// Number of bytes it occupied.
        consumed: usize,
    },
}

/// One message of the transmission phase, sent by the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// A simple reply. For a successful read without structured replies, the
    /// data (of the requested length) follows and is not part of this message.
    Simple {
        /// The request cookie (handle).
        cookie: u64,
        /// 0 or an NBD error value.
        error: u32,
    },
    /// One structured reply chunk.
    Chunk(Chunk),
}

/// A structured reply chunk.
#[derive(Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Chunk flags ([`REPLY_FLAG_DONE`]).
    pub flags: u16,
    /// The request cookie (handle).
    pub cookie: u64,
    /// The decoded payload.
    pub payload: ChunkPayload,
}

impl Chunk {
    /// Whether this is the last chunk of its reply.
    pub fn is_done(&self) -> bool {
        self.flags & REPLY_FLAG_DONE != 0
    }
}

/// Decoded payload of a structured reply chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkPayload {
    /// `NBD_REPLY_TYPE_NONE`.
    None,
    /// `NBD_REPLY_TYPE_OFFSET_DATA`.
    OffsetData {
        /// Export offset of `data`.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// `NBD_REPLY_TYPE_OFFSET_HOLE`: `length` bytes of zeros at `offset`.
    OffsetHole {
        /// Export offset.
        offset: u64,
        /// Hole length.
        length: u32,
    },
    /// `NBD_REPLY_TYPE_BLOCK_STATUS`.
    BlockStatus {
        /// The negotiated meta context id.
        context_id: u32,
        /// `(length, flags)` descriptors, in order.
        extents: Vec<(u32, u32)>,
    },
    /// An error chunk (`NBD_REPLY_TYPE_ERROR`, `ERROR_OFFSET`, or an unknown error type).
    Error {
        /// The NBD error value (never 0).
        errno: u32,
        /// Human-readable message, possibly empty.
        message: String,
        /// The offset, for `NBD_REPLY_TYPE_ERROR_OFFSET`.
        offset: Option<u64>,
    },
    /// A non-error chunk type this client does not know.
    Unknown {
        /// The chunk type.
        kind: u16,
    },
}

/// One option reply of the handshake.
#[derive(Debug, PartialEq, Eq)]
pub struct OptionReply {
    /// The option this answers.
    pub option: u32,
    /// The reply type (`NBD_REP_*`).
    pub kind: u32,
    /// The reply data.
    pub data: Vec<u8>,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().expect("4 bytes"))
}
fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

fn bad(msg: String) -> NbdError {
    NbdError::Protocol(msg)
}

/// Parses one transmission-phase reply (simple reply header or structured chunk),
/// accepting data chunks up to the largest read ([`MAX_READ_LEN`]).
pub fn parse_reply(buf: &[u8]) -> Result<Parse<Reply>, NbdError> {
    parse_reply_for(buf, MAX_READ_LEN)
}

/// Like [`parse_reply`] for the reply to a request of `max_data` bytes of data (a
/// read's length; 0 for block status): a chunk whose header announces more than its
/// type may carry for such a request ([`max_chunk_payload`]) is bad bytes, refused
/// from its 20-byte header alone, so a reader never buffers a hostile length.
pub fn parse_reply_for(buf: &[u8], max_data: u32) -> Result<Parse<Reply>, NbdError> {
    if buf.len() < 4 {
        return Ok(Parse::Incomplete { needed: 4 });
    }
    match be32(buf) {
        SIMPLE_REPLY_MAGIC => {
            if buf.len() < 16 {
                return Ok(Parse::Incomplete { needed: 16 });
            }
            Ok(Parse::Complete {
                value: Reply::Simple {
                    error: be32(&buf[4..]),
                    cookie: be64(&buf[8..]),
                },
                consumed: 16,
            })
        }
        STRUCTURED_REPLY_MAGIC => {
            if buf.len() < 20 {
                return Ok(Parse::Incomplete { needed: 20 });
            }
            let flags = be16(&buf[4..]);
            let kind = be16(&buf[6..]);
            let cookie = be64(&buf[8..]);
            let length = be32(&buf[16..]) as usize;
            let limit = max_chunk_payload(kind, max_data);
            if length > limit {
                return Err(bad(format!(
                    "structured reply chunk of type {kind} has a payload of {length} bytes, \
                     more than the limit of {limit} for this request"
                )));
            }
            let total = 20 + length;
            if buf.len() < total {
                return Ok(Parse::Incomplete { needed: total });
            }
            let payload = parse_chunk_payload(kind, &buf[20..total])?;
            Ok(Parse::Complete {
                value: Reply::Chunk(Chunk {
                    flags,
                    cookie,
                    payload,
                }),
                consumed: total,
            })
        }
        other => Err(bad(format!("bad reply magic {other:#010x}"))),
    }
}

fn parse_chunk_payload(kind: u16, p: &[u8]) -> Result<ChunkPayload, NbdError> {
    match kind {
        REPLY_TYPE_NONE => {
            if !p.is_empty() {
                return Err(bad(format!("NONE chunk with {} byte payload", p.len())));
            }
            Ok(ChunkPayload::None)
        }
        REPLY_TYPE_OFFSET_DATA => {
            if p.len() <= 8 {
                return Err(bad(format!(
                    "OFFSET_DATA chunk too short ({} bytes)",
                    p.len()
                )));
            }
            Ok(ChunkPayload::OffsetData {
                offset: be64(p),
                data: p[8..].to_vec(),
            })
        }
        REPLY_TYPE_OFFSET_HOLE => {
            if p.len() != 12 {
                return Err(bad(format!(
                    "OFFSET_HOLE chunk of {} bytes, expected 12",
                    p.len()
                )));
            }
            let length = be32(&p[8..]);
            if length == 0 {
                return Err(bad("OFFSET_HOLE chunk with zero length".into()));
            }
            Ok(ChunkPayload::OffsetHole {
                offset: be64(p),
                length,
            })
        }
        REPLY_TYPE_BLOCK_STATUS => {
            if p.len() < 12 || !(p.len() - 4).is_multiple_of(8) {
                return Err(bad(format!("BLOCK_STATUS chunk of bad length {}", p.len())));
            }
            let extents = p[4..]
                .chunks_exact(8)
                .map(|d| (be32(d), be32(&d[4..])))
                .collect();
            Ok(ChunkPayload::BlockStatus {
                context_id: be32(p),
                extents,
            })
        }
        k if k & REPLY_TYPE_ERROR_BIT != 0 => {
            if p.len() < 6 {
                return Err(bad(format!(
                    "error chunk of type {k:#06x} too short ({} bytes)",
                    p.len()
                )));
            }
            let errno = be32(p);
            if errno == 0 {
                return Err(bad("error chunk with error value 0".into()));
            }
            let msg_len = be16(&p[4..]) as usize;
            if 6 + msg_len > p.len() {
                return Err(bad(format!(
                    "error chunk message length {msg_len} exceeds payload {}",
                    p.len()
                )));
            }
            let message = String::from_utf8_lossy(&p[6..6 + msg_len]).into_owned();
            let offset = if k == REPLY_TYPE_ERROR_OFFSET {
                if p.len() != 6 + msg_len + 8 {
                    return Err(bad(format!("ERROR_OFFSET chunk of bad length {}", p.len())));
                }
                Some(be64(&p[6 + msg_len..]))
            } else {
                None
            };
            Ok(ChunkPayload::Error {
                errno,
                message,
                offset,
            })
        }
        k => Ok(ChunkPayload::Unknown { kind: k }),
    }
}

/// Parses one handshake option reply.
pub fn parse_option_reply(buf: &[u8]) -> Result<Parse<OptionReply>, NbdError> {
    if buf.len() < 8 {
        return Ok(Parse::Incomplete { needed: 8 });
    }
    let magic = be64(buf);
    if magic != OPT_REPLY_MAGIC {
        return Err(bad(format!("bad option reply magic {magic:#018x}")));
    }
    if buf.len() < 20 {
        return Ok(Parse::Incomplete { needed: 20 });
    }
    let length = be32(&buf[16..]) as usize;
    if length > MAX_OPTION_REPLY_PAYLOAD {
        return Err(bad(format!(
            "option reply payload of {length} bytes exceeds the limit of \
             {MAX_OPTION_REPLY_PAYLOAD}"
        )));
    }
    let total = 20 + length;
    if buf.len() < total {
        return Ok(Parse::Incomplete { needed: total });
    }
    Ok(Parse::Complete {
        value: OptionReply {
            option: be32(&buf[8..]),
            kind: be32(&buf[12..]),
            data: buf[20..total].to_vec(),
        },
        consumed: total,
    })
}

/// Encodes a transmission request header (28 bytes).
pub fn encode_request(flags: u16, kind: u16, cookie: u64, offset: u64, length: u32) -> [u8; 28] {
    let mut r = [0u8; 28];
    r[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
    r[4..6].copy_from_slice(&flags.to_be_bytes());
    r[6..8].copy_from_slice(&kind.to_be_bytes());
    r[8..16].copy_from_slice(&cookie.to_be_bytes());
    r[16..24].copy_from_slice(&offset.to_be_bytes());
    r[24..28].copy_from_slice(&length.to_be_bytes());
    r
}

/// Encodes an option request with its data.
pub fn encode_option(option: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + data.len());
    v.extend_from_slice(&IHAVEOPT.to_be_bytes());
    v.extend_from_slice(&option.to_be_bytes());
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// Name of an option for error messages.
pub fn option_name(option: u32) -> &'static str {
    match option {
        OPT_GO => "NBD_OPT_GO",
        OPT_STRUCTURED_REPLY => "NBD_OPT_STRUCTURED_REPLY",
        OPT_SET_META_CONTEXT => "NBD_OPT_SET_META_CONTEXT",
        OPT_ABORT => "NBD_OPT_ABORT",
        _ => "NBD_OPT_?",
    }
}

/// Name of an option reply error for error messages.
pub fn rep_err_name(kind: u32) -> String {
    let name = match kind {
        REP_ERR_UNSUP => "NBD_REP_ERR_UNSUP",
        0x8000_0002 => "NBD_REP_ERR_POLICY",
        0x8000_0003 => "NBD_REP_ERR_INVALID",
        0x8000_0004 => "NBD_REP_ERR_PLATFORM",
        0x8000_0005 => "NBD_REP_ERR_TLS_REQD",
        REP_ERR_UNKNOWN => "NBD_REP_ERR_UNKNOWN",
        0x8000_0007 => "NBD_REP_ERR_SHUTDOWN",
        0x8000_0008 => "NBD_REP_ERR_BLOCK_SIZE_REQD",
        0x8000_0009 => "NBD_REP_ERR_TOO_BIG",
        _ => return format!("reply type {kind:#010x}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(flags: u16, kind: u16, cookie: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
        v.extend_from_slice(&flags.to_be_bytes());
        v.extend_from_slice(&kind.to_be_bytes());
        v.extend_from_slice(&cookie.to_be_bytes());
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn complete<T>(p: Parse<T>) -> (T, usize) {
        match p {
            Parse::Complete { value, consumed } => (value, consumed),
            Parse::Incomplete { needed } => panic!("incomplete, needs {needed}"),
        }
    }

    /// Every strict prefix must ask for more bytes, never fail, and `needed` must
    /// grow beyond the prefix.
    fn check_prefixes(bytes: &[u8]) {
        for n in 0..bytes.len() {
            match parse_reply(&bytes[..n]) {
                Ok(Parse::Incomplete { needed }) => {
                    assert!(
                        needed > n && needed <= bytes.len(),
                        "prefix {n}: needed {needed}"
                    )
                }
                other => panic!("prefix {n} of {}: {other:?}", bytes.len()),
            }
        }
    }

    #[test]
    fn simple_reply() {
        let mut b = Vec::new();
        b.extend_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
        b.extend_from_slice(&5u32.to_be_bytes());
        b.extend_from_slice(&0x1122334455667788u64.to_be_bytes());
        check_prefixes(&b);
        b.extend_from_slice(b"trailing data");
        let (r, used) = complete(parse_reply(&b).unwrap());
        assert_eq!(used, 16);
        assert_eq!(
            r,
            Reply::Simple {
                cookie: 0x1122334455667788,
                error: 5
            }
        );
    }

    #[test]
    fn offset_data_and_hole() {
        let mut p = 4096u64.to_be_bytes().to_vec();
        p.extend_from_slice(b"hello");
        let b = chunk(0, REPLY_TYPE_OFFSET_DATA, 7, &p);
        check_prefixes(&b);
        let (r, used) = complete(parse_reply(&b).unwrap());
        assert_eq!(used, b.len());
        assert_eq!(
            r,
            Reply::Chunk(Chunk {
                flags: 0,
                cookie: 7,
                payload: ChunkPayload::OffsetData {
                    offset: 4096,
                    data: b"hello".to_vec()
                }
            })
        );

        let mut p = 8192u64.to_be_bytes().to_vec();
        p.extend_from_slice(&512u32.to_be_bytes());
        let b = chunk(REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_HOLE, 7, &p);
        check_prefixes(&b);
        let (r, _) = complete(parse_reply(&b).unwrap());
        let Reply::Chunk(c) = r else { panic!() };
        assert!(c.is_done());
        assert_eq!(
            c.payload,
            ChunkPayload::OffsetHole {
                offset: 8192,
                length: 512
            }
        );
    }

    #[test]
    fn two_chunks_back_to_back() {
        let mut b = chunk(0, REPLY_TYPE_NONE, 1, &[]);
        let first = b.len();
        b.extend(chunk(REPLY_FLAG_DONE, REPLY_TYPE_NONE, 2, &[]));
        let (r, used) = complete(parse_reply(&b).unwrap());
        assert_eq!(used, first);
        assert!(matches!(r, Reply::Chunk(Chunk { cookie: 1, .. })));
        let (r, _) = complete(parse_reply(&b[used..]).unwrap());
        assert!(matches!(
            r,
            Reply::Chunk(Chunk {
                cookie: 2,
                flags: 1,
                ..
            })
        ));
    }

    #[test]
    fn block_status_chunk() {
        let mut p = 2u32.to_be_bytes().to_vec();
        for (l, f) in [(65536u32, 0u32), (131072, 3)] {
            p.extend_from_slice(&l.to_be_bytes());
            p.extend_from_slice(&f.to_be_bytes());
        }
        let b = chunk(REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, 9, &p);
        check_prefixes(&b);
        let (r, _) = complete(parse_reply(&b).unwrap());
        let Reply::Chunk(c) = r else { panic!() };
        assert_eq!(
            c.payload,
            ChunkPayload::BlockStatus {
                context_id: 2,
                extents: vec![(65536, 0), (131072, 3)]
            }
        );
        // Descriptor cut in half: bad bytes, not "need more".
        let b = chunk(
            REPLY_FLAG_DONE,
            REPLY_TYPE_BLOCK_STATUS,
            9,
            &p[..p.len() - 4],
        );
        assert!(matches!(parse_reply(&b), Err(NbdError::Protocol(_))));
        // Context id without descriptors.
        let b = chunk(REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, 9, &p[..4]);
        assert!(matches!(parse_reply(&b), Err(NbdError::Protocol(_))));
    }

    #[test]
    fn error_chunks() {
        let mut p = 5u32.to_be_bytes().to_vec();
        p.extend_from_slice(&3u16.to_be_bytes());
        p.extend_from_slice(b"bad");
        let b = chunk(REPLY_FLAG_DONE, REPLY_TYPE_ERROR, 3, &p);
        check_prefixes(&b);
        let (r, _) = complete(parse_reply(&b).unwrap());
        let Reply::Chunk(c) = r else { panic!() };
        assert_eq!(
            c.payload,
            ChunkPayload::Error {
                errno: 5,
                message: "bad".into(),
                offset: None
            }
        );

        let mut q = p.clone();
        q.extend_from_slice(&1234u64.to_be_bytes());
        let b = chunk(0, REPLY_TYPE_ERROR_OFFSET, 3, &q);
        let (r, _) = complete(parse_reply(&b).unwrap());
        let Reply::Chunk(c) = r else { panic!() };
        assert_eq!(
            c.payload,
            ChunkPayload::Error {
                errno: 5,
                message: "bad".into(),
                offset: Some(1234)
            }
        );

        // Unknown error type is still an error.
        let b = chunk(REPLY_FLAG_DONE, REPLY_TYPE_ERROR_BIT | 77, 3, &p);
        let (r, _) = complete(parse_reply(&b).unwrap());
        assert!(matches!(
            r,
            Reply::Chunk(Chunk {
                payload: ChunkPayload::Error { errno: 5, .. },
                ..
            })
        ));

        // Message longer than the payload, zero errno, offset missing: bad bytes.
        let mut m = 5u32.to_be_bytes().to_vec();
        m.extend_from_slice(&10u16.to_be_bytes());
        m.extend_from_slice(b"bad");
        let b = chunk(REPLY_FLAG_DONE, REPLY_TYPE_ERROR, 3, &m);
        assert!(matches!(parse_reply(&b), Err(NbdError::Protocol(_))));
        let mut z = 0u32.to_be_bytes().to_vec();
        z.extend_from_slice(&0u16.to_be_bytes());
        let b = chunk(REPLY_FLAG_DONE, REPLY_TYPE_ERROR, 3, &z);
        assert!(matches!(parse_reply(&b), Err(NbdError::Protocol(_))));
        let b = chunk(REPLY_FLAG_DONE, REPLY_TYPE_ERROR_OFFSET, 3, &p);
        assert!(matches!(parse_reply(&b), Err(NbdError::Protocol(_))));
    }

    #[test]
    fn wrong_magic_and_bad_lengths() {
        let b = [0xdeu8, 0xad, 0xbe, 0xef, 0, 0, 0, 0];
        let e = parse_reply(&b).unwrap_err();
        assert!(e.to_string().contains("0xdeadbeef"), "{e}");
        // Wrong magic is detected as soon as 4 bytes are there.
        assert!(parse_reply(&b[..4]).is_err());
        assert_eq!(
            parse_reply(&b[..3]).unwrap(),
            Parse::Incomplete { needed: 4 }
        );

        let b = chunk(0, REPLY_TYPE_OFFSET_HOLE, 1, &[0; 8]);
        assert!(matches!(parse_reply(&b), Err(NbdError::Protocol(_))));
        let b = chunk(0, REPLY_TYPE_OFFSET_DATA, 1, &[0; 8]);
        assert!(matches!(parse_reply(&b), Err(NbdError::Protocol(_))));
        let b = chunk(0, REPLY_TYPE_NONE, 1, &[0; 1]);
        assert!(matches!(parse_reply(&b), Err(NbdError::Protocol(_))));
        // Oversized length is rejected from the header alone.
        let mut h = chunk(0, REPLY_TYPE_OFFSET_DATA, 1, &[]);
        h[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(parse_reply(&h), Err(NbdError::Protocol(_))));
        // Unknown non-error type parses, the client decides.
        let b = chunk(REPLY_FLAG_DONE, 42, 1, &[1, 2]);
        let (r, _) = complete(parse_reply(&b).unwrap());
        assert!(matches!(
            r,
            Reply::Chunk(Chunk {
                payload: ChunkPayload::Unknown { kind: 42 },
                ..
            })
        ));
    }

    #[test]
    fn option_replies() {
        let mut b = OPT_REPLY_MAGIC.to_be_bytes().to_vec();
        b.extend_from_slice(&OPT_GO.to_be_bytes());
        b.extend_from_slice(&REP_INFO.to_be_bytes());
        b.extend_from_slice(&4u32.to_be_bytes());
        b.extend_from_slice(&[0, 3, 0, 0]);
        for n in 0..b.len() {
            assert!(matches!(
                parse_option_reply(&b[..n]).unwrap(),
                Parse::Incomplete { needed } if needed > n
            ));
        }
        let (r, used) = complete(parse_option_reply(&b).unwrap());
        assert_eq!(used, b.len());
        assert_eq!(
            r,
            OptionReply {
                option: OPT_GO,
                kind: REP_INFO,
                data: vec![0, 3, 0, 0]
            }
        );
        b[0] ^= 1;
        assert!(matches!(parse_option_reply(&b), Err(NbdError::Protocol(_))));
    }

    #[test]
    fn request_encoding() {
        let r = encode_request(0, CMD_READ, 0x0102030405060708, 0x10, 0x20);
        assert_eq!(&r[0..4], &[0x25, 0x60, 0x95, 0x13]);
        assert_eq!(&r[6..8], &[0, 0]);
        assert_eq!(&r[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&r[24..28], &[0, 0, 0, 0x20]);
    }

    #[test]
    fn chunk_payload_limits_follow_the_request() {
        let header = |kind: u16, length: u32| {
            let mut h = chunk(0, kind, 1, &[]);
            h[16..20].copy_from_slice(&length.to_be_bytes());
            h
        };
        // A read of 4096 bytes: a data chunk may carry 4096 + 8, not one byte more.
        assert!(matches!(
            parse_reply_for(&header(REPLY_TYPE_OFFSET_DATA, 4104), 4096),
            Ok(Parse::Incomplete { needed: 4124 })
        ));
        let e = parse_reply_for(&header(REPLY_TYPE_OFFSET_DATA, 4105), 4096).unwrap_err();
        assert!(e.to_string().contains("limit of 4104"), "{e}");
        // Block status: data chunks carry nothing; descriptors up to their own limit.
        assert!(parse_reply_for(&header(REPLY_TYPE_OFFSET_DATA, 9), 0).is_err());
        assert!(matches!(
            parse_reply_for(
                &header(REPLY_TYPE_BLOCK_STATUS, MAX_BLOCK_STATUS_PAYLOAD as u32),
                0
            ),
            Ok(Parse::Incomplete { .. })
        ));
        assert!(parse_reply_for(
            &header(REPLY_TYPE_BLOCK_STATUS, MAX_BLOCK_STATUS_PAYLOAD as u32 + 1),
            0
        )
        .is_err());
        assert!(parse_reply_for(&header(REPLY_TYPE_OFFSET_HOLE, 13), 1 << 20).is_err());
        assert!(parse_reply_for(&header(REPLY_TYPE_NONE, 1), 1 << 20).is_err());
        assert!(parse_reply_for(&header(REPLY_TYPE_ERROR, 1 << 20), 1 << 20).is_err());
        assert!(parse_reply_for(&header(42, 1 << 20), 1 << 20).is_err());
        // Never more than the largest read, whatever the caller says.
        assert!(parse_reply_for(&header(REPLY_TYPE_OFFSET_DATA, u32::MAX), u32::MAX).is_err());
    }
}
