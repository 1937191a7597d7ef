//! A relying party built with the `openidconnect` crate (not written here) signs a resident in
//! through Kizuna: discovery, authorization code + PKCE, ID token verification, UserInfo,
//! refresh with rotation, introspection, revocation, and RP-initiated logout.

use crate::common;

use crate::common::{Browser, Kizuna, query_param};
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    IntrospectionUrl, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl,
    RefreshToken, RevocationUrl, Scope, TokenIntrospectionResponse, TokenResponse,
};

const PASSWORD: &str = "correct horse battery staple";
const CALLBACK: &str = "http://127.0.0.1:9/callback";
const AFTER_LOGOUT: &str = "http://127.0.0.1:9/bye";

fn http(k: &Kizuna) -> openidconnect::reqwest::Client {
    k.http()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

// Multi-threaded so the clients' HTTP/2 connections wind down while a server stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_city_service_signs_a_resident_in_with_code_and_pkce() {
    for k in Kizuna::each_backend().await {
        let k = k.tls();
        let server = k.serve();
        let created = k.json(&[
            "client",
            "create",
            "--name",
            "Library",
            "--redirect-uri",
            CALLBACK,
            "--post-logout-redirect-uri",
            AFTER_LOGOUT,
            "--json",
        ]);
        let user = k.resident("taro", PASSWORD);
        let http = http(&k);
        let issuer = IssuerUrl::new(server.public.clone()).unwrap();
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .unwrap();
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(created["client_id"].as_str().unwrap().into()),
            Some(ClientSecret::new(
                created["client_secret"].as_str().unwrap().into(),
            )),
        )
        .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap())
        .set_introspection_url(
            IntrospectionUrl::new(format!("{}/introspect", server.public)).unwrap(),
        )
        .set_revocation_url(RevocationUrl::new(format!("{}/revoke", server.public)).unwrap());

        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (auth_url, state, nonce) = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        let browser = Browser::for_server(&k, &server);
        let callback = browser.sign_in(auth_url.as_str(), "taro", PASSWORD).await;
        assert_eq!(
            query_param(&callback, "state").as_deref(),
            Some(state.secret().as_str())
        );
        assert_eq!(
            query_param(&callback, "iss").as_deref(),
            Some(server.public.as_str()),
            "RFC 9207 iss"
        );
        let code = query_param(&callback, "code").expect("code");

        let tokens = client
            .exchange_code(AuthorizationCode::new(code.clone()))
            .unwrap()
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .unwrap();
        let id_token = tokens.id_token().expect("ID token");
        let verifier = client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &nonce)
            .expect("ID token verifies");
        assert_eq!(claims.subject().as_str(), user["id"].as_str().unwrap());
        assert_eq!(
            claims.email().map(|e| e.as_str()),
            Some("taro@city.example.jp")
        );
        assert_eq!(
            claims.preferred_username().map(|u| u.as_str()),
            Some("taro")
        );
        assert!(claims.auth_time().is_some());
        let expected_hash = AccessTokenHash::from_token(
            tokens.access_token(),
            id_token.signing_alg().unwrap(),
            id_token.signing_key(&verifier).unwrap(),
        )
        .unwrap();
        assert_eq!(claims.access_token_hash(), Some(&expected_hash));

        // The same browser is signed in: a second service's request needs no password.
        let (auth_url, _, _) = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .add_extra_param("prompt", "none")
            .url();
        let sso = browser.sign_in(auth_url.as_str(), "nobody", "wrong").await;
        assert!(
            query_param(&sso, "code").is_some(),
            "SSO with prompt=none: {sso}"
        );

        let info: CoreUserInfoClaims = client
            .user_info(tokens.access_token().clone(), None)
            .unwrap()
            .request_async(&http)
            .await
            .unwrap();
        assert_eq!(info.subject().as_str(), user["id"].as_str().unwrap());
        assert_eq!(
            info.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
            Some("Taro Yamada")
        );

        // Refresh rotates; the old refresh token is then a reuse that revokes the family.
        let first_refresh = tokens.refresh_token().expect("refresh token").clone();
        let rotated = client
            .exchange_refresh_token(&first_refresh)
            .unwrap()
            .request_async(&http)
            .await
            .unwrap();
        let second_refresh = rotated
            .refresh_token()
            .expect("rotated refresh token")
            .clone();
        assert_ne!(second_refresh.secret(), first_refresh.secret());
        let reuse = client
            .exchange_refresh_token(&first_refresh)
            .unwrap()
            .request_async(&http)
            .await;
        assert!(format!("{reuse:?}").contains("invalid_grant"), "{reuse:?}");
        let after = client
            .exchange_refresh_token(&RefreshToken::new(second_refresh.secret().clone()))
            .unwrap()
            .request_async(&http)
            .await;
        assert!(after.is_err(), "the whole family is revoked");
        let introspected = client
            .introspect(rotated.access_token())
            .request_async(&http)
            .await
            .unwrap();
        assert!(
            !introspected.active(),
            "access tokens of the family are revoked too"
        );

        // A fresh sign-in, then introspection and revocation of its access token.
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (auth_url, _, nonce) = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        let callback = browser.sign_in(auth_url.as_str(), "taro", PASSWORD).await;
        let tokens = client
            .exchange_code(AuthorizationCode::new(
                query_param(&callback, "code").unwrap(),
            ))
            .unwrap()
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .unwrap();
        tokens
            .id_token()
            .unwrap()
            .claims(&client.id_token_verifier(), &nonce)
            .unwrap();
        let live = client
            .introspect(tokens.access_token())
            .request_async(&http)
            .await
            .unwrap();
        assert!(live.active());
        assert_eq!(live.sub(), user["id"].as_str());
        client
            .revoke_token(tokens.access_token().into())
            .unwrap()
            .request_async(&http)
            .await
            .unwrap();
        let dead = client
            .introspect(tokens.access_token())
            .request_async(&http)
            .await
            .unwrap();
        assert!(!dead.active(), "revoked access token is inactive");
        let userinfo: Result<CoreUserInfoClaims, _> = client
            .user_info(tokens.access_token().clone(), None)
            .unwrap()
            .request_async(&http)
            .await;
        assert!(userinfo.is_err(), "a revoked token gets no UserInfo");

        // RP-initiated logout returns to the registered address with the state.
        let logout = url::Url::parse_with_params(
            &format!("{}/logout", server.public),
            &[
                ("id_token_hint", tokens.id_token().unwrap().to_string()),
                ("post_logout_redirect_uri", AFTER_LOGOUT.to_string()),
                ("state", "bye-1".to_string()),
            ],
        )
        .unwrap();
        match browser.walk(logout.as_str(), None, false).await {
            common::Landing::Redirect(to) => assert_eq!(to, format!("{AFTER_LOGOUT}?state=bye-1")),
            other => panic!("{other:?}"),
        }
        let (auth_url, _, _) = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_extra_param("prompt", "none")
            .url();
        match browser.walk(auth_url.as_str(), None, false).await {
            common::Landing::Redirect(to) => {
                let to = url::Url::parse(&to).unwrap();
                assert_eq!(query_param(&to, "error").as_deref(), Some("login_required"));
            }
            other => panic!("{other:?}"),
        }
        assert!(k.ok(&["audit", "verify"]).starts_with("ok: "));
        let audit = k.ok(&["audit", "export"]);
        assert!(audit.contains("\"action\":\"userinfo.release\""));
        assert!(audit.contains("\"action\":\"token.refresh_reuse\""));
    }
}
