//! Writes the seed corpus of every fuzz target under `fuzz/corpus/` from the real
//! encoders (and the golden files of tresor-format): `cargo run --example gen_corpus`
//! from `fuzz/`. Deterministic: running it again rewrites the same bytes.

use std::fs;
use std::path::Path;

use tresor_format::blob::{seal_blob_with_nonce, BlobKind};
use tresor_format::magic::{GC_AAD, INDEX_AAD, POINT_AAD};
use tresor_format::pack::PackBuilder;
use tresor_format::tree::TreeNode;
use tresor_fuzz::{master_key, sealer, POINT_ID};

fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn golden(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/tresor-format/tests/golden")
        .join(name);
    fs::read(p).unwrap()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn main() {
    format();
    nbd();
    qmp();
    http_range();
}

/// http_range: the object's length (u64 LE), a byte saying whether a header is
/// present, then the header.
fn http_range() {
    for h in ["bytes=0-499", "bytes=100-", "bytes=-300", "bytes=0-0"] {
        let name = h.replace(['=', '-'], "_");
        put(
            "http_range",
            &name,
            &cat(&[&4096u64.to_le_bytes(), &[1], h.as_bytes()]),
        );
    }
}

fn format() {
    let s = sealer();
    let ids = master_key().chunk_id_key();

    // Packs: the golden pack raw, and a small pack's trailer plaintext (mode 1).
    let pack = golden("pack.bin");
    put("format_pack", "golden_pack", &cat(&[&[0], &pack]));
    let mut b = PackBuilder::new();
    let mut c = zstd::bulk::Compressor::new(1).unwrap();
    let plain = b"a small chunk, a small chunk, a small chunk, a small chunk".repeat(4);
    let id = ids.id_of(&plain);
    let mut sealed = Vec::new();
    let meta = seal_blob_with_nonce(
        s,
        [9; 12],
        &mut c,
        &mut Vec::new(),
        BlobKind::Data,
        &id,
        &plain,
        &mut sealed,
    );
    b.add(BlobKind::Data, id, meta, &sealed);
    let mut trailer = Vec::new();
    tresor_format::pack::encode_entries(b.entries(), &mut trailer);
    let area = (sealed.len() as u16).to_le_bytes();
    put(
        "format_pack",
        "sealed_trailer",
        &cat(&[&[1], &area, &sealed, &trailer]),
    );

    // Blobs: the stored blob (mode 0), its payload behind a valid tag (mode 1), a
    // plaintext to seal (mode 2).
    let head = |mode: u8, zstd: bool, raw_len: u32| {
        let mut h = vec![mode, 0, zstd as u8];
        h.extend_from_slice(&raw_len.to_le_bytes());
        h
    };
    put(
        "format_blob",
        "stored",
        &cat(&[&head(0, true, meta.raw_len), &sealed]),
    );
    let payload = zstd::bulk::compress(&plain, 1).unwrap();
    put(
        "format_blob",
        "payload_zstd",
        &cat(&[&head(1, true, plain.len() as u32), &payload]),
    );
    put(
        "format_blob",
        "payload_plain",
        &cat(&[&head(1, false, plain.len() as u32), &plain]),
    );
    put(
        "format_blob",
        "plaintext",
        &cat(&[&head(2, false, 0), &plain]),
    );

    // Index files, manifests and GC states: the golden files raw (mode 0) and their
    // plaintexts (mode 1).
    let index = golden("index.bin");
    put("format_index", "golden_index", &cat(&[&[0], &index]));
    let plain = zstd::stream::decode_all(&s.open(INDEX_AAD, &index).unwrap()[..]).unwrap();
    put("format_index", "golden_plain", &cat(&[&[1], &plain]));

    let manifest = golden("manifest.bin");
    put(
        "format_manifest",
        "golden_manifest",
        &cat(&[&[0], &manifest]),
    );
    let aad = cat(&[POINT_AAD, POINT_ID.as_bytes()]);
    put(
        "format_manifest",
        "golden_plain",
        &cat(&[&[1], &s.open(&aad, &manifest).unwrap()]),
    );

    let gc = golden("gc_state.bin");
    put("format_gc_state", "golden_gc_state", &cat(&[&[0], &gc]));
    let plain = zstd::stream::decode_all(&s.open(GC_AAD, &gc).unwrap()[..]).unwrap();
    put("format_gc_state", "golden_plain", &cat(&[&[1], &plain]));

    put(
        "format_tree_node",
        "golden_tree_node",
        &golden("tree_node.bin"),
    );
    let node = TreeNode {
        level: 1,
        children: vec![id, tresor_crypto::ChunkId::ZERO],
    };
    put("format_tree_node", "two_children", &node.encode());

    put(
        "format_key_file",
        "golden_key_file.json",
        &golden("key_file.json"),
    );
    put(
        "format_key_file",
        "golden_config.json",
        &golden("config.json"),
    );
}

fn option_reply(option: u32, kind: u32, data: &[u8]) -> Vec<u8> {
    use tresor_nbd::proto::OPT_REPLY_MAGIC;
    let mut v = OPT_REPLY_MAGIC.to_be_bytes().to_vec();
    v.extend_from_slice(&option.to_be_bytes());
    v.extend_from_slice(&kind.to_be_bytes());
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn chunk(flags: u16, kind: u16, cookie: u64, payload: &[u8]) -> Vec<u8> {
    use tresor_nbd::proto::STRUCTURED_REPLY_MAGIC;
    let mut v = STRUCTURED_REPLY_MAGIC.to_be_bytes().to_vec();
    v.extend_from_slice(&flags.to_be_bytes());
    v.extend_from_slice(&kind.to_be_bytes());
    v.extend_from_slice(&cookie.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn nbd() {
    use tresor_nbd::proto::*;
    // What a server sends for a whole session: greeting, the replies to structured
    // replies, one meta context and GO, then the replies to one read of 4096 bytes
    // at 0 (cookie 1) and one block status (cookie 2), as `nbd_client` requests them.
    let mut s = NBD_MAGIC.to_be_bytes().to_vec();
    s.extend_from_slice(&IHAVEOPT.to_be_bytes());
    s.extend_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    s.extend(option_reply(OPT_STRUCTURED_REPLY, REP_ACK, &[]));
    let mut ctx = 7u32.to_be_bytes().to_vec();
    ctx.extend_from_slice(b"base:allocation");
    s.extend(option_reply(OPT_SET_META_CONTEXT, REP_META_CONTEXT, &ctx));
    s.extend(option_reply(OPT_SET_META_CONTEXT, REP_ACK, &[]));
    let mut info = INFO_EXPORT.to_be_bytes().to_vec();
    info.extend_from_slice(&(1u64 << 20).to_be_bytes());
    info.extend_from_slice(&(TFLAG_HAS_FLAGS | TFLAG_READ_ONLY).to_be_bytes());
    s.extend(option_reply(OPT_GO, REP_INFO, &info));
    let mut bs = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
    for v in [512u32, 4096, 1 << 25] {
        bs.extend_from_slice(&v.to_be_bytes());
    }
    s.extend(option_reply(OPT_GO, REP_INFO, &bs));
    s.extend(option_reply(OPT_GO, REP_ACK, &[]));
    let handshake = s.clone();

    let mut hole = 2048u64.to_be_bytes().to_vec();
    hole.extend_from_slice(&2048u32.to_be_bytes());
    let read = cat(&[
        &chunk(0, REPLY_TYPE_OFFSET_HOLE, 1, &hole),
        &chunk(
            REPLY_FLAG_DONE,
            REPLY_TYPE_OFFSET_DATA,
            1,
            &cat(&[&0u64.to_be_bytes(), &[0xab; 2048]]),
        ),
    ]);
    let mut ext = 7u32.to_be_bytes().to_vec();
    for (l, f) in [(65536u32, 0u32), (1 << 19, 3)] {
        ext.extend_from_slice(&l.to_be_bytes());
        ext.extend_from_slice(&f.to_be_bytes());
    }
    let status = chunk(REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, 2, &ext);
    let mut err = 5u32.to_be_bytes().to_vec();
    err.extend_from_slice(&4u16.to_be_bytes());
    err.extend_from_slice(b"oops");
    err.extend_from_slice(&512u64.to_be_bytes());
    let error = chunk(REPLY_FLAG_DONE, REPLY_TYPE_ERROR_OFFSET, 1, &err);

    put("nbd_client", "session", &cat(&[&handshake, &read, &status]));
    put("nbd_client", "read_error", &cat(&[&handshake, &error]));
    put("nbd_client", "handshake_only", &handshake);
    let mut simple = SIMPLE_REPLY_MAGIC.to_be_bytes().to_vec();
    simple.extend_from_slice(&0u32.to_be_bytes());
    simple.extend_from_slice(&1u64.to_be_bytes());
    // nbd_reply: the request's data length (u32 LE), then the server's bytes.
    let len = |n: u32| n.to_le_bytes();
    put("nbd_reply", "read_chunks", &cat(&[&len(4096), &read]));
    put("nbd_reply", "block_status", &cat(&[&len(0), &status]));
    put("nbd_reply", "error_offset", &cat(&[&len(4096), &error]));
    put("nbd_reply", "simple", &cat(&[&len(4096), &simple]));
    put(
        "nbd_reply",
        "option_replies",
        &cat(&[&len(0), &handshake[18..]]),
    );
}

fn qmp() {
    let greeting = br#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}"#;
    put("qmp_message", "greeting", &cat(&[greeting, b"\n"]));
    put("qmp_message", "return", b"{\"return\": {}, \"id\": 1}\n");
    put(
        "qmp_message",
        "error",
        b"{\"id\": 2, \"error\": {\"class\": \"GenericError\", \"desc\": \"no such node\"}}\n",
    );
    put(
        "qmp_message",
        "event",
        b"{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 123}, \"event\": \"BLOCK_JOB_COMPLETED\", \"data\": {\"device\": \"job0\", \"len\": 1048576, \"offset\": 1048576, \"speed\": 0, \"type\": \"backup\"}}\n",
    );
    put(
        "qmp_message",
        "status_and_nodes",
        br#"{"return": {"status": "running", "singlestep": false, "running": true}, "id": 3}
{"return": [{"iops_rd": 0, "detect_zeroes": "off", "image": {"virtual-size": 1073741824, "filename": "/vm/disk.qcow2", "cluster-size": 65536, "format": "qcow2", "actual-size": 200704, "dirty-flag": false}, "node-name": "disk0", "drv": "qcow2", "ro": false, "file": "/vm/disk.qcow2", "backing_file_depth": 0, "dirty-bitmaps": [{"name": "tresor-0", "recording": true, "persistent": true, "busy": false, "granularity": 65536, "count": 0}]}], "id": 4}
"#,
    );
    // qga_message: the sync id (u64 LE), then the agent's lines.
    let qga = |name: &str, lines: &[u8]| {
        put(
            "qga_message",
            name,
            &cat(&[&1234567u64.to_le_bytes(), lines]),
        )
    };
    qga("sync", b"\xff{\"return\": 1234567}\n");
    qga(
        "stale_then_sync",
        b"{\"return\": {}}\n\xff{\"return\": 1234567}\n",
    );
    qga("info",
        br#"{"return": {"version": "7.2.0", "supported_commands": [{"enabled": true, "name": "guest-ping", "success-response": true}, {"enabled": true, "name": "guest-fsfreeze-freeze", "success-response": true}]}}
"#,
    );
    qga("freeze", b"{\"return\": 2}\n");
    qga("status", b"{\"return\": \"frozen\"}\n");
    qga(
        "error",
        b"{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"no\"}}\n",
    );
}
