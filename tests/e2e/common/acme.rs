//! A small ACME client for the protocol's error paths (certbot covers the happy path): an
//! ES256 account key (ring), flattened JWS requests, external account binding.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use super::enroll::Installation;

pub const NAME: &str = "api.streetlights.city.example";

/// An install whose ACME validation reaches `http_port` and `tls_port` on 127.0.0.1 for the
/// test's names, with Streetlights allowed `streetlights.city.example`.
pub async fn install(k: super::Kizuna, http_port: u16, tls_port: u16) -> Installation {
    std::fs::write(
        k.dir.path().join("kizuna.toml"),
        format!(
            "[ca.acme]\nhttp01_port = {http_port}\ntls_alpn01_port = {tls_port}\nvalidation_timeout_secs = 3\n\n\
             [ca.acme.resolve]\n\"{NAME}\" = \"127.0.0.1\"\n\"other.streetlights.city.example\" = \"127.0.0.1\"\n"
        ),
    )
    .unwrap();
    let i = Installation::start(k).await;
    i.k.ok(&[
        "org",
        "allow",
        "Streetlights",
        "--dns",
        "streetlights.city.example",
    ]);
    i
}

pub fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub struct Key {
    pair: EcdsaKeyPair,
}

impl Key {
    pub fn generate() -> Key {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Key {
            pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        }
    }

    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"crv": "P-256", "kty": "EC", "x": b64(&point[1..33]), "y": b64(&point[33..])})
    }

    pub fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    /// A flattened JWS over `payload` (None: POST-as-GET) with this protected header.
    pub fn sign(&self, protected: &Value, payload: Option<&Value>) -> Value {
        let protected = b64(protected.to_string().as_bytes());
        let payload = payload
            .map(|p| b64(p.to_string().as_bytes()))
            .unwrap_or_default();
        let signature = self
            .pair
            .sign(
                &SystemRandom::new(),
                format!("{protected}.{payload}").as_bytes(),
            )
            .unwrap();
        json!({"protected": protected, "payload": payload, "signature": b64(signature.as_ref())})
    }
}

pub struct Client {
    pub http: reqwest::Client,
    pub directory: Value,
    pub key: Key,
    pub kid: Option<String>,
    /// The last Replay-Nonce the server sent, used for the next request (as clients do).
    nonce: std::sync::Mutex<Option<String>>,
}

/// What the server answered.
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub content_type: String,
    pub body: Value,
}

impl Answer {
    /// The problem type without its `urn:ietf:params:acme:error:` prefix.
    pub fn problem(&self) -> &str {
        self.body["type"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("urn:ietf:params:acme:error:")
    }
}

impl Client {
    pub async fn new(i: &Installation) -> Client {
        let root = reqwest::Certificate::from_pem(&std::fs::read(&i.root).unwrap()).unwrap();
        // HTTP/1.1: an idle HTTP/2 connection would hold the server's graceful shutdown until
        // this test's runtime answered its GOAWAY ping, which it cannot while the kit waits.
        let http = reqwest::Client::builder()
            .add_root_certificate(root)
            .http1_only()
            .build()
            .unwrap();
        let directory = http
            .get(format!("{}/acme/directory", i.server.public))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Client {
            http,
            directory,
            key: Key::generate(),
            kid: None,
            nonce: std::sync::Mutex::new(None),
        }
    }

    pub fn url(&self, name: &str) -> String {
        self.directory[name].as_str().unwrap().to_string()
    }

    /// A nonce: the one the last answer carried, else a new one from newNonce.
    pub async fn nonce(&self) -> String {
        if let Some(nonce) = self.nonce.lock().unwrap().take() {
            return nonce;
        }
        let response = self.http.head(self.url("newNonce")).send().await.unwrap();
        response.headers()["replay-nonce"]
            .to_str()
            .unwrap()
            .to_string()
    }

    /// The protected header for `url`: `kid` once registered, else `jwk`.
    pub async fn protected(&self, url: &str) -> Value {
        let mut protected = json!({"alg": "ES256", "nonce": self.nonce().await, "url": url});
        match &self.kid {
            Some(kid) => protected["kid"] = json!(kid),
            None => protected["jwk"] = self.key.jwk(),
        }
        protected
    }

    pub async fn send(&self, url: &str, body: &Value) -> Answer {
        let response = self
            .http
            .post(url)
            .header("content-type", "application/jose+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        if let Some(nonce) = response.headers().get("replay-nonce") {
            *self.nonce.lock().unwrap() = Some(nonce.to_str().unwrap().to_string());
        }
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        let content_type = response
            .headers()
            .get("content-type")
            .map(|c| c.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        Answer {
            status,
            location,
            content_type,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    /// A signed POST (payload None: POST-as-GET).
    pub async fn post(&self, url: &str, payload: Option<&Value>) -> Answer {
        let protected = self.protected(url).await;
        self.send(url, &self.key.sign(&protected, payload)).await
    }

    /// Registers, binding to an organization with `(kid, hmac_key)` when given.
    pub async fn register(&mut self, eab: Option<(&str, &str)>) -> Answer {
        let url = self.url("newAccount");
        let mut payload = json!({"termsOfServiceAgreed": true, "contact": ["mailto:ops@streetlights.city.example"]});
        if let Some((kid, key)) = eab {
            payload["externalAccountBinding"] = binding(&self.key.jwk(), kid, key, &url);
        }
        let answer = self.post(&url, Some(&payload)).await;
        if answer.status == 201 || answer.status == 200 {
            self.kid = answer.location.clone();
        }
        answer
    }

    pub async fn order(&self, names: &[&str]) -> Answer {
        let identifiers: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": "dns", "value": n}))
            .collect();
        self.post(
            &self.url("newOrder"),
            Some(&json!({"identifiers": identifiers})),
        )
        .await
    }

    /// The challenge of `kind` in an order's first authorization: (url, token).
    pub async fn challenge(&self, order: &Value, kind: &str) -> (String, String) {
        let authz = self
            .post(order["authorizations"][0].as_str().unwrap(), None)
            .await;
        let c = authz.body["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == kind)
            .unwrap()
            .clone();
        (
            c["url"].as_str().unwrap().to_string(),
            c["token"].as_str().unwrap().to_string(),
        )
    }

    /// Polls a resource until its status leaves pending/processing.
    pub async fn settle(&self, url: &str) -> Value {
        for _ in 0..100 {
            let answer = self.post(url, None).await;
            if !matches!(
                answer.body["status"].as_str(),
                Some("pending" | "processing")
            ) {
                return answer.body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("{url} stayed pending");
    }
}

/// An external account binding JWS (HS256 over the account key).
pub fn binding(jwk: &Value, kid: &str, hmac_key: &str, url: &str) -> Value {
    let protected = b64(json!({"alg": "HS256", "kid": kid, "url": url})
        .to_string()
        .as_bytes());
    let payload = b64(jwk.to_string().as_bytes());
    let key = URL_SAFE_NO_PAD.decode(hmac_key).unwrap();
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
        format!("{protected}.{payload}").as_bytes(),
    );
    json!({"protected": protected, "payload": payload, "signature": b64(tag.as_ref())})
}
