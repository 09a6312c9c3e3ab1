//! A local relay in front of a Docker engine older than testcontainers.
//!
//! testcontainers-rs (0.28) talks to the engine through bollard at a fixed
//! API version (1.53) and never negotiates; Debian 12's `docker.io` (20.10)
//! answers at most 1.41 and refuses every request of a newer client ("client
//! version 1.53 is too new"). When the engine is older than the client, the
//! containers runtime starts this relay on a Unix socket in the state
//! directory (mode 0600: a socket that reaches the engine is root-equivalent)
//! and points testcontainers at it.
//!
//! Per connection, the relay rewrites the first request line's path from
//! `/v<client version>/…` to `/…` (the engine then uses its own version),
//! adds `Connection: close` so that every request comes on a connection of
//! its own, and then copies both directions unchanged, streamed responses
//! (followed logs) included. The JSON bollard sends is accepted by older
//! engines: they ignore the fields they do not know.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};

use crate::error::{LabError, Result};

/// Longest request head the relay reads before giving up on a connection.
const MAX_HEAD: usize = 64 * 1024;

/// Where the relay forwards to.
#[derive(Debug, Clone)]
pub enum Upstream {
    Unix(PathBuf),
    Tcp(String),
}

impl Upstream {
    /// The upstream of a `DOCKER_HOST`-style address (`unix://…`, `tcp://…`).
    #[must_use]
    pub fn parse(host: &str) -> Option<Self> {
        if let Some(path) = host.strip_prefix("unix://") {
            Some(Self::Unix(PathBuf::from(path)))
        } else {
            host.strip_prefix("tcp://").or_else(|| host.strip_prefix("http://")).map(|a| Self::Tcp(a.to_owned()))
        }
    }
}

/// Starts the relay on `socket` (replacing a stale one) as a task of the
/// current Tokio runtime; it lives as long as the runtime.
pub fn start(socket: &Path, upstream: Upstream) -> Result<()> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)
        .map_err(|e| LabError::io(format!("listening on {} (the engine relay)", socket.display()), e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| LabError::io(format!("restricting {}", socket.display()), e))?;
    }
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                // A failed connection fails the one request that used it.
                let _ = relay(client, upstream).await;
            });
        }
    });
    Ok(())
}

async fn relay(mut client: UnixStream, upstream: Upstream) -> std::io::Result<()> {
    let (head, rest) = read_head(&mut client).await?;
    let head = rewrite_head(&head)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP/1 request head"))?;
    match upstream {
        Upstream::Unix(path) => forward(client, UnixStream::connect(path).await?, &head, &rest).await,
        Upstream::Tcp(addr) => forward(client, TcpStream::connect(addr).await?, &head, &rest).await,
    }
}

async fn forward<S>(mut client: UnixStream, mut server: S, head: &[u8], rest: &[u8]) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    server.write_all(head).await?;
    server.write_all(rest).await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}

/// Reads up to the end of the request head (`\r\n\r\n`): the head and what
/// was read past it.
async fn read_head(client: &mut UnixStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "request head too long"));
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The request head with the API version dropped from its path, any
/// `Connection` header replaced by `Connection: close`. `None` when `head`
/// is not an HTTP/1 request head.
#[must_use]
pub fn rewrite_head(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.strip_suffix("\r\n\r\n")?.split("\r\n");
    let mut request = lines.next()?.splitn(3, ' ');
    let (method, target, version) = (request.next()?, request.next()?, request.next()?);
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let target = strip_version(target);
    let mut out = format!("{method} {target} {version}\r\n");
    for line in lines {
        let name = line.split(':').next().unwrap_or_default().trim();
        if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("keep-alive") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    Some(out.into_bytes())
}

/// `/v1.53/containers/json` → `/containers/json`; other paths unchanged.
fn strip_version(target: &str) -> &str {
    let Some(after) = target.strip_prefix("/v") else { return target };
    let end = after.find('/').unwrap_or(after.len());
    let (version, rest) = after.split_at(end);
    let numeric = !version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.');
    if numeric && rest.starts_with('/') {
        rest
    } else {
        target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_goes_and_the_connection_closes() {
        let head = b"POST /v1.53/containers/create?name=x HTTP/1.1\r\nHost: docker\r\nconnection: keep-alive\r\n\
            Content-Length: 2\r\n\r\n";
        let out = String::from_utf8(rewrite_head(head).unwrap()).unwrap();
        assert_eq!(
            out,
            "POST /containers/create?name=x HTTP/1.1\r\nHost: docker\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn paths_without_a_version_are_kept() {
        assert_eq!(strip_version("/_ping"), "/_ping");
        assert_eq!(strip_version("/v1.41/version"), "/version");
        assert_eq!(strip_version("/volumes/v1.2"), "/volumes/v1.2");
        assert_eq!(strip_version("/vendor/x"), "/vendor/x");
        assert!(rewrite_head(b"garbage\r\n\r\n").is_none());
    }

    #[test]
    fn addresses_parse() {
        assert!(
            matches!(Upstream::parse("unix:///var/run/docker.sock"), Some(Upstream::Unix(p)) if p == Path::new("/var/run/docker.sock"))
        );
        assert!(matches!(Upstream::parse("tcp://127.0.0.1:2375"), Some(Upstream::Tcp(a)) if a == "127.0.0.1:2375"));
        assert!(Upstream::parse("npipe:////./pipe/docker_engine").is_none());
    }
}
