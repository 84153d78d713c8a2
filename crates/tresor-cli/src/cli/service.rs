//! The command line of the vault service: `serve`, `agent`, and the management
//! commands shaped like `az backup`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use tresor_api::vaults::StorageRedundancy;

/// How the management commands reach the server. Flags win over the environment,
/// the environment over the config file (default `~/.config/tresor/cli.json`, the
/// format of the `cli.json` that `tresor serve` writes in its data directory).
#[derive(Args, Clone, Debug)]
pub struct Connection {
    /// Server URL (https://host:port).
    #[arg(long, env = "TRESOR_SERVER", global = true)]
    pub server: Option<String>,
    /// SHA-256 fingerprint of the server's certificate.
    #[arg(long, env = "TRESOR_FINGERPRINT", global = true)]
    pub fingerprint: Option<String>,
    /// Admin or API token. Prefer the environment or the config file to a flag.
    #[arg(long, env = "TRESOR_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// A config file with server, fingerprint and token.
    #[arg(long = "config", env = "TRESOR_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Output: a table for people, JSON for scripts.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Where the server keeps everything (metadata, repositories, certificate).
    #[arg(long, default_value = "/var/lib/tresor")]
    pub data_dir: PathBuf,
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// The URL agents use to reach this server (default: https://LISTEN).
    #[arg(long)]
    pub public_url: Option<String>,
    /// The server's configuration: locations, their storage targets and pairs,
    /// replication timing (TOML; default DATA/server.toml when it exists, else every
    /// location keeps its data in DATA/vaults with the copy in DATA/replica).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Also run a host agent in this process, for the VMs of this host (its
    /// libvirt domains and the QEMU VMs --agent-config names); it needs no
    /// registration and follows the server's address from one start to the next.
    #[arg(long, requires = "agent_config")]
    pub with_local_agent: bool,
    /// The local agent's configuration (TOML, as for `tresor agent run`, see
    /// docs/agent.md); its credentials and state_dir are not needed (its state is
    /// kept in DATA/local-agent).
    #[arg(long, requires = "with_local_agent")]
    pub agent_config: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Run the host agent: register (first start), report VMs, run jobs.
    Run {
        /// The agent's configuration (TOML).
        #[arg(long, default_value = "/etc/tresor/agent.toml")]
        config: PathBuf,
    },
    /// Test the way to the server step by step (DNS, TCP, proxy, TLS, credential) and
    /// name the failure with a stable code.
    Check {
        #[arg(long, default_value = "/etc/tresor/agent.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum VaultCommand {
    /// Create a vault (it starts with DefaultPolicy).
    Create {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'g')]
        resource_group: String,
        #[arg(long, short = 'l')]
        location: String,
        #[arg(long, value_enum)]
        storage_redundancy: Option<Redundancy>,
    },
    List,
    Show {
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Delete an empty vault.
    Delete {
        #[arg(long, short = 'n')]
        name: String,
        /// Do not ask.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    #[command(subcommand, name = "backup-properties")]
    BackupProperties(BackupPropertiesCommand),
    /// Update a vault's properties (as `az backup vault update`): the same as
    /// `tresor vault backup-properties set`.
    Update(BackupPropertiesArgs),
    /// Copy what the secondary region lacks now (GeoRedundant vaults replicate by
    /// themselves after every backup; this runs a replication at once and waits).
    Replicate {
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Re-read every recovery point and pack of the vault and report damage; waits
    /// for the job to end and fails if anything is damaged.
    Verify {
        #[arg(long, short = 'n')]
        name: String,
        /// Verify the copy in the secondary region instead of the primary.
        #[arg(long)]
        use_secondary_region: bool,
    },
    /// Issue a vault credentials file for registering a host agent.
    Credentials {
        #[arg(long, short = 'n')]
        name: String,
        /// 1..=10 days (default 2).
        #[arg(long)]
        valid_days: Option<u32>,
        /// The location of the host that registers with them (default: the vault's).
        /// The agent is placed there whatever its configuration says.
        #[arg(long)]
        location: Option<String>,
        /// Write the file here (default: print it).
        #[arg(long)]
        output_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum BackupPropertiesCommand {
    /// Set the storage redundancy (possible until the first backup is stored),
    /// cross-region restore (GeoRedundant vaults; once enabled it stays enabled) and
    /// soft delete (its period; always-on, once set, stays set).
    Set(BackupPropertiesArgs),
}

/// A vault's properties to set (`vault backup-properties set`, `vault update`);
/// those not given stay as they are.
#[derive(Args)]
pub struct BackupPropertiesArgs {
    #[arg(long, short = 'n')]
    pub name: String,
    #[arg(long, value_enum)]
    pub backup_storage_redundancy: Option<Redundancy>,
    /// Allow listing and restoring recovery points from the secondary region.
    #[arg(long)]
    pub cross_region_restore_flag: Option<bool>,
    /// Days deleted backup data is kept (soft-deleted, undeletable) before it
    /// is purged: 14 to 180.
    #[arg(long)]
    pub soft_delete_days: Option<u32>,
    /// Make soft delete always-on: it can never be switched off again.
    #[arg(long)]
    pub soft_delete_always_on: bool,
    /// The vault's immutability: Disabled, Enabled, or Locked (for good).
    #[arg(long, value_parser = parse_immutability)]
    pub immutability: Option<tresor_api::vaults::Immutability>,
    /// Bind the vault to this resource guard ("" unbinds it; unbinding or
    /// re-binding a guarded vault needs an approved RemoveResourceGuard request).
    #[arg(long)]
    pub resource_guard: Option<String>,
}

fn parse_immutability(s: &str) -> Result<tresor_api::vaults::Immutability, String> {
    use tresor_api::vaults::Immutability::*;
    [Disabled, Enabled, Locked]
        .into_iter()
        .find(|i| format!("{i:?}").eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("{s} is no immutability: use Disabled, Enabled or Locked"))
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Redundancy {
    #[value(name = "GeoRedundant")]
    GeoRedundant,
    #[value(name = "LocallyRedundant")]
    LocallyRedundant,
}

impl From<Redundancy> for StorageRedundancy {
    fn from(r: Redundancy) -> StorageRedundancy {
        match r {
            Redundancy::GeoRedundant => StorageRedundancy::GeoRedundant,
            Redundancy::LocallyRedundant => StorageRedundancy::LocallyRedundant,
        }
    }
}

#[derive(Args, Clone)]
pub struct VaultName {
    #[arg(long, short = 'v')]
    pub vault_name: String,
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    List {
        #[command(flatten)]
        vault: VaultName,
    },
    Show {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Create a policy from a JSON file (see `tresor policy show ... -o json`).
    Create {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long)]
        policy: PathBuf,
    },
    /// Change a policy (applies to every item using it).
    Set {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long)]
        policy: PathBuf,
    },
    Delete {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long, short = 'n')]
        name: String,
    },
    /// The policy VMs get when none is named.
    GetDefaultForVm {
        #[command(flatten)]
        vault: VaultName,
    },
}

#[derive(Subcommand)]
pub enum ProtectableCommand {
    /// VMs the agents report in the vault's location that no vault protects.
    List {
        #[command(flatten)]
        vault: VaultName,
    },
}

#[derive(Subcommand)]
pub enum ProtectionCommand {
    /// Enable backup of a VM (creates no recovery point: the first backup follows
    /// the schedule, or `backup-now`).
    EnableForVm {
        #[command(flatten)]
        vault: VaultName,
        /// The VM: as the agent names it (a libvirt domain's UUID), or by its name
        /// when no other VM of the host has it.
        #[arg(long)]
        vm: String,
        /// The host the VM runs on (the agent's host name or id).
        #[arg(long)]
        host: String,
        #[arg(long, short = 'p', default_value = "DefaultPolicy")]
        policy_name: String,
        /// Leave this disk out of the points, by its target as the VM reports it
        /// (`vdb`); repeat for several. libvirt domains only.
        #[arg(long = "exclude-disk", value_name = "DISK")]
        exclude_disks: Vec<String>,
    },
    /// Back up now, keeping the point until a date (default 30 days from now).
    BackupNow {
        #[command(flatten)]
        vault: VaultName,
        /// The protected item: its id, or its VM's (a libvirt domain's name or UUID)
        /// when no other item of the vault has it.
        #[arg(long, short = 'i')]
        item: String,
        /// Keep the point until (RFC 3339 time or a date YYYY-MM-DD, UTC).
        #[arg(long)]
        retain_until: Option<String>,
    },
    /// Stop protection, keeping the data (retention stops) or deleting it (it is
    /// kept, soft-deleted, for the vault's soft-delete period, then purged).
    Disable {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long, short = 'i')]
        item: String,
        #[arg(long)]
        delete_backup_data: bool,
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Undelete a soft-deleted item: it comes back with its recovery points,
    /// protection stopped (resume it to back up again).
    Undelete {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long, short = 'i')]
        item: String,
    },
    /// Resume the protection of a stopped item under a policy: its schedule runs
    /// again and its points expire as that policy says.
    Resume {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long, short = 'i')]
        item: String,
        #[arg(long, short = 'p')]
        policy_name: String,
    },
}

#[derive(Subcommand)]
pub enum ItemCommand {
    List {
        #[command(flatten)]
        vault: VaultName,
    },
    Show {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Protect the item under another policy; its scheduled points then expire as
    /// that policy says.
    SetPolicy {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'p')]
        policy_name: String,
        /// Leave these disks out from the next backup on (replacing the item's
        /// list); repeat for several.
        #[arg(long = "exclude-disk", value_name = "DISK")]
        exclude_disks: Vec<String>,
    },
    /// Change how the item is protected: its policy (as set-policy) and/or the
    /// disks its backups leave out.
    Update {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'p')]
        policy_name: Option<String>,
        /// Leave this disk out from the next backup on, by its target (`vdb`);
        /// repeat for several. The list replaces the item's.
        #[arg(
            long = "exclude-disk",
            value_name = "DISK",
            conflicts_with = "include_all_disks"
        )]
        exclude_disks: Vec<String>,
        /// Back every disk up again (no disk excluded).
        #[arg(long)]
        include_all_disks: bool,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// List entries in order: from a seq on, or the newest.
    List {
        /// From this seq on (default: the newest --limit entries).
        #[arg(long)]
        from: Option<u64>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only the entries of this vault.
        #[arg(long)]
        vault: Option<String>,
    },
    /// Check the hash chain; fails, naming the first broken entry, when it does not hold.
    Verify,
}

#[derive(Subcommand)]
pub enum JobCommand {
    List {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        operation: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    Show {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Wait for a job to end, with a progress bar; fails if the job failed.
    Wait {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long, short = 'n')]
        name: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
    /// Cancel a job.
    Stop {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long, short = 'n')]
        name: String,
    },
}

#[derive(Subcommand)]
pub enum PointCommand {
    List {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long, short = 'i')]
        item: String,
        /// The points the secondary region holds (cross-region restore), including
        /// those deleted from the primary within the soft-delete window.
        #[arg(long)]
        use_secondary_region: bool,
    },
    Show {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long, short = 'i')]
        item: String,
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long)]
        use_secondary_region: bool,
    },
    /// Delete a recovery point: it is kept, soft-deleted, for the vault's
    /// soft-delete period, then purged.
    Delete {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long, short = 'i')]
        item: String,
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Undelete a soft-deleted recovery point.
    Undelete {
        #[command(flatten)]
        vault: VaultName,
        #[arg(long, short = 'i')]
        item: String,
        #[arg(long, short = 'n')]
        name: String,
    },
}

#[derive(Args)]
pub struct RestoreTarget {
    #[command(flatten)]
    pub vault: VaultName,
    #[arg(long, short = 'i')]
    pub item: String,
    /// The recovery point.
    #[arg(long)]
    pub rp_name: String,
    /// Restore from the copy in the secondary region (cross-region restore).
    #[arg(long)]
    pub use_secondary_region: bool,
}

#[derive(Subcommand)]
pub enum RestoreCommand {
    /// Restore the disks into a folder on the VM's host.
    RestoreDisks {
        #[command(flatten)]
        target: RestoreTarget,
        #[arg(long)]
        target_path: String,
        #[arg(long, value_enum)]
        format: Option<super::FormatArg>,
    },
    /// Restore the disks and define a new VM from them (vm.json, start-vm.sh).
    CreateVm {
        #[command(flatten)]
        target: RestoreTarget,
        /// A new, empty folder under one of the host's restore roots.
        #[arg(
            long,
            required_unless_present = "target_pool",
            conflicts_with = "target_pool"
        )]
        target_path: Option<String>,
        /// A libvirt domain's disks into this libvirt storage pool instead (a dir, fs
        /// or netfs pool whose folder is under a restore root).
        #[arg(long)]
        target_pool: Option<String>,
        /// The new VM's name (default: NAME-restored-TIME).
        #[arg(long)]
        new_name: Option<String>,
        /// Start a restored libvirt domain once it is defined.
        #[arg(long)]
        start: bool,
    },
    /// Write the disks back over the stopped VM's own images.
    ReplaceDisks {
        #[command(flatten)]
        target: RestoreTarget,
        #[arg(long, short = 'y')]
        yes: bool,
    },
}
