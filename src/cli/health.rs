//! `kizuna healthcheck`: the container image's HEALTHCHECK. Asks this configuration's plain
//! listener for `GET /readyz` (RFC 9112 request, nothing but the standard library and tokio,
//! so the slim image needs no curl) and exits 0 when it answers 200.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::Config;

/// The most of an answer read: a readiness answer is a small JSON object.
const MAX_ANSWER: u64 = 16 * 1024;

/// Checks readiness; prints `ready` (exit 0) or why not (exit 1). A configuration that
/// names no fixed port is an error (exit 1 with the reason).
pub async fn run(config: &Config, timeout_secs: u64) -> Result<ExitCode> {
    let addr = target(&config.listen)?;
    let timeout = Duration::from_secs(timeout_secs.max(1));
    match tokio::time::timeout(timeout, ask(addr)).await {
        Ok(Ok((200, _))) => {
            println!("ready: http://{addr}/readyz answered 200");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Ok((status, body))) => {
            eprintln!("not ready: http://{addr}/readyz answered {status}: {body}");
            Ok(ExitCode::FAILURE)
        }
        Ok(Err(e)) => {
            eprintln!("not ready: http://{addr}/readyz: {e:#}");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            eprintln!(
                "not ready: http://{addr}/readyz did not answer within {}s",
                timeout.as_secs()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Where to ask: the `listen` address, with an unspecified IP (`0.0.0.0`, `::`) replaced by
/// the loopback address of its family, since that is where a check inside the container
/// reaches the server.
fn target(listen: &str) -> Result<SocketAddr> {
    let mut addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("listen = {listen:?} is not IP:PORT"))?;
    if addr.port() == 0 {
        bail!(
            "listen = {listen:?} picks a free port at start-up, so there is no fixed port to check: set listen (KIZUNA_LISTEN or --listen) to the server's address"
        );
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(addr)
}

/// Sends the request and returns the status code and the body (or what arrived of it).
async fn ask(addr: SocketAddr) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await.context("cannot connect")?;
    let request = format!(
        "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut answer).await?;
    let text = String::from_utf8_lossy(&answer);
    parse(&text)
}

/// The status code of an HTTP/1.x answer, and its body.
fn parse(answer: &str) -> Result<(u16, String)> {
    let status_line = answer.lines().next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    let (version, code) = (parts.next().unwrap_or_default(), parts.next());
    let status = match code.and_then(|c| c.parse::<u16>().ok()) {
        Some(code) if version.starts_with("HTTP/1.") => code,
        _ => bail!("not an HTTP answer: {status_line:?}"),
    };
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim().to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_address_is_checked_on_loopback() {
        assert_eq!(
            target("0.0.0.0:8080").unwrap().to_string(),
            "127.0.0.1:8080"
        );
        assert_eq!(target("[::]:8080").unwrap().to_string(), "[::1]:8080");
        assert_eq!(
            target("10.0.0.7:9000").unwrap().to_string(),
            "10.0.0.7:9000"
        );
    }

    #[test]
    fn a_free_port_listen_address_has_nothing_to_check() {
        let e = target("127.0.0.1:0").unwrap_err().to_string();
        assert!(e.contains("no fixed port"), "{e}");
    }

    #[test]
    fn answers_are_read_by_status_line() {
        assert_eq!(
            parse("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\n{}").unwrap(),
            (503, "{}".into())
        );
        assert_eq!(parse("HTTP/1.1 200 OK\r\n\r\n").unwrap().0, 200);
        assert!(parse("SSH-2.0-OpenSSH_9.2\r\n").is_err());
        assert!(parse("").is_err());
    }
}
