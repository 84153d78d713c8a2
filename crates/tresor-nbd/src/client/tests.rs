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
