//! Challenge validation, Kizuna acting as the client (RFC 8555 §8.3 `http-01`; RFC 8737
//! `tls-alpn-01`). Ports and a static name → address table come from `[ca.acme]`, so tests
//! and development can point validation at a local server without DNS.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use super::problem::{Kind, Problem};
use super::store::Identifier;
use crate::config::AcmeConfig;

/// id-pe-acmeIdentifier (RFC 8737 §6.1).
const ACME_IDENTIFIER: &str = "1.3.6.1.5.5.7.1.31";
const ALPN_ACME_TLS: &[u8] = b"acme-tls/1";

/// The key authorization (RFC 8555 §8.1): token "." thumbprint of the account key.
pub fn key_authorization(token: &str, thumbprint: &str) -> String {
    format!("{token}.{thumbprint}")
}

async fn address(config: &AcmeConfig, id: &Identifier, port: u16) -> Result<SocketAddr, Problem> {
    if id.kind == "ip" {
        let ip: IpAddr = id
            .value
            .parse()
            .map_err(|_| Problem::malformed("bad IP identifier"))?;
        return Ok(SocketAddr::new(ip, port));
    }
    if let Some(ip) = config.resolve.get(&id.value) {
        return Ok(SocketAddr::new(*ip, port));
    }
    tokio::net::lookup_host((id.value.as_str(), port))
        .await
        .ok()
        .and_then(|mut found| found.next())
        .ok_or_else(|| Problem::new(Kind::Dns, format!("{} does not resolve", id.value)))
}

/// Validates one challenge; `Ok(())` when the response is right.
pub async fn validate(
    config: &AcmeConfig,
    kind: &str,
    id: &Identifier,
    token: &str,
    thumbprint: &str,
) -> Result<(), Problem> {
    let expected = key_authorization(token, thumbprint);
    let timeout = Duration::from_secs(config.validation_timeout_secs);
    match kind {
        "http-01" => http_01(config, id, token, &expected, timeout).await,
        "tls-alpn-01" => {
            let addr = address(config, id, config.tls_alpn01_port).await?;
            tokio::time::timeout(timeout, tls_alpn_01(addr, id, &expected))
                .await
                .unwrap_or_else(|_| {
                    Err(Problem::new(Kind::Connection, format!("{addr}: timed out")))
                })
        }
        other => Err(Problem::malformed(format!(
            "unknown challenge type {other}"
        ))),
    }
}

async fn http_01(
    config: &AcmeConfig,
    id: &Identifier,
    token: &str,
    expected: &str,
    timeout: Duration,
) -> Result<(), Problem> {
    let port = config.http01_port;
    let addr = address(config, id, port).await?;
    let host = match addr.ip() {
        IpAddr::V6(ip) if id.kind == "ip" => format!("[{ip}]"),
        _ => id.value.clone(),
    };
    let url = if port == 80 {
        format!("http://{host}/.well-known/acme-challenge/{token}")
    } else {
        format!("http://{host}:{port}/.well-known/acme-challenge/{token}")
    };
    let mut client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::limited(10))
        .no_proxy();
    if id.kind == "dns" {
        client = client.resolve(&id.value, addr);
    }
    let client = client
        .build()
        .map_err(|e| Problem::new(Kind::Connection, e.to_string()))?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| Problem::new(Kind::Connection, format!("fetching {url}: {e}")))?;
    let status = response.status();
    if !status.is_success() {
        return Err(Problem::new(
            Kind::IncorrectResponse,
            format!("{url} answered HTTP {}", status.as_u16()),
        ));
    }
    let body = response
        .text()
        .await
        .map_err(|e| Problem::new(Kind::Connection, format!("reading {url}: {e}")))?;
    if body.len() > 8192 || body.trim_end() != expected {
        return Err(Problem::new(
            Kind::IncorrectResponse,
            format!("{url} did not answer the key authorization"),
        ));
    }
    Ok(())
}

/// Accepts whatever certificate the server shows: tls-alpn-01 checks the certificate's
/// contents, not its issuer. Handshake signatures are checked here against the
/// certificate's key, without the path-validation parser, which refuses the critical
/// acmeIdentifier extension every challenge certificate carries.
#[derive(Debug)]
struct AnyCertificate;

const SCHEMES: [SignatureScheme; 9] = [
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ED25519,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA512,
];

fn verify_handshake(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    use ring::signature as sig;
    let algorithm: &dyn sig::VerificationAlgorithm = match dss.scheme {
        SignatureScheme::ECDSA_NISTP256_SHA256 => &sig::ECDSA_P256_SHA256_ASN1,
        SignatureScheme::ECDSA_NISTP384_SHA384 => &sig::ECDSA_P384_SHA384_ASN1,
        SignatureScheme::ED25519 => &sig::ED25519,
        SignatureScheme::RSA_PSS_SHA256 => &sig::RSA_PSS_2048_8192_SHA256,
        SignatureScheme::RSA_PSS_SHA384 => &sig::RSA_PSS_2048_8192_SHA384,
        SignatureScheme::RSA_PSS_SHA512 => &sig::RSA_PSS_2048_8192_SHA512,
        SignatureScheme::RSA_PKCS1_SHA256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        SignatureScheme::RSA_PKCS1_SHA384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        SignatureScheme::RSA_PKCS1_SHA512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        _ => {
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
    };
    let cert = Certificate::from_der(cert.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    let key = cert
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes();
    sig::UnparsedPublicKey::new(algorithm, key)
        .verify(message, dss.signature())
        .map(|_| HandshakeSignatureValid::assertion())
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature))
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        SCHEMES.to_vec()
    }
}

async fn tls_alpn_01(addr: SocketAddr, id: &Identifier, expected: &str) -> Result<(), Problem> {
    let tls = |detail: String| Problem::new(Kind::Tls, format!("{addr}: {detail}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_ACME_TLS.to_vec()];
    let name = ServerName::try_from(id.value.clone())
        .map_err(|_| Problem::malformed("the identifier is not a server name"))?;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| Problem::new(Kind::Connection, format!("{addr}: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| tls(format!("handshake: {e}")))?;
    let (_, session) = stream.get_ref();
    if session.alpn_protocol() != Some(ALPN_ACME_TLS) {
        return Err(tls("the server did not negotiate acme-tls/1".into()));
    }
    let cert = session
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| tls("no certificate".into()))?;
    check_challenge_certificate(cert, &id.value, expected)
        .map_err(|detail| Problem::new(Kind::IncorrectResponse, format!("{addr}: {detail}")))
}

/// The challenge certificate names exactly the identifier and carries the critical
/// acmeIdentifier extension with SHA-256 of the key authorization.
pub fn check_challenge_certificate(der: &[u8], name: &str, expected: &str) -> Result<(), String> {
    let cert = Certificate::from_der(der).map_err(|e| format!("unreadable certificate: {e}"))?;
    let extensions: &[x509_cert::ext::Extension] = cert
        .tbs_certificate()
        .extensions()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let san = extensions
        .iter()
        .find(|e| e.extn_id.to_string() == "2.5.29.17")
        .and_then(|e| SubjectAltName::from_der(e.extn_value.as_bytes()).ok())
        .ok_or("the certificate has no subjectAltName")?;
    let names: Vec<String> = san
        .0
        .iter()
        .map(|n| match n {
            GeneralName::DnsName(d) => d.to_string().to_ascii_lowercase(),
            _ => String::new(),
        })
        .collect();
    if names != [name.to_string()] {
        return Err(format!(
            "the certificate must name exactly {name} (it names {names:?})"
        ));
    }
    let acme = extensions
        .iter()
        .find(|e| e.extn_id.to_string() == ACME_IDENTIFIER)
        .ok_or("the certificate has no acmeIdentifier extension")?;
    if !acme.critical {
        return Err("the acmeIdentifier extension is not critical".into());
    }
    let (digest, rest) = kizuna_core::der::read_tlv(acme.extn_value.as_bytes(), 0x04)
        .ok_or("the acmeIdentifier extension is not an OCTET STRING")?;
    if !rest.is_empty()
        || !kizuna_core::secret::constant_time_eq(
            digest,
            &kizuna_core::secret::sha256(expected.as_bytes()),
        )
    {
        return Err("the acmeIdentifier does not match the key authorization".into());
    }
    Ok(())
}
