//! The container's health probe (deploy/Dockerfile): the runtime image has no
//! shell or curl, so this std-only program asks flashcore for a path (default
//! `/health`) on the port of `FLASHCORE_ADDR` and exits 0 only on HTTP 200.
//!
//!     flashcore-healthcheck [/health|/ready]
//!
//! Built with plain `rustc` in the builder stage; it is not part of the workspace.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let path = std::env::args().nth(1).unwrap_or_else(|| "/health".to_owned());
    let port = std::env::var("FLASHCORE_ADDR")
        .ok()
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .map_or(8080, |a| a.port());
    match probe(port, &path) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("flashcore-healthcheck: {e}");
            ExitCode::FAILURE
        }
    }
}

fn probe(port: u16, path: &str) -> std::io::Result<bool> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    // "HTTP/1.1 200"
    Ok(head.starts_with(b"HTTP/1.") && &head[8..12] == b" 200")
}
