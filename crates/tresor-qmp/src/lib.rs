//! Async clients for QEMU's two JSON control protocols.
//!
//! Tresor backs up running QEMU/KVM virtual machines. To do that consistently it
//! talks to two JSON endpoints of a VM:
//!
//! * [`Qmp`]: the QEMU Machine Protocol on the host side (`-qmp unix:PATH,server=on`
//!   or a `-chardev socket` + `-mon mode=control`). The client reads the greeting
//!   (QEMU version), negotiates `qmp_capabilities`, sends commands with ids and
//!   matches replies to them, and routes asynchronous events (`STOP`, `RESUME`,
//!   `BLOCK_JOB_COMPLETED`, ...) to a broadcast channel ([`Qmp::events`],
//!   [`Qmp::wait_event`]) so none are lost between replies. Typed wrappers cover
//!   what a backup needs: run state, name, UUID, block devices and nodes with
//!   their dirty bitmaps, transactions and `human-monitor-command`.
//! * [`GuestAgent`]: the QEMU guest agent (`qemu-ga`) reached through a
//!   virtio-serial port whose host end is a unix socket chardev. It resynchronises
//!   the stream with `guest-sync-delimited`, and offers ping, info and the
//!   file-system freeze commands used to make a backup application-consistent.
//!
//! Every call has a timeout; a QEMU that exits shows up as a `Disconnected` error
//! and a guest agent that does not answer (no agent running in the guest, which
//! on a virtio-serial port looks exactly like a slow one) as
//! [`GuestAgentError::NotResponding`], never as a hang.
//!
//! What this crate does **not** know: how to start or configure QEMU, libvirt,
//! which VM a socket belongs to, the meaning of a backup (it does not run backup
//! jobs or NBD exports itself beyond the generic [`Qmp::execute`]), QMP
//! out-of-band execution, TCP sockets, or the guest-agent commands other than the
//! ones listed on [`GuestAgent`] (use [`GuestAgent::execute`] for others). It keeps
//! one connection per client and never reconnects.

#![warn(missing_docs)]

pub mod guest_agent;
mod line;
pub mod qmp;

pub use guest_agent::{AgentCommandInfo, AgentInfo, FsFreezeStatus, GuestAgent, GuestAgentError};
pub use qmp::{
    BlockDeviceInfo, BlockInfo, DirtyBitmapInfo, Events, ImageInfo, Qmp, QmpError, QmpEvent,
    QmpVersion, RunState, StatusInfo, TransactionAction,
};
