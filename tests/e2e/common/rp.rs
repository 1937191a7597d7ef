//! A confidential relying party registered from the command line, for tests that drive the
//! authorization code flow by hand (the RP libraries' own tests use the libraries).

use serde_json::Value;

use super::{Kizuna, Server, query_param};

/// Where these relying parties are sent back: nothing listens there, the test reads the URL.
pub const CALLBACK: &str = "http://127.0.0.1:9/cb";

/// The `nonce` of every authorization request [`Rp::authorize_url`] makes.
pub const NONCE: &str = "n-1";

pub struct Rp {
    pub id: String,
    pub secret: String,
}

impl Rp {
    /// `kizuna client create --name NAME --redirect-uri CALLBACK --no-consent ARGS --json`.
    pub fn register(k: &Kizuna, name: &str, args: &[&str]) -> Rp {
        let mut all = vec![
            "client",
            "create",
            "--name",
            name,
            "--redirect-uri",
            CALLBACK,
            "--no-consent",
        ];
        all.extend_from_slice(args);
        all.push("--json");
        let created = k.json(&all);
        Rp {
            id: created["client_id"].as_str().unwrap().into(),
            secret: created["client_secret"].as_str().unwrap().into(),
        }
    }

    /// An authorization request for `scope` (state `st`, nonce [`NONCE`]) with `extra`
    /// parameters.
    pub fn authorize_url(&self, server: &Server, scope: &str, extra: &[(&str, &str)]) -> String {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", self.id.as_str()),
            ("redirect_uri", CALLBACK),
            ("scope", scope),
            ("state", "st"),
            ("nonce", NONCE),
        ];
        params.extend_from_slice(extra);
        url::Url::parse_with_params(&format!("{}/authorize", server.public), &params)
            .unwrap()
            .to_string()
    }

    /// Redeems the code the browser came back with; returns the token response.
    pub async fn redeem(&self, server: &Server, callback: &url::Url) -> Value {
        self.redeem_with(&reqwest::Client::new(), server, callback)
            .await
    }

    /// [`redeem`](Self::redeem) with the caller's HTTP client (its headers, say).
    pub async fn redeem_with(
        &self,
        http: &reqwest::Client,
        server: &Server,
        callback: &url::Url,
    ) -> Value {
        let code = query_param(callback, "code").unwrap_or_else(|| panic!("no code: {callback}"));
        http.post(format!("{}/token", server.public))
            .basic_auth(&self.id, Some(&self.secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Redeems the code; returns the ID token's claims.
    pub async fn id_token_claims(&self, server: &Server, callback: &url::Url) -> Value {
        let tokens = self.redeem(server, callback).await;
        kizuna_core::jose::Jws::parse(tokens["id_token"].as_str().expect("id_token"))
            .unwrap()
            .claims()
            .unwrap()
    }
}
