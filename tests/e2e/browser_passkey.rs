//! Headless Chromium (Debian's `chromium`, not written here) with its virtual authenticator,
//! driven by playwright-core from `tests/node/passkey.mjs`: registers a passkey, signs out,
//! signs in passwordless for a client that requires AAL2, and checks `amr`/`acr` in the ID
//! token that panva's openid-client gets. WebAuthn needs a secure context with a domain, so
//! the public URL is `http://localhost:<port>`.

use crate::common::{BIN, Kizuna, chromium, node_peers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_registers_a_passkey_and_signs_in_passwordless_at_aal2() {
    let (Some(node_dir), Some(chromium)) = (node_peers(), chromium()) else {
        return;
    };
    for k in Kizuna::each_backend().await {
        let port = crate::common::free_port();
        let k = k.env("KIZUNA_PUBLIC_URL", &format!("http://localhost:{port}"));
        let server = k
            .try_serve(&["--listen", &format!("127.0.0.1:{port}")])
            .unwrap_or_else(|failed| panic!("{failed}"));
        let user = k.resident("natsuko", "a perfectly long passphrase");
        let mut node = std::process::Command::new("node");
        node.arg(node_dir.join("passkey.mjs"))
            .current_dir(k.dir.path());
        for (key, value) in k.env_vars() {
            node.env(key, value);
        }
        let result = node
            .env("ISSUER", &server.public)
            .env("RP_KIZUNA", BIN)
            .env("RP_USER", "natsuko")
            .env("RP_PASSWORD", "a perfectly long passphrase")
            .env("CHROMIUM", &chromium)
            .output()
            .expect("run node");
        let stdout = String::from_utf8_lossy(&result.stdout);
        assert!(
            result.status.success(),
            "the browser run failed:\n{stdout}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&result.stderr),
            server.stderr()
        );
        let report: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(report["sub"], user["id"]);
    }
}
