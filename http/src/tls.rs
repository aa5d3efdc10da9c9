//! HTTPS on the public port: rustls over the PEM files named by
//! `FLASHCORE_TLS_CERT` and `FLASHCORE_TLS_KEY`, reloaded when either file
//! changes (a renewed certificate is served to new connections without a
//! restart; a pair that does not load is logged and the one in use kept).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use axum_server::tls_rustls::RustlsConfig;

/// How often the files are looked at for a change.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// The certificate chain and private key files (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `FLASHCORE_TLS_CERT`: the chain, leaf first.
    pub cert: PathBuf,
    /// `FLASHCORE_TLS_KEY`: its private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// Loads the pair; an unreadable or mismatched pair stops the start.
    pub async fn load(&self) -> anyhow::Result<RustlsConfig> {
        RustlsConfig::from_pem_file(&self.cert, &self.key).await.map_err(|e| {
            anyhow::anyhow!(
                "FLASHCORE_TLS_CERT / FLASHCORE_TLS_KEY ({} / {}): {e}",
                self.cert.display(),
                self.key.display()
            )
        })
    }

    fn modified(&self) -> Option<(SystemTime, SystemTime)> {
        let at = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Some((at(&self.cert)?, at(&self.key)?))
    }

    /// Reloads `config` whenever either file changes, until the task is dropped.
    pub fn watch(self, config: RustlsConfig) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut seen = self.modified();
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                let now = self.modified();
                if now.is_none() || now == seen {
                    continue;
                }
                match config.reload_from_pem_file(&self.cert, &self.key).await {
                    Ok(()) => {
                        seen = now;
                        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                    }
                    // Perhaps half written: tried again on the next look.
                    Err(e) => {
                        tracing::warn!(cert = %self.cert.display(), error = %e, "TLS certificate not reloaded; keeping the one in use")
                    }
                }
            }
        })
    }
}
