//! The single-connection client: its state and socket, and what every phase
//! shares (sending, cookies, reading one reply, the broken and closed states,
//! disconnecting). The phases are apart: [`handshake`] negotiates and opens the
//! export, [`read`] and [`block_status`] are the two commands of the
//! transmission phase.

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;

use crate::error::{NbdError, Result};
use crate::proto::*;

mod block_status;
mod handshake;
mod read;
#[cfg(test)]
mod tests;

/// Largest read request sent when the server announces no maximum block size.
pub const DEFAULT_MAX_REQUEST: u32 = MAX_READ_LEN;

/// Most chunks that carry no data (none, error, block status of another context)
/// accepted in one reply. Data and hole chunks are bounded by the bytes they must
/// cover; these are not, and a server that keeps sending them is cut off.
const MAX_OTHER_CHUNKS: usize = 1024;

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

impl NbdClient {
    fn read_exact_ctx(&mut self, buf: &mut [u8], ctx: &str) -> Result<()> {
        self.reader.read_exact(buf).map_err(io_err(ctx))
    }

    fn send(&mut self, bytes: &[u8], ctx: &str) -> Result<()> {
        self.writer.write_all(bytes).map_err(io_err(ctx))
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
