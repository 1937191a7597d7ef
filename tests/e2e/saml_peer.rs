//! The SAML identity provider peer that the SAML federation tests drive (tests/saml/idp.py):
//! it starts, publishes its metadata, answers an SP through the test kit, and passes its
//! self-test against pysaml2's own service provider.

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::common::hidden_field;
use crate::common::saml_idp::{SamlIdp, python};

#[tokio::test]
async fn the_saml_peer_publishes_an_idp_entity_descriptor_with_a_signing_certificate() {
    let idp = SamlIdp::start();
    let metadata = reqwest::get(&idp.metadata_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metadata.contains(&format!("entityID=\"{}\"", idp.metadata_url)),
        "{metadata}"
    );
    assert!(metadata.contains("IDPSSODescriptor"), "{metadata}");
    assert!(
        metadata.contains("KeyDescriptor use=\"signing\"")
            && metadata.contains("X509Certificate>MII"),
        "{metadata}"
    );
    let sso = format!("Location=\"{}/sso\"", idp.base_url);
    assert!(metadata.contains(&sso), "{metadata}");
    // The peer's log is read by a thread: give it a moment to catch up under load.
    for _ in 0..100 {
        if idp.log().contains("GET /metadata") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the request is not in the peer's log:\n{}", idp.log());
}

/// Through the kit: an SP known by its metadata alone (no keys: it neither signs nor
/// decrypts), an unsigned AuthnRequest answered with a form to its ACS, an IdP-initiated
/// logout addressed to its SLO.
#[tokio::test]
async fn the_saml_peer_answers_an_sp_it_knows_by_metadata() {
    let sp = SpMetadata::serve().await;
    let idp = SamlIdp::start();
    let settings = idp
        .control(json!({"sp_metadata_url": format!("{}/metadata", sp.base), "name_id": "bob"}))
        .await;
    assert_eq!(settings["sp_entity_id"], format!("{}/sp", sp.base));
    assert_eq!(settings["entity_id"], idp.metadata_url.as_str());

    let request = format!(
        "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_req-1\" Version=\"2.0\" \
         IssueInstant=\"{}\" Destination=\"{}/sso\"><saml:Issuer>{}/sp</saml:Issuer>\
         </samlp:AuthnRequest>",
        kizuna_core::time::unix_to_rfc3339(kizuna_core::time::now_unix()),
        idp.base_url,
        sp.base
    );
    let mut sso = url::Url::parse(&format!("{}/sso", idp.base_url)).unwrap();
    sso.query_pairs_mut()
        .append_pair(
            "SAMLRequest",
            &STANDARD.encode(deflate_stored(request.as_bytes())),
        )
        .append_pair("RelayState", "state-1");
    let html = reqwest::get(sso).await.unwrap().text().await.unwrap();
    assert!(
        html.contains(&format!(
            "<form action=\"{}/acs\" method=\"post\">",
            sp.base
        )),
        "{html}"
    );
    assert_eq!(
        hidden_field(&html, "RelayState").as_deref(),
        Some("state-1")
    );
    let posted = STANDARD
        .decode(hidden_field(&html, "SAMLResponse").unwrap())
        .unwrap();
    let last = idp.last_response().await;
    assert_eq!(String::from_utf8(posted).unwrap(), last);
    assert!(
        last.contains("InResponseTo=\"_req-1\"") && last.contains(">bob</"),
        "{last}"
    );
    assert_eq!(idp.authn_requests().await[0]["signature_verified"], false);

    let logout = idp.initiate_logout("bob", "session-1").await;
    assert!(
        logout.starts_with(&format!("{}/slo?SAMLRequest=", sp.base)),
        "{logout}"
    );
    assert!(
        logout.contains("&SigAlg=") && logout.contains("&Signature="),
        "{logout}"
    );
    assert_eq!(idp.logouts().await, json!([]));
}

/// A raw DEFLATE stream of one stored block: the Redirect binding's encoding, uncompressed.
fn deflate_stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).expect("under 64 KiB");
    let mut out = vec![1];
    out.extend(len.to_le_bytes());
    out.extend((!len).to_le_bytes());
    out.extend(data);
    out
}

/// An SP's metadata on a loopback port: an HTTP-POST ACS and an HTTP-Redirect SLO.
struct SpMetadata {
    base: String,
    task: tokio::task::JoinHandle<()>,
}

impl SpMetadata {
    async fn serve() -> SpMetadata {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let metadata = format!(
            "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" \
             entityID=\"{base}/sp\"><md:SPSSODescriptor \
             protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\
             <md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" \
             Location=\"{base}/slo\"/><md:AssertionConsumerService \
             Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"{base}/acs\" \
             index=\"0\"/></md:SPSSODescriptor></md:EntityDescriptor>"
        );
        let app = axum::Router::new().route(
            "/metadata",
            axum::routing::get(move || async move { metadata }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SpMetadata { base, task }
    }
}

impl Drop for SpMetadata {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[test]
fn the_saml_peer_passes_its_self_test_against_pysaml2s_own_sp() {
    let out = Command::new(python())
        .arg("tests/saml/selftest.py")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run tests/saml/selftest.py");
    assert!(
        out.status.success(),
        "{}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
