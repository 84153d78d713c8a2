//! What a host reports about its VMs, in words: severities of preflight checks and
//! the guest agent's state, as the host agents page and a VM's page show them.

use tresor_api::inventory::{GuestAgentState, Severity};

/// Severity as serialized (`ok`, `warning`, `error`) → rank and badge text.
pub(crate) fn severity(s: &str) -> (u8, &'static str) {
    match s {
        "ok" => (0, "ok"),
        "warning" => (1, "WARNING"),
        "error" => (2, "ERROR"),
        _ => (1, "WARNING"),
    }
}

/// A severity's serialized name.
pub(crate) fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Ok => "ok",
        Severity::Warning => "warning",
        Severity::Error => "error",
    }
}

/// A guest agent's state in words (the host's and the VM's pages).
pub(crate) fn guest_agent_text(state: &GuestAgentState) -> String {
    match state {
        GuestAgentState::NotConfigured => "not configured".to_string(),
        GuestAgentState::NotResponding { reason } => format!("not responding ({reason})"),
        GuestAgentState::Responding {
            version,
            can_freeze,
        } => format!(
            "responding, version {version}, {}",
            if *can_freeze {
                "can freeze file systems"
            } else {
                "cannot freeze file systems"
            }
        ),
    }
}
