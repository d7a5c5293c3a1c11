//! `portcullis keys ...` and `portcullis users ...`: the built-in identity
//! provider's administration (C24). Passwords are read from the terminal
//! (without echo) or from stdin, never from the command line.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use portcullis_gateway::config;
use portcullis_gateway::identity::keys::{self, KeyAlg};
use portcullis_gateway::identity::password::Hasher;
use portcullis_gateway::identity::service::MAX_USERNAME_BYTES;
use portcullis_gateway::identity::store::{Store, StoreError};

/// `portcullis keys`.
#[derive(Subcommand)]
pub(crate) enum Keys {
    /// Generate a signing key for `[identity] signing_key` (PKCS#8 PEM, mode 0600).
    Generate {
        /// Where to write it; an existing file is not overwritten.
        #[arg(long)]
        out: PathBuf,
        /// `eddsa` (Ed25519, the default) or `es256` (ECDSA P-256).
        #[arg(long, default_value = "eddsa")]
        alg: String,
    },
}

/// `portcullis users`.
#[derive(Subcommand)]
pub(crate) enum Users {
    /// Add a user; the password is read from the terminal or stdin.
    Add {
        /// The user name (the token subject).
        name: String,
        /// Roles, comma-separated.
        #[arg(long, default_value = "")]
        roles: String,
        /// The configuration file (for `[identity]` and `[state] database`).
        #[arg(long, short, default_value = "portcullis.toml")]
        config: PathBuf,
    },
    /// List users: name, roles, state. Never hashes.
    List {
        /// The configuration file.
        #[arg(long, short, default_value = "portcullis.toml")]
        config: PathBuf,
    },
    /// Replace a user's roles (their refresh tokens are revoked).
    SetRoles {
        /// The user name.
        name: String,
        /// Roles, comma-separated (empty for none).
        #[arg(long)]
        roles: String,
        /// The configuration file.
        #[arg(long, short, default_value = "portcullis.toml")]
        config: PathBuf,
    },
    /// Disable a user (their refresh tokens are revoked).
    Disable {
        /// The user name.
        name: String,
        /// The configuration file.
        #[arg(long, short, default_value = "portcullis.toml")]
        config: PathBuf,
    },
    /// Enable a disabled user.
    Enable {
        /// The user name.
        name: String,
        /// The configuration file.
        #[arg(long, short, default_value = "portcullis.toml")]
        config: PathBuf,
    },
    /// Set a user's password (read from the terminal or stdin; refresh tokens revoked).
    Passwd {
        /// The user name.
        name: String,
        /// The configuration file.
        #[arg(long, short, default_value = "portcullis.toml")]
        config: PathBuf,
    },
    /// Remove a user and their refresh tokens.
    Remove {
        /// The user name.
        name: String,
        /// The configuration file.
        #[arg(long, short, default_value = "portcullis.toml")]
        config: PathBuf,
    },
}

/// Runs `portcullis keys ...`.
pub(crate) fn keys(cmd: Keys) -> anyhow::Result<()> {
    let Keys::Generate { out, alg } = cmd;
    let alg = KeyAlg::parse(&alg).context("--alg: expected eddsa or es256")?;
    let pem = keys::generate(alg).map_err(anyhow::Error::msg)?;
    write_new_private(&out, pem.as_bytes())?;
    let key = keys::SigningKey::from_pem(&pem).map_err(anyhow::Error::msg)?;
    println!("wrote {} ({}, kid {})", out.display(), key.alg.name(), key.kid);
    println!("use it with:\n  [identity]\n  signing_key = \"file:{}\"", out.display());
    Ok(())
}

#[cfg(unix)]
fn write_new_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).with_context(
            || format!("can't create {} (an existing key is never overwritten)", path.display()),
        )?;
    f.write_all(bytes)?;
    Ok(())
}

#[cfg(not(unix))]
fn write_new_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).open(path).with_context(|| {
            format!("can't create {} (an existing key is never overwritten)", path.display())
        })?;
    f.write_all(bytes)?;
    Ok(())
}

fn roles_of(s: &str) -> anyhow::Result<Vec<String>> {
    let roles: Vec<String> =
        s.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect();
    for r in &roles {
        if r.len() > 64
            || !r.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.'))
        {
            bail!("a role is 1 to 64 characters of A-Z a-z 0-9 _ - : .");
        }
    }
    Ok(roles)
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.len() > MAX_USERNAME_BYTES || name.chars().any(char::is_control) {
        bail!("a user name is 1 to {MAX_USERNAME_BYTES} bytes without control characters");
    }
    Ok(())
}

async fn open(config_path: &Path) -> anyhow::Result<(Store, Hasher)> {
    let cfg = config::load(config_path).map_err(|p| anyhow::anyhow!("{} problem(s):\n{p}", p.0.len()))?;
    let Some(id) = &cfg.identity else {
        bail!("{} has no [identity] section", config_path.display());
    };
    let store = Store::open(id.database.expose()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let hasher = Hasher::new(id.cost, id.hash_concurrency).map_err(anyhow::Error::msg)?;
    Ok((store, hasher))
}

/// Reads a password: from the terminal without echo (asked twice), or the
/// first line of stdin when it is not a terminal.
fn read_password(name: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        let p = line.trim_end_matches(['\n', '\r']).to_owned();
        if p.is_empty() {
            bail!("no password on stdin");
        }
        return Ok(p);
    }
    let ask = |prompt: &str| -> anyhow::Result<String> {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        let _ =
            std::process::Command::new("stty").arg("-echo").stdin(std::process::Stdio::inherit()).status();
        let mut line = String::new();
        let r = std::io::stdin().lock().read_line(&mut line);
        let _ = std::process::Command::new("stty").arg("echo").stdin(std::process::Stdio::inherit()).status();
        eprintln!();
        r?;
        Ok(line.trim_end_matches(['\n', '\r']).to_owned())
    };
    let first = ask(&format!("password for {name}: "))?;
    let second = ask("again: ")?;
    if first != second {
        bail!("the passwords differ");
    }
    if first.is_empty() {
        bail!("an empty password is not allowed");
    }
    Ok(first)
}

fn store_error(e: StoreError, name: &str) -> anyhow::Error {
    match e {
        StoreError::Exists => anyhow::anyhow!("user {name:?} exists"),
        StoreError::NoSuchUser => anyhow::anyhow!("no user {name:?}"),
        other => anyhow::anyhow!("{other}"),
    }
}

/// Runs `portcullis users ...`.
pub(crate) async fn users(cmd: Users) -> anyhow::Result<()> {
    match cmd {
        Users::Add { name, roles, config } => {
            check_name(&name)?;
            let roles = roles_of(&roles)?;
            let (store, hasher) = open(&config).await?;
            let password = read_password(&name)?;
            let hash =
                hasher.hash(&password).await.map_err(|_| anyhow::anyhow!("a password is 1 to 1024 bytes"))?;
            store.add_user(&name, &hash, &roles).await.map_err(|e| store_error(e, &name))?;
            println!(
                "added {name} (roles: {})",
                if roles.is_empty() { "none".to_owned() } else { roles.join(", ") }
            );
        }
        Users::List { config } => {
            let (store, _) = open(&config).await?;
            let users = store.users().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut out = std::io::stdout().lock();
            for u in users {
                let state = if u.disabled { "disabled" } else { "active" };
                let _ = writeln!(out, "{}\t{}\t{state}", u.name, u.roles.join(","));
            }
        }
        Users::SetRoles { name, roles, config } => {
            let roles = roles_of(&roles)?;
            let (store, _) = open(&config).await?;
            store.set_roles(&name, &roles).await.map_err(|e| store_error(e, &name))?;
            println!("{name}: roles set, refresh tokens revoked");
        }
        Users::Disable { name, config } => {
            let (store, _) = open(&config).await?;
            store.set_disabled(&name, true).await.map_err(|e| store_error(e, &name))?;
            println!("{name}: disabled, refresh tokens revoked");
        }
        Users::Enable { name, config } => {
            let (store, _) = open(&config).await?;
            store.set_disabled(&name, false).await.map_err(|e| store_error(e, &name))?;
            println!("{name}: enabled");
        }
        Users::Passwd { name, config } => {
            let (store, hasher) = open(&config).await?;
            if store.user(&name).await.map_err(|e| anyhow::anyhow!("{e}"))?.is_none() {
                bail!("no user {name:?}");
            }
            let password = read_password(&name)?;
            let hash =
                hasher.hash(&password).await.map_err(|_| anyhow::anyhow!("a password is 1 to 1024 bytes"))?;
            store.set_password(&name, &hash).await.map_err(|e| store_error(e, &name))?;
            println!("{name}: password set, refresh tokens revoked");
        }
        Users::Remove { name, config } => {
            let (store, _) = open(&config).await?;
            store.remove_user(&name).await.map_err(|e| store_error(e, &name))?;
            println!("{name}: removed");
        }
    }
    Ok(())
}
