//! panva's `openid-client` (npm; not written here) as a relying party: discovery, PAR +
//! code flow + PKCE and client_credentials, both with private_key_jwt. The script is
//! `tests/node/rp.mjs`; `scripts/test` installs its packages.

use crate::common::{BIN, Kizuna, node_peers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_signs_in_with_par_pkce_and_private_key_jwt() {
    let Some(node_dir) = node_peers() else { return };
    for k in Kizuna::each_backend().await {
        let k = k.tls();
        let server = k.serve();
        let user = k.resident("hanako", "a perfectly long passphrase");
        let cert = k.dir.path().join("tls.crt");
        let mut node = std::process::Command::new("node");
        node.arg(node_dir.join("rp.mjs")).current_dir(k.dir.path());
        for (key, value) in k.env_vars() {
            node.env(key, value);
        }
        let result = node
            .env("ISSUER", &server.public)
            .env("RP_KIZUNA", BIN)
            .env("NODE_EXTRA_CA_CERTS", &cert)
            .env("RP_USER", "hanako")
            .env("RP_PASSWORD", "a perfectly long passphrase")
            .output()
            .expect("run node");
        let stdout = String::from_utf8_lossy(&result.stdout);
        assert!(
            result.status.success(),
            "openid-client run failed:\n{stdout}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&result.stderr),
            server.stderr()
        );
        let report: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(report["sub"], user["id"]);
    }
}
