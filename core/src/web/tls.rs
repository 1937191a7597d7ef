//! The TLS listener (rustls with the ring provider). Handshakes run in their own tasks so a
//! slow client never holds up the accept loop; the server asks for (never insists on) a
//! client certificate, and each connection's verified chain, when one was sent, is handed to
//! handlers through [`TlsConnectInfo`].

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{
    DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureAlgorithm, SignatureScheme,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::custody::{KeyAlgorithm, KeyHandle};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read TLS certificate file {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("cannot read TLS private key file {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The server's certificate and key, replaceable while serving (a renewed certificate
/// takes effect on the next handshake).
#[derive(Debug)]
pub struct CertSlot(RwLock<Arc<CertifiedKey>>);

impl CertSlot {
    pub fn new(key: CertifiedKey) -> Arc<CertSlot> {
        Arc::new(CertSlot(RwLock::new(Arc::new(key))))
    }

    /// Loads a PEM certificate chain and private key from files.
    pub fn from_files(cert_file: &Path, key_file: &Path) -> Result<Arc<CertSlot>, TlsSetupError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| TlsSetupError::Certificate {
                path: cert_file.display().to_string(),
                reason: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(TlsSetupError::Certificate {
                path: cert_file.display().to_string(),
                reason: "no certificate in the file".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsSetupError::Key {
            path: key_file.display().to_string(),
            reason: e.to_string(),
        })?;
        let key = provider().key_provider.load_private_key(key)?;
        Ok(CertSlot::new(CertifiedKey::new(certs, key)))
    }

    /// A chain (leaf first, DER) whose key lives in key custody: handshakes are signed there.
    pub fn custody(chain: Vec<Vec<u8>>, key: KeyHandle) -> CertifiedKey {
        CertifiedKey::new(
            chain.into_iter().map(CertificateDer::from).collect(),
            Arc::new(CustodyTlsKey(key)),
        )
    }

    pub fn replace(&self, key: CertifiedKey) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Arc::new(key);
        }
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|k| k.clone())
    }
}

/// A custody key as a rustls signing key.
#[derive(Debug)]
struct CustodyTlsKey(KeyHandle);

#[derive(Debug)]
struct CustodyTlsSigner(KeyHandle, SignatureScheme);

impl SigningKey for CustodyTlsKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let scheme = match self.0.algorithm() {
            KeyAlgorithm::P256 => SignatureScheme::ECDSA_NISTP256_SHA256,
            KeyAlgorithm::P384 => SignatureScheme::ECDSA_NISTP384_SHA384,
            KeyAlgorithm::Ed25519 => SignatureScheme::ED25519,
            _ => SignatureScheme::RSA_PKCS1_SHA256,
        };
        offered
            .contains(&scheme)
            .then(|| Box::new(CustodyTlsSigner(self.0.clone(), scheme)) as Box<dyn Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.0.algorithm() {
            KeyAlgorithm::P256 | KeyAlgorithm::P384 => SignatureAlgorithm::ECDSA,
            KeyAlgorithm::Ed25519 => SignatureAlgorithm::ED25519,
            _ => SignatureAlgorithm::RSA,
        }
    }
}

impl Signer for CustodyTlsSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.0
            .sign_der(message)
            .map_err(|e| rustls::Error::General(format!("key custody: {e}")))
    }

    fn scheme(&self) -> SignatureScheme {
        self.1
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Requests — never requires — a client certificate. The handshake proves the client holds
/// the certificate's key; what the certificate is worth is each endpoint's decision, never
/// the handshake's: EST accepts only a certificate this Kizuna issued (its exact stored
/// bytes) or one chaining to a manufacturer's anchor, the token endpoint only one its
/// registration names (RFC 8705: a Kizuna certificate, or a self-signed one whose key the
/// client registered). So a certificate from an unknown issuer is let through the
/// handshake, as is an expired one (a renewal grace window is EST's decision).
#[derive(Debug)]
pub struct ClientAuth {
    provider: Arc<CryptoProvider>,
}

impl ClientAuth {
    pub fn new() -> Arc<ClientAuth> {
        Arc::new(ClientAuth {
            provider: provider(),
        })
    }
}

impl ClientCertVerifier for ClientAuth {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: devices send the certificate they hold whatever the server names.
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The endpoint decides what the certificate is worth (see the type's notes); the
        // handshake's signature checks still prove the client holds its key.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A server configuration offering HTTP/2 and HTTP/1.1, serving the slot's certificate and
/// requesting client certificates through `client_auth`.
pub fn server_config(
    cert: Arc<CertSlot>,
    client_auth: Arc<ClientAuth>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(client_auth)
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TCP connections and yields them once their TLS handshake has completed.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let (sender, ready) = mpsc::channel(256);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, remote) = match tcp.accept().await {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(error = %e, "TLS accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if sender.is_closed() {
                    break;
                }
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, remote)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local_addr })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task only ends when the channel closes, which this receiver prevents.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// The peer of a TLS connection.
#[derive(Debug, Clone)]
pub struct TlsConnectInfo {
    pub remote_addr: SocketAddr,
    /// The client's certificate chain (leaf first), when it presented one.
    pub client_chain: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl Connected<IncomingStream<'_, TlsListener>> for TlsConnectInfo {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        let (_, session) = stream.io().get_ref();
        TlsConnectInfo {
            remote_addr: *stream.remote_addr(),
            client_chain: session
                .peer_certificates()
                .map(|certs| Arc::new(certs.iter().map(|c| c.clone().into_owned()).collect())),
        }
    }
}
