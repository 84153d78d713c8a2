//! The command line, as clap types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod guards;
mod service;
mod tokens;
mod users;

pub use guards::*;
pub use service::*;
pub use tokens::*;
pub use users::*;

#[derive(Parser)]
#[command(
    name = "tresor",
    version,
    about = "Tresor: backups of QEMU/KVM virtual machines into deduplicated, encrypted vaults"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Work on a repository directly, without a server (scripts, disaster recovery).
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Look at VMs on this host: what Tresor sees of them, and whether backups will work.
    #[command(subcommand)]
    Vm(VmCommand),
    /// Run the vault server (HTTPS, SQLite metadata, local storage; loopback by default).
    Serve(ServeArgs),
    /// The host agent: `run` it on each KVM host, `check` its way to the server.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Vaults: create, list, show, delete, backup-properties, credentials.
    Vault(Managed<VaultCommand>),
    /// Backup policies of a vault.
    Policy(Managed<PolicyCommand>),
    /// VMs that can be protected.
    ProtectableItem(Managed<ProtectableCommand>),
    /// Enable, run and disable the protection of VMs.
    Protection(Managed<ProtectionCommand>),
    /// Protected items.
    Item(Managed<ItemCommand>),
    /// Jobs: list, show, wait, stop.
    Job(Managed<JobCommand>),
    /// Recovery points of an item.
    Recoverypoint(Managed<PointCommand>),
    /// Restore disks, create a VM, replace disks.
    Restore(Managed<RestoreCommand>),
    /// The audit log: list its entries, verify its hash chain.
    Audit(Managed<AuditCommand>),
    /// Users who sign in to the portal with a password (and a TOTP code): create,
    /// list, delete, password, totp.
    User(Managed<UserCommand>),
    /// Role assignments: which role a user holds at which scope.
    Role(Managed<RoleCommand>),
    /// API tokens of one's own: create (with roles, an expiry), list, delete.
    Token(Managed<TokenCommand>),
    /// Resource guards: approvers who must approve critical operations on the vaults
    /// bound to a guard; and the requests for their approval.
    ResourceGuard(Managed<GuardCommand>),
    /// Measure hashing, compression, encryption and the whole backup pipeline here.
    Benchmark(BenchmarkArgs),
}

/// A management command group: how to reach the server, and the command.
#[derive(Args)]
pub struct Managed<C: Subcommand> {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: C,
}

/// How a command names one VM on this host.
#[derive(Args, Clone)]
pub struct VmArgs {
    /// The VM's QMP socket (QEMU started with `-qmp unix:PATH,server=on,wait=off`).
    #[arg(long = "vm-qmp", value_name = "SOCKET", group = "vm_source")]
    pub qmp: Option<PathBuf>,
    /// A libvirt domain, by name or UUID: backed up through libvirt's backup API
    /// (running: pull mode with checkpoints; shut off: its images read directly).
    #[arg(
        long = "libvirt-domain",
        value_name = "NAME|UUID",
        group = "vm_source",
        conflicts_with = "qmp"
    )]
    pub libvirt_domain: Option<String>,
    /// The libvirt connection that knows --libvirt-domain. Default: qemu:///system.
    #[arg(long, value_name = "URI", requires = "libvirt_domain")]
    pub libvirt_uri: Option<String>,
    /// The host end of the VM's guest agent port (`-chardev socket,path=PATH,...` with
    /// a virtserialport named org.qemu.guest_agent.0). Without it, points are
    /// crash-consistent.
    #[arg(long, value_name = "SOCKET", requires = "qmp")]
    pub guest_agent: Option<PathBuf>,
    /// Where point-in-time overlays of a running VM go (QEMU writes there what the
    /// guest overwrites during the backup). Default: /var/tmp, and for libvirt
    /// domains /var/lib/libvirt/tresor-scratch (libvirt's QEMU must be able to write there).
    #[arg(long, requires = "vm_source")]
    pub scratch_dir: Option<PathBuf>,
    /// The guest's freeze runs application hooks (qemu-ga --fsfreeze-hook, VSS):
    /// frozen points are recorded as application-consistent.
    #[arg(long, requires = "qmp")]
    pub application_hooks: bool,
}

#[derive(Subcommand)]
pub enum VmCommand {
    /// What Tresor sees of a VM: name, UUID, state, disks, guest agent.
    Inspect {
        #[command(flatten)]
        vm: VmArgs,
        /// A stopped VM's disk images (instead of --vm-qmp or --libvirt-domain).
        #[arg(long = "disk", conflicts_with = "vm_source")]
        disks: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check that backups of a VM will work; say what to fix. Exits 1 when a check fails.
    Preflight {
        #[command(flatten)]
        vm: VmArgs,
        /// A stopped VM's disk images (instead of, or besides, --vm-qmp; not with
        /// --libvirt-domain, whose disks libvirt names).
        #[arg(long = "disk", conflicts_with = "libvirt_domain")]
        disks: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct RepoDir {
    /// The repository's folder.
    pub dir: PathBuf,
}

#[derive(Subcommand)]
pub enum RepoCommand {
    /// Create a repository in an empty folder (passphrase from TRESOR_PASSWORD or a prompt).
    Init {
        #[command(flatten)]
        repo: RepoDir,
        /// Bytes per chunk (power of two, 4K..4M; suffixes K and M).
        #[arg(long, default_value = "64K", value_parser = parse_size)]
        chunk_size: u64,
        /// Memory of the Argon2id key derivation, MiB (8..4096). Lower only on small machines.
        #[arg(long, default_value_t = 64)]
        kdf_memory_mib: u32,
        /// Passes of the Argon2id key derivation.
        #[arg(long, default_value_t = 3)]
        kdf_iterations: u32,
        /// Generate the passphrase instead of reading one: `tresor_repo_` and 256 random
        /// bits, printed once as the last line (keep it like a key). Its key file skips
        /// Argon2id, so opening takes milliseconds: for scripts and hosts that open the
        /// repository often. Vault servers make their repositories this way.
        #[arg(long)]
        generate_passphrase: bool,
    },
    /// Back up a running VM (--vm-qmp), or disk images (raw or qcow2 files, block
    /// devices), as one recovery point. Prints the point's id as the last line.
    Backup(BackupArgs),
    /// Write a disk of a recovery point to a file or a block device.
    Restore {
        #[command(flatten)]
        repo: RepoDir,
        /// Recovery point id (or an unambiguous prefix of 6 or more digits).
        point: String,
        /// The disk to restore (see `tresor repo list`).
        #[arg(long)]
        disk: String,
        /// Where to write it.
        #[arg(long)]
        output: PathBuf,
        #[arg(long, value_enum, default_value_t = FormatArg::Raw)]
        format: FormatArg,
        /// Replace an existing file at --output.
        #[arg(long)]
        force: bool,
    },
    /// List recovery points.
    List {
        #[command(flatten)]
        repo: RepoDir,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Restore every disk of a point into a folder, with a definition of a new VM
    /// (and QEMU's command line, rewritten to the new disks); or, with
    /// --replace-original, write the disks back over the stopped VM's images.
    RestoreVm {
        #[command(flatten)]
        repo: RepoDir,
        /// Recovery point id (or an unambiguous prefix of 6 or more digits).
        point: String,
        /// Folder for the new VM's disks and definition.
        #[arg(
            long,
            required_unless_present = "replace_original",
            conflicts_with = "replace_original"
        )]
        to: Option<PathBuf>,
        /// Name of the new VM. Default: the point's name with `-restored`.
        #[arg(long)]
        new_name: Option<String>,
        /// Disk format. Default: each disk's format in the VM.
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Overwrite the original VM's disk images (the VM must be stopped).
        #[arg(long)]
        replace_original: bool,
    },
    /// Re-read and check what recovery points reference; name the damaged ones.
    Verify {
        #[command(flatten)]
        repo: RepoDir,
        /// Only this point (default: the whole repository, every pack read once).
        point: Option<String>,
    },
    /// Copy every recovery point to another folder (a new or empty one, or an earlier
    /// copy): only the packs and index files the copy lacks are sent, and each point's
    /// manifest last, once everything it needs is there. The copy opens with the same
    /// passphrase.
    Replicate {
        #[command(flatten)]
        repo: RepoDir,
        /// The copy's folder.
        #[arg(long)]
        to: PathBuf,
    },
    /// Delete recovery points (their data is reclaimed by `gc`).
    Forget {
        #[command(flatten)]
        repo: RepoDir,
        #[arg(required = true)]
        points: Vec<String>,
    },
    /// Reclaim storage that no recovery point references.
    Gc {
        #[command(flatten)]
        repo: RepoDir,
        /// Repack packs with more than this percentage of dead bytes.
        #[arg(long, default_value_t = 20)]
        repack_threshold: u8,
    },
    /// Rebuild the index files from the packs (after an index file was damaged or lost).
    RebuildIndex {
        #[command(flatten)]
        repo: RepoDir,
    },
    /// Manage the repository's keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Write the key that opens the repository (still wrapped by its passphrase) to a file.
    Export {
        #[command(flatten)]
        repo: RepoDir,
        #[arg(long)]
        output: PathBuf,
    },
    /// Put an exported key back into a repository that lost its key files.
    Import {
        #[command(flatten)]
        repo: RepoDir,
        #[arg(long)]
        input: PathBuf,
    },
    /// Add a passphrase (read from TRESOR_NEW_PASSWORD or a prompt).
    Add {
        #[command(flatten)]
        repo: RepoDir,
    },
}

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub repo: RepoDir,
    #[command(flatten)]
    pub vm: VmArgs,
    /// Name of what is backed up (the VM); points of one name form its history.
    /// Required for images; for --vm-qmp the default is QEMU's -name, for
    /// --libvirt-domain the domain's name.
    #[arg(long, required_unless_present = "vm_source")]
    pub name: Option<String>,
    /// With --vm-qmp or --libvirt-domain: read every disk whole (deduplicated) even
    /// where the dirty bitmaps could be used.
    #[arg(long, requires = "vm_source")]
    pub full: bool,
    /// With --vm-qmp or --libvirt-domain: do not freeze the guest's file systems
    /// (crash-consistent point).
    #[arg(long, requires = "vm_source")]
    pub no_quiesce: bool,
    /// The point this backup follows: an id, or `latest` for the newest point of --name.
    #[arg(long, conflicts_with_all = ["qmp", "libvirt_domain"])]
    pub parent: Option<String>,
    /// Changed extents since the parent, one file per image in order (`OFFSET LENGTH`
    /// lines or qemu-img map JSON). Without it every image is read whole.
    #[arg(long = "dirty-extents", conflicts_with_all = ["bitmaps", "qmp", "libvirt_domain"])]
    pub dirty_extents: Vec<PathBuf>,
    /// Incremental forever for a stopped VM's qcow2 images: with --parent, read only
    /// what the image's persistent dirty bitmap for that parent marks; after the
    /// backup, start the bitmap for the new point. Without a valid bitmap for the
    /// parent (none, inconsistent, another parent) the image is read whole.
    #[arg(long, conflicts_with_all = ["qmp", "libvirt_domain"])]
    pub bitmaps: bool,
    /// Consistency to record for this point (images only; a VM's backup knows its own).
    #[arg(long, value_enum, default_value_t = ConsistencyArg::Crash, conflicts_with_all = ["qmp", "libvirt_domain"])]
    pub consistency: ConsistencyArg,
    /// Worker threads (reading, hashing, compressing); 0 means one more than the cores.
    /// Fewer leave CPU to the VMs on the host.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Disk images to back up; each disk is named after its file name. Images other
    /// than raw are read through qemu-nbd, which refuses images a running VM holds.
    #[arg(required_unless_present = "vm_source", conflicts_with_all = ["qmp", "libvirt_domain"])]
    pub images: Vec<PathBuf>,
}

#[derive(Args)]
pub struct BenchmarkArgs {
    /// Size of the data the pipeline benchmark backs up and restores, in MiB.
    #[arg(long, default_value_t = 512)]
    pub pipeline_mib: u64,
    /// Folder for the pipeline benchmark's temporary repository.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ConsistencyArg {
    #[value(name = "AppConsistent")]
    App,
    #[value(name = "FileSystemConsistent")]
    FileSystem,
    #[value(name = "CrashConsistent")]
    Crash,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Raw,
    Qcow2,
}

/// Parses `65536`, `64K`, `4M`.
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1024),
        Some('m' | 'M') => (&t[..t.len() - 1], 1024 * 1024),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("{text:?} is not a size (examples: 65536, 64K, 1M)"))
}
