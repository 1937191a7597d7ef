//! A JPKI-like test CA made with Kizuna's own CA module (rcgen through `CustodySigner`, keys
//! in key custody, the CA's certificate-policies builder): a self-signed signature CA named
//! as J-LIS names its own, and RSA-2048 "card" certificates carrying the four basic
//! attributes as subjectAltName otherNames under 1.2.392.200149.8.5.5, with a CRL
//! distribution point. A small HTTP server publishes the CRL.

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use kizuna_core::custody::CustodySigner;
use kizuna_core::custody::{KeyAlgorithm, KeyHandle};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    DnType, DnValue, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, OtherNameValue, RevokedCertParams,
    SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// The JPKI personal-data arc.
const JPKI_ARC: [u64; 8] = [1, 2, 392, 200149, 8, 5, 5, 0];

fn jpki_oid(last: u64) -> Vec<u64> {
    let mut oid = JPKI_ARC.to_vec();
    oid[7] = last;
    oid
}

/// What a card certificate says about its holder.
#[derive(Clone)]
pub struct Holder {
    /// Family and given name, separated by a full-width space as on the card.
    pub name: String,
    /// An era digit and YYYYMMDD.
    pub birthdate: String,
    /// 1 male, 2 female, 3 other.
    pub gender: String,
    pub address: String,
}

impl Holder {
    pub fn taro() -> Holder {
        Holder {
            name: "山田\u{3000}太郎".into(),
            birthdate: "419800131".into(),
            gender: "1".into(),
            address: "東京都千代田区霞が関一丁目二番三号".into(),
        }
    }
}

/// A card: its key (the card's signing key, in custody here) and certificate.
pub struct Card {
    key: KeyHandle,
    pub der: Vec<u8>,
    pub serial: SerialNumber,
}

impl Card {
    /// The certificate as the card-reader app sends it (base64 DER).
    pub fn certificate(&self) -> String {
        STANDARD.encode(&self.der)
    }

    /// Signs a challenge as the app does: RSASSA-PKCS1-v1_5 with SHA-256 over its bytes.
    pub fn sign(&self, challenge: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.key.sign(challenge.as_bytes()).unwrap())
    }
}

/// The test signature CA.
pub struct JpkiCa {
    core: kizuna_core::Core,
    _db: kizuna_core::testing::TestDb,
    params: CertificateParams,
    key: KeyHandle,
    pub root_pem: String,
    pub crl_url: String,
}

impl JpkiCa {
    /// A CA whose certificates name `crl_url` as their distribution point.
    pub async fn new(label: &str, crl_url: &str) -> JpkiCa {
        let db = kizuna_core::testing::connect_migrated(kizuna_core::testing::fresh_sqlite()).await;
        let core = kizuna_core::testing::core(&db.db).await;
        let key = core
            .custody
            .generate("jpki-test-ca", KeyAlgorithm::Rsa2048)
            .await
            .unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CountryName,
            DnValue::PrintableString("JP".try_into().unwrap()),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, "JPKI");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "JPKI for digital signature");
        params.distinguished_name.push(
            DnType::OrganizationalUnitName,
            format!("{label} Agency for Local Authority Information Systems"),
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
        params.key_identifier_method = KeyIdMethod::Sha256;
        let root = params.self_signed(&CustodySigner(key.clone())).unwrap();
        JpkiCa {
            root_pem: root.pem(),
            core,
            _db: db,
            params,
            key,
            crl_url: crl_url.to_string(),
        }
    }

    fn issuer(&self) -> Issuer<'_, CustodySigner> {
        Issuer::from_params(&self.params, CustodySigner(self.key.clone()))
    }

    /// A signature certificate for `holder` (or one without the basic attributes), valid
    /// from `not_before` to `not_after` days from now.
    pub async fn card(&self, holder: Option<&Holder>, not_before: i64, not_after: i64) -> Card {
        let key = self
            .core
            .custody
            .generate("jpki-test-card", KeyAlgorithm::Rsa2048)
            .await
            .unwrap();
        let serial = SerialNumber::from(kizuna_core::secret::random_bytes::<16>().to_vec());
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CountryName,
            DnValue::PrintableString("JP".try_into().unwrap()),
        );
        params
            .distinguished_name
            .push(DnType::LocalityName, "Tokyo");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{serial}"));
        params.serial_number = Some(serial.clone());
        if let Some(h) = holder {
            for (n, value) in [
                (1, h.name.as_str()),
                (4, h.birthdate.as_str()),
                (3, h.gender.as_str()),
                (5, h.address.as_str()),
                (2, "00000"),
                (6, "0000000000000000000000"),
            ] {
                params.subject_alt_names.push(SanType::OtherName((
                    jpki_oid(n),
                    OtherNameValue::Utf8String(value.into()),
                )));
            }
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ];
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![self.crl_url.clone()],
        }];
        params
            .custom_extensions
            .extend(kizuna_ca::ext::certificate_policies(&[
                "1.2.392.200149.8.5.1.1.10".to_string(),
            ]));
        params.not_before = OffsetDateTime::now_utc() + Duration::days(not_before);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(not_after);
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&CustodySigner(key.clone()), &self.issuer())
            .unwrap();
        Card {
            key,
            der: cert.der().to_vec(),
            serial,
        }
    }

    /// A CRL listing `revoked`, valid for an hour.
    pub fn crl(&self, revoked: &[&Card]) -> Vec<u8> {
        let now = OffsetDateTime::now_utc();
        CertificateRevocationListParams {
            this_update: now - Duration::minutes(1),
            next_update: now + Duration::hours(1),
            crl_number: SerialNumber::from(now.unix_timestamp() as u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|c| RevokedCertParams {
                    serial_number: c.serial.clone(),
                    revocation_time: now - Duration::minutes(2),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer())
        .unwrap()
        .der()
        .to_vec()
    }
}

/// A file server for one CRL at `/jpki.crl`; replace what it serves with [`CrlServer::set`].
pub struct CrlServer {
    pub url: String,
    body: Arc<Mutex<Vec<u8>>>,
    fetches: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CrlServer {
    pub async fn start() -> CrlServer {
        let body = Arc::new(Mutex::new(Vec::new()));
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let served = body.clone();
        let counted = fetches.clone();
        let app = axum::Router::new().route(
            "/jpki.crl",
            axum::routing::get(move || {
                let served = served.clone();
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    let bytes = served.lock().unwrap().clone();
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/pkix-crl")],
                        bytes,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jpki.crl", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        CrlServer {
            url,
            body,
            fetches,
            task,
        }
    }

    pub fn set(&self, crl: Vec<u8>) {
        *self.body.lock().unwrap() = crl;
    }

    /// How many times the CRL was fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for CrlServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
