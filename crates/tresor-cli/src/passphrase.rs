//! Where passphrases come from: the environment, a file, or a prompt on a terminal.
//! Never from a command-line argument (it would show in `ps` and shell history).

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};

/// The repository passphrase: `TRESOR_PASSWORD`, `TRESOR_PASSWORD_FILE`, or a prompt.
pub fn get(confirm: bool) -> Result<Vec<u8>> {
    from_env_or_prompt("TRESOR_PASSWORD", "Repository passphrase: ", confirm)
}

/// A second passphrase (adding a key): `TRESOR_NEW_PASSWORD` or a prompt.
pub fn get_new() -> Result<Vec<u8>> {
    from_env_or_prompt("TRESOR_NEW_PASSWORD", "New passphrase: ", true)
}

fn from_env_or_prompt(var: &str, prompt: &str, confirm: bool) -> Result<Vec<u8>> {
    if let Ok(p) = std::env::var(var) {
        return Ok(p.into_bytes());
    }
    let file_var = format!("{var}_FILE");
    if let Ok(path) = std::env::var(&file_var) {
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("reading {file_var}={path}"))?;
        return Ok(text.trim_end_matches(['\n', '\r']).as_bytes().to_vec());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: set {var} (or {file_var}), or run on a terminal to be asked");
    }
    let first = rpassword::prompt_password(prompt)?;
    if confirm {
        let again = rpassword::prompt_password("Repeat it: ")?;
        if again != first {
            bail!("the two passphrases differ; nothing was changed");
        }
    }
    Ok(first.into_bytes())
}
