//! Devices and services authenticate each other with mutual TLS using Kizuna certificates:
//! a rustls server (service profile) requiring a client certificate accepts a device
//! certificate from the same CA and refuses one from another CA.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use crate::common::Kizuna;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A key and CSR made with openssl; returns the key path.
fn key_and_csr(dir: &Path, name: &str, san: &str) -> std::path::PathBuf {
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
        ])
        .args(["-addext", &format!("subjectAltName={san}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(dir.join(format!("{name}.csr")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    key
}

/// An install with an organization allowed 127.0.0.1; issues a service and a device
/// certificate. Returns (root PEM, service chain PEM, service key, device chain PEM, device key).
fn credentials(
    k: &Kizuna,
) -> (
    String,
    String,
    std::path::PathBuf,
    String,
    std::path::PathBuf,
) {
    let dir = k.dir.path();
    k.ok(&["ca", "init"]);
    let org: serde_json::Value = k.json(&["org", "create", "--name", "Transit", "--json"]);
    let org_id = org["id"].as_str().unwrap();
    k.ok(&["org", "allow", org_id, "--ip", "127.0.0.1/32"]);
    let service_key = key_and_csr(dir, "service", "IP:127.0.0.1");
    let service = k.ok(&[
        "cert",
        "issue",
        "--csr",
        dir.join("service.csr").to_str().unwrap(),
        "--profile",
        "service",
        "--org",
        org_id,
        "--chain",
    ]);
    let device_key = key_and_csr(
        dir,
        "bus-042",
        &format!("URI:urn:kizuna:device:{org_id}:bus-042"),
    );
    let device = k.ok(&[
        "cert",
        "issue",
        "--csr",
        dir.join("bus-042.csr").to_str().unwrap(),
        "--profile",
        "device",
        "--org",
        org_id,
        "--chain",
    ]);
    // The chain ends with the root, which is the trust anchor.
    let chain: Vec<&str> = service
        .split_inclusive("-----END CERTIFICATE-----\n")
        .collect();
    let root = chain.last().unwrap().to_string();
    (root, service, service_key, device, device_key)
}

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn roots(pem: &str) -> Arc<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in certs(pem) {
        store.add(cert).unwrap();
    }
    Arc::new(store)
}

/// Serves one TLS connection requiring a client certificate from `client_roots`; returns
/// whether the handshake succeeded, as the server saw it.
async fn handshake(
    server_chain: &str,
    server_key: &Path,
    client_roots: &str,
    client_chain: &str,
    client_key: &Path,
    server_roots: &str,
) -> (bool, bool) {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(client_roots), provider())
        .build()
        .unwrap();
    let server_config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs(server_chain),
            PrivateKeyDer::from_pem_file(server_key).unwrap(),
        )
        .unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(server_roots))
        .with_client_auth_cert(
            certs(client_chain),
            PrivateKeyDer::from_pem_file(client_key).unwrap(),
        )
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server_config));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        match acceptor.accept(tcp).await {
            Ok(mut tls) => {
                let mut buf = [0u8; 4];
                let ok = tls.read_exact(&mut buf).await.is_ok() && &buf == b"ping";
                let _ = tls.write_all(b"pong").await;
                let _ = tls.shutdown().await;
                ok
            }
            Err(_) => false,
        }
    });
    let connector = TlsConnector::from(Arc::new(client_config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let client_ok = match connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
    {
        Ok(mut tls) => {
            let mut buf = [0u8; 4];
            tls.write_all(b"ping").await.is_ok()
                && tls.read_exact(&mut buf).await.is_ok()
                && &buf == b"pong"
        }
        Err(_) => false,
    };
    (server.await.unwrap(), client_ok)
}

#[tokio::test]
async fn a_device_and_a_service_authenticate_each_other_and_a_foreign_device_is_refused() {
    let k = Kizuna::sqlite();
    let (root, service, service_key, device, device_key) = credentials(&k);
    assert_eq!(
        handshake(&service, &service_key, &root, &device, &device_key, &root).await,
        (true, true),
        "same CA: mutual TLS succeeds"
    );

    let other = Kizuna::sqlite();
    let (_, _, _, foreign_device, foreign_key) = credentials(&other);
    let (server_ok, client_ok) = handshake(
        &service,
        &service_key,
        &root,
        &foreign_device,
        &foreign_key,
        &root,
    )
    .await;
    assert!(
        !server_ok && !client_ok,
        "a device certificate from another CA is refused"
    );

    // And a client that trusts only the other CA refuses our service.
    let other_root = certs(&foreign_device).pop().map(|c| {
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64_of(&c)
        )
    });
    let (_, client_ok) = handshake(
        &service,
        &service_key,
        &root,
        &device,
        &device_key,
        &other_root.unwrap(),
    )
    .await;
    assert!(
        !client_ok,
        "the service certificate does not verify under a foreign root"
    );
}

fn base64_of(der: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(der)
}
