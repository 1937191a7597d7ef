//! Which channel a request came on, for endpoints that need TLS or a client certificate
//! (EST, mutual TLS): the native TLS listener (with the chain rustls verified), or a trusted
//! reverse proxy that terminated TLS and forwarded the client's certificate in a header —
//! Envoy's `X-Forwarded-Client-Cert` (`Cert="…"`/`Chain="…"`, URL-encoded PEM) or nginx's
//! `$ssl_client_escaped_cert` (URL-encoded PEM). The header is believed only from the
//! configured proxy addresses; from anyone else it is removed. From a trusted proxy, the
//! client's address is also taken from `X-Forwarded-For` (the last address the proxy
//! appended), so logs, audit entries and per-address budgets see the client, not the proxy.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderName;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::Peer;
use crate::net::Cidr;

/// Who may forward client certificates, in which header, and where TLS is served.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub trusted_proxies: Vec<Cidr>,
    pub header: HeaderName,
    /// The base URL of the native TLS listener, when there is one (for "go there" answers).
    pub tls_base_url: Option<String>,
}

/// How a request reached Kizuna.
#[derive(Debug, Clone)]
pub struct Channel {
    /// TLS all the way to Kizuna or to a trusted proxy.
    pub secure: bool,
    pub via_proxy: bool,
    /// The client's certificate chain (leaf first, DER), when it presented one.
    pub client_chain: Option<Arc<Vec<Vec<u8>>>>,
    /// Where the native TLS listener is, for endpoints that refuse other channels.
    pub tls_base_url: Option<Arc<str>>,
}

impl Channel {
    /// The client certificate (DER) the request came with, if any.
    pub fn leaf(&self) -> Option<&[u8]> {
        self.client_chain
            .as_ref()
            .and_then(|chain| chain.first())
            .map(Vec::as_slice)
    }
}

/// The client's address as a trusted proxy reported it (`X-Forwarded-For`).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub std::net::IpAddr);

/// Records the [`Channel`] of every request (and [`ClientAddress`] behind a trusted proxy);
/// runs before the request context is made, which takes the address from it.
pub async fn channel(
    State(config): State<Arc<ChannelConfig>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req.extensions().get::<Peer>().cloned();
    let from_proxy = peer.as_ref().is_some_and(|p| {
        config
            .trusted_proxies
            .iter()
            .any(|c| c.contains(&p.addr.ip()))
    });
    let forwarded = if from_proxy {
        req.headers()
            .get(&config.header)
            .and_then(|v| v.to_str().ok())
            .and_then(forwarded_chain)
    } else {
        None
    };
    req.headers_mut().remove(&config.header);
    if from_proxy
        && let Some(client) = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|a| a.trim().parse::<std::net::IpAddr>().ok())
    {
        req.extensions_mut().insert(ClientAddress(client));
    }
    let tls_chain = peer
        .as_ref()
        .and_then(|p| p.tls.as_ref())
        .and_then(|t| t.client_chain.as_ref())
        .map(|chain| Arc::new(chain.iter().map(|c| c.to_vec()).collect::<Vec<_>>()));
    let on_tls = peer.as_ref().is_some_and(|p| p.tls.is_some());
    let channel = Channel {
        secure: on_tls || from_proxy,
        via_proxy: from_proxy && !on_tls,
        client_chain: if on_tls {
            tls_chain
        } else {
            forwarded.map(Arc::new)
        },
        tls_base_url: config.tls_base_url.as_deref().map(Arc::from),
    };
    req.extensions_mut().insert(channel);
    next.run(req).await
}

/// The certificate chain in a forwarded-client-certificate header value.
pub fn forwarded_chain(value: &str) -> Option<Vec<Vec<u8>>> {
    // Envoy appends one element per hop, comma-separated; the last is the one our trusted
    // proxy added for its own client.
    let element = value.rsplit(',').next()?.trim();
    let encoded = if element.contains("Cert=") || element.contains("Chain=") {
        quoted_field(element, "Chain=").or_else(|| quoted_field(element, "Cert="))?
    } else {
        element
    };
    let pem = percent_decode(encoded)?;
    let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .ok()?;
    (!certs.is_empty()).then_some(certs)
}

/// The value of `key"…"` (or `key…` up to `;`) in an XFCC element.
fn quoted_field<'a>(element: &'a str, key: &str) -> Option<&'a str> {
    let start = element.find(key)? + key.len();
    let rest = &element[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next(),
        None => rest.split(';').next(),
    }
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Any base64 DER will do: the header parser does not interpret the certificate.
    const PEM_BODY: &str = "MAMCAQE=";

    fn escaped() -> String {
        format!("-----BEGIN%20CERTIFICATE-----%0A{PEM_BODY}%0A-----END%20CERTIFICATE-----%0A")
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    }

    #[test]
    fn nginx_escaped_pem_and_envoy_xfcc_are_read() {
        let nginx = forwarded_chain(&escaped()).unwrap();
        assert_eq!(nginx.len(), 1);
        let xfcc = format!(
            "By=spiffe://a;Hash=ab,By=spiffe://proxy;Hash=cd;Cert=\"{}\";Subject=\"CN=x\"",
            escaped()
        );
        assert_eq!(forwarded_chain(&xfcc).unwrap(), nginx);
    }

    #[test]
    fn garbage_headers_carry_no_chain() {
        assert!(forwarded_chain("").is_none());
        assert!(forwarded_chain("Hash=abc").is_none());
        assert!(forwarded_chain("%zz").is_none());
        assert!(forwarded_chain("-----BEGIN%20CERTIFICATE-----%0A!!!%0A").is_none());
    }
}
