//! The registry API (`/ca/api/v1/devices`, `/ca/api/v1/enrollment-tokens`,
//! `/ca/api/v1/acme/eab`): administrators reach every organization, an organization's
//! client with `kizuna:devices` only its own; every change is audited with the caller.

use crate::common::{Kizuna, service_token};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_and_tokens_are_managed_through_the_api_within_an_organization() {
    for k in Kizuna::each_backend().await {
        let server = k.serve();
        let k = k.env("KIZUNA_PUBLIC_URL", &server.public);
        k.ok(&["org", "create", "--name", "Streetlights"]);
        k.ok(&["org", "create", "--name", "Water"]);
        let admin = service_token(&k, &server.public, "kizuna:admin", None).await;
        let lamps = service_token(&k, &server.public, "kizuna:devices", Some("Streetlights")).await;
        let http = reqwest::Client::new();
        let api = |path: &str| format!("{}/ca/api/v1{path}", server.public);

        let created = http
            .post(api("/devices"))
            .bearer_auth(&admin)
            .json(&json!({"id": "pump-1", "org_id": "Water", "model": "P-3", "hardware_serial": "PS-1", "location": "Station 4", "latitude": 35.0, "longitude": 139.0}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let own = http
            .post(api("/devices"))
            .bearer_auth(&lamps)
            .json(&json!({"id": "lamp-1", "model": "LED-9", "installer": "Kizuna Denki"}))
            .send()
            .await
            .unwrap();
        assert_eq!(own.status(), 201, "{:?}", own.text().await);
        let foreign = http
            .post(api("/devices"))
            .bearer_auth(&lamps)
            .json(&json!({"org_id": "Water", "model": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(foreign.status(), 403);

        let listed: Value = http
            .get(api("/devices"))
            .bearer_auth(&lamps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            listed.as_array().unwrap().len(),
            1,
            "only its own organization's"
        );
        let hidden = http
            .get(api("/devices/pump-1"))
            .bearer_auth(&lamps)
            .send()
            .await
            .unwrap();
        assert_eq!(hidden.status(), 404);
        let all: Value = http
            .get(api("/devices"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(all.as_array().unwrap().len(), 2);

        let tokens = http
            .post(api("/enrollment-tokens"))
            .bearer_auth(&lamps)
            .json(&json!({"profile": "device", "count": 2, "ttl_secs": 3600, "model": "LED-9"}))
            .send()
            .await
            .unwrap();
        assert_eq!(tokens.status(), 201);
        let tokens: Value = tokens.json().await.unwrap();
        assert_eq!(tokens["tokens"].as_array().unwrap().len(), 2);
        assert!(
            tokens["tokens"][0]["token"]
                .as_str()
                .unwrap()
                .starts_with("kzet_")
        );
        let stored = http
            .get(api("/enrollment-tokens"))
            .bearer_auth(&lamps)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!stored.contains("kzet_"), "secrets are never listed");
        let bad = http
            .post(api("/enrollment-tokens"))
            .bearer_auth(&lamps)
            .json(&json!({"profile": "ocsp-signer"}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 403);

        let suspended: Value = http
            .post(api("/devices/lamp-1/suspend"))
            .bearer_auth(&lamps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(suspended["device"]["status"], "suspended");
        let resumed: Value = http
            .post(api("/devices/lamp-1/resume"))
            .bearer_auth(&lamps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            resumed["device"]["status"], "pending",
            "never enrolled: back to pending"
        );
        let retired = http
            .post(api("/devices/lamp-1/retire"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(retired.status(), 200);
        let again = http
            .post(api("/devices/lamp-1/retire"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 409);

        let eab = http
            .post(api("/acme/eab"))
            .bearer_auth(&lamps)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(eab.status(), 201);
        let none = http.get(api("/devices")).send().await.unwrap();
        assert_eq!(none.status(), 401);
        let audit = k.ok(&["audit", "export"]);
        for action in [
            "device.create",
            "device.suspend",
            "device.resume",
            "device.retire",
            "enroll.tokens.create",
            "acme.eab.create",
        ] {
            assert!(audit.contains(&format!("\"{action}\"")), "{action}");
        }
    }
}
