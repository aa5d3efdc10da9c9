//! The command line: `flashcore` serves; `flashcore keys …` manages operator API
//! keys in the configured store (the same `DATABASE_URL` / `FLASHCORE_STORE` the
//! server uses), so the first admin key can be made before anything is exposed.

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use flashcore_http_ports::{ApiKeyStore, Role};

use crate::api_keys::new_key;
use crate::config::Config;
use crate::startup::open_key_store;

/// flashcore: an actor-based commerce core for flash sales.
#[derive(Debug, Parser)]
#[command(name = "flashcore", version, about, long_about = None)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What the binary does: serve the API (the default) or manage keys.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default). Configured by environment variables; see README.
    Serve,
    /// Manage operator API keys.
    Keys {
        /// Create, list or revoke.
        #[command(subcommand)]
        action: KeyAction,
    },
}

/// Operations on operator API keys; they need a durable store.
#[derive(Debug, Subcommand)]
pub enum KeyAction {
    /// Create a key and print its secret (shown this once, stored only as SHA-256).
    Create {
        /// `operator` (read) or `admin` (read and write).
        #[arg(long, value_parser = ["operator", "admin"])]
        role: String,
        /// A label for the key.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id.
    Revoke {
        /// The key's id, as `keys list` prints it.
        id: String,
    },
}

async fn key_store(config: &Config) -> anyhow::Result<Arc<dyn ApiKeyStore>> {
    if !config.store.is_durable() {
        bail!(
            "API keys need a durable store: unset FLASHCORE_STORE=memory (SQLite is the default) or set DATABASE_URL"
        );
    }
    let keys = open_key_store(&config.store).await?;
    Ok(keys)
}

/// Runs a `keys` action, printing to stdout.
pub async fn keys(config: &Config, action: KeyAction) -> anyhow::Result<()> {
    let store = key_store(config).await?;
    match action {
        KeyAction::Create { role, name } => {
            let role = Role::parse(&role).context("role must be operator or admin")?;
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 100 {
                bail!("--name must be 1 to 100 characters");
            }
            let (secret, record) = new_key(name, role);
            store.insert_key(&record).await.context("could not store the key")?;
            println!("{secret}");
            eprintln!(
                "created {} key {} ({}); the secret above is shown once: send it as 'Authorization: Bearer <secret>'",
                role.as_str(),
                record.id,
                record.name
            );
        }
        KeyAction::List => {
            for k in store.list_keys().await.context("could not list keys")? {
                let state = if k.revoked { "revoked" } else { "active" };
                println!("{}\t{}\t{}\t{}\t{}", k.id, k.role.as_str(), state, crate::dto::rfc3339(k.created_at), k.name);
            }
        }
        KeyAction::Revoke { id } => {
            if !store.revoke_key(&id).await.context("could not revoke the key")? {
                bail!("no key with id {id}");
            }
            eprintln!("revoked {id}");
        }
    }
    Ok(())
}
