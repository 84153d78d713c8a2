//! A fixed set of connections shared by threads.

use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::client::NbdClient;
use crate::error::{NbdError, Result};

/// N connections to the same export, handed out one per thread.
///
/// [`NbdPool::get`] blocks until a connection is free and returns a guard that
/// derefs to [`NbdClient`] and gives the connection back when dropped. The server
/// must accept N simultaneous clients (`qemu-nbd -e N`, and `-t` so it does not exit
/// when one disconnects). Data read through different connections is consistent
/// for read-only exports; for writable exports check
/// [`NbdClient::can_multi_conn`].
#[derive(Debug)]
pub struct NbdPool {
    idle: Mutex<Vec<NbdClient>>,
    freed: Condvar,
    connections: usize,
    size: u64,
}

enum Target {
    Unix(PathBuf),
    Tcp(Vec<SocketAddr>),
}

impl NbdPool {
    /// Opens `connections` (at least 1) connections over a Unix socket, each
    /// negotiated like [`NbdClient::connect_unix`].
    pub fn connect_unix(
        path: impl AsRef<Path>,
        export_name: &str,
        meta_contexts: &[&str],
        connections: usize,
    ) -> Result<NbdPool> {
        Self::open(
            Target::Unix(path.as_ref().to_path_buf()),
            export_name,
            meta_contexts,
            connections,
        )
    }

    /// Opens `connections` (at least 1) connections over TCP, each negotiated like
    /// [`NbdClient::connect_tcp`].
    pub fn connect_tcp(
        addr: impl ToSocketAddrs,
        export_name: &str,
        meta_contexts: &[&str],
        connections: usize,
    ) -> Result<NbdPool> {
        let addrs = addr
            .to_socket_addrs()
            .map_err(|source| NbdError::Connect {
                target: "<unresolved address>".into(),
                source,
            })?
            .collect();
        Self::open(Target::Tcp(addrs), export_name, meta_contexts, connections)
    }

    fn open(
        target: Target,
        export_name: &str,
        meta_contexts: &[&str],
        connections: usize,
    ) -> Result<NbdPool> {
        let n = connections.max(1);
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            let c = match &target {
                Target::Unix(p) => NbdClient::connect_unix(p, export_name, meta_contexts)?,
                Target::Tcp(a) => NbdClient::connect_tcp(&a[..], export_name, meta_contexts)?,
            };
            if let Some(first) = clients.first() {
                let first: &NbdClient = first;
                if first.size() != c.size() {
                    return Err(NbdError::Protocol(format!(
                        "connections disagree on the export size ({} vs {})",
                        first.size(),
                        c.size()
                    )));
                }
            }
            clients.push(c);
        }
        let size = clients[0].size();
        Ok(NbdPool {
            idle: Mutex::new(clients),
            freed: Condvar::new(),
            connections: n,
            size,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<NbdClient>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Export size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of connections.
    pub fn connections(&self) -> usize {
        self.connections
    }

    /// Takes a free connection, waiting until one is returned if all are in use.
    pub fn get(&self) -> PooledClient<'_> {
        let mut idle = self.lock();
        loop {
            if let Some(c) = idle.pop() {
                return PooledClient {
                    pool: self,
                    client: Some(c),
                };
            }
            idle = self.freed.wait(idle).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Reads through any free connection; see [`NbdClient::read_at`].
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.get().read_at(offset, buf)
    }

    /// Block status through any free connection; see [`NbdClient::block_status`].
    pub fn block_status(
        &self,
        context_name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<(u64, u32)>> {
        self.get().block_status(context_name, offset, len)
    }
}

/// A connection borrowed from an [`NbdPool`]; returned to the pool on drop.
///
/// A connection that failed with an I/O or protocol error goes back too, and keeps
/// failing with [`NbdError::Broken`].
#[derive(Debug)]
pub struct PooledClient<'a> {
    pool: &'a NbdPool,
    client: Option<NbdClient>,
}

impl Deref for PooledClient<'_> {
    type Target = NbdClient;
    fn deref(&self) -> &NbdClient {
        self.client.as_ref().expect("present until drop")
    }
}

impl DerefMut for PooledClient<'_> {
    fn deref_mut(&mut self) -> &mut NbdClient {
        self.client.as_mut().expect("present until drop")
    }
}

impl Drop for PooledClient<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            self.pool.lock().push(c);
            self.pool.freed.notify_one();
        }
    }
}
