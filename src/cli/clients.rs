//! `kizuna client create|list|show|delete|quota|set-assurance`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use kizuna_core::audit::Actor;
use kizuna_core::orgs;
use kizuna_idp::clients::{self, AuthMethod, Client, GrantType, NewClient, TlsMatch, TlsMatchKind};

use crate::config::Config;
use crate::serve::{close, open_idp};

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register a relying party. Prints the client (with its secret, shown only now).
    Create(Box<CreateArgs>),
    /// Set what residents are asked to agree to: the purpose (a changed purpose asks every
    /// resident again), how long a consent lasts (at most oidc.consent_max_lifetime_days),
    /// and the claims they may decline while allowing the rest.
    ConsentTerms {
        client_id: String,
        /// The purpose, as the consent page shows it (English, and the default).
        #[arg(long)]
        purpose: String,
        /// The purpose in Japanese.
        #[arg(long)]
        purpose_ja: Option<String>,
        /// How many days a consent lasts (default: the city's maximum).
        #[arg(long, value_name = "DAYS")]
        lifetime_days: Option<i64>,
        /// A claim residents may decline (repeatable): preferred_username, name,
        /// updated_at, email, email_verified.
        #[arg(long = "optional-claim", value_name = "CLAIM")]
        optional_claims: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Offer residents, on this client's consent page, that it may obtain these scopes of
    /// another service (--to) for a purpose, by token exchange (RFC 8693). No scope removes
    /// the offer; a changed purpose or scope set asks residents again.
    Linkage {
        client_id: String,
        /// The service whose data this client may obtain (its client id).
        #[arg(long, value_name = "CLIENT")]
        to: String,
        #[arg(long, default_value = "")]
        purpose: String,
        #[arg(long)]
        purpose_ja: Option<String>,
        /// A scope of that service (repeatable).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List clients.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one client.
    Show {
        client_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a client; its tokens stop working.
    Delete { client_id: String },
    /// Limit a client's requests per minute at the token, PAR, introspection, revocation,
    /// device authorization and UserInfo endpoints (shared by every replica).
    Quota {
        client_id: String,
        /// Requests per minute (1 to 10,000,000).
        #[arg(long, value_name = "N", conflicts_with = "unlimited")]
        per_minute: Option<i64>,
        /// Remove the client's limit.
        #[arg(long)]
        unlimited: bool,
        #[arg(long)]
        json: bool,
    },
    /// Set what the client asks of identity assurance: the lowest identity assurance level
    /// (IAL) every sign-in must show, the verified claims it may receive, and the proofing
    /// providers its residents may use (default: every configured one).
    SetAssurance {
        client_id: String,
        /// 0 (none), 1, 2 or 3.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=3))]
        min_ial: u8,
        /// A claim the client may receive in verified_claims (repeatable), e.g. given_name.
        #[arg(long = "verified-claim", value_name = "CLAIM")]
        verified_claims: Vec<String>,
        /// A proofing provider id (repeatable): x509-signature, webhook:NAME, counter, …
        #[arg(long = "proofing-provider", value_name = "ID")]
        proofing_providers: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    /// Display name, shown on the consent page.
    #[arg(long)]
    name: String,
    /// Redirect URI (repeatable); exact match at sign-in.
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// Where the service may send people after sign-out (repeatable).
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    post_logout_redirect_uris: Vec<String>,
    /// A public client (browser or native app): no secret, PKCE required.
    #[arg(long)]
    public: bool,
    /// authorization_code, refresh_token, client_credentials or device_code (repeatable).
    /// Default: authorization_code and refresh_token.
    #[arg(long = "grant-type", value_name = "TYPE")]
    grant_types: Vec<String>,
    /// client_secret_basic (default), client_secret_post, private_key_jwt, tls_client_auth,
    /// self_signed_tls_client_auth or none.
    #[arg(long, value_name = "METHOD")]
    auth_method: Option<String>,
    /// For tls_client_auth: the one name its certificate must carry (RFC 8705 §2.1.2), as
    /// dns:NAME, uri:URI, ip:ADDRESS, email:ADDRESS or dn:SUBJECT-DN.
    #[arg(long, value_name = "NAME")]
    tls_name: Option<String>,
    /// Bind the client's access tokens to its certificate (RFC 8705 §3); always so for the
    /// mutual-TLS methods.
    #[arg(long)]
    certificate_bound: bool,
    /// The client's JWK Set URL, for private_key_jwt.
    #[arg(long, value_name = "URI")]
    jwks_uri: Option<String>,
    /// A file holding the client's JWK Set, for private_key_jwt.
    #[arg(long, value_name = "FILE")]
    jwks_file: Option<PathBuf>,
    /// Allowed scope (repeatable). Default: openid profile email offline_access.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// Owning organization (id or name).
    #[arg(long, value_name = "ORG")]
    org: Option<String>,
    /// Why the service asks for data; shown on the consent page.
    #[arg(long)]
    description: Option<String>,
    /// ID token and access token signing: ES256 (default) or RS256 for older libraries.
    #[arg(long, value_name = "ALG")]
    id_token_alg: Option<String>,
    /// Require pushed authorization requests (RFC 9126).
    #[arg(long)]
    require_par: bool,
    /// Skip the consent page (first-party city services only).
    #[arg(long)]
    no_consent: bool,
    /// Back-channel logout URI.
    #[arg(long, value_name = "URI")]
    backchannel_logout_uri: Option<String>,
    /// The lowest authentication assurance level every sign-in must reach: 1, 2 (a second
    /// factor or a passkey) or 3 (a hardware-bound passkey). See docs/assurance.md.
    #[arg(long, value_name = "LEVEL", value_parser = clap::value_parser!(u8).range(0..=3), default_value_t = 0)]
    min_aal: u8,
    #[arg(long)]
    json: bool,
}

/// `dns:NAME`, `uri:URI`, `ip:ADDRESS`, `email:ADDRESS` or `dn:SUBJECT-DN`.
fn parse_tls_name(text: &str) -> Result<TlsMatch> {
    let (kind, value) = text.split_once(':').ok_or_else(|| {
        anyhow::anyhow!("write the certificate name as dns:, uri:, ip:, email: or dn:")
    })?;
    let kind = match kind {
        "dns" => TlsMatchKind::SanDns,
        "uri" => TlsMatchKind::SanUri,
        "ip" => TlsMatchKind::SanIp,
        "email" => TlsMatchKind::SanEmail,
        "dn" => TlsMatchKind::SubjectDn,
        other => bail!("unknown certificate name kind {other:?}: use dns, uri, ip, email or dn"),
    };
    Ok(TlsMatch {
        kind,
        value: value.to_string(),
    })
}

fn print_client(client: &Client) {
    println!("client_id:     {}", client.client_id);
    println!("name:          {}", client.name);
    println!("auth method:   {}", client.auth_method.as_str());
    println!(
        "grant types:   {}",
        client
            .grant_types
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("redirect URIs: {}", client.redirect_uris.join(", "));
    println!("scopes:        {}", client.scopes.join(" "));
    if client.min_aal > 0 {
        println!("minimum AAL:   {}", client.min_aal);
    }
    println!("status:        {}", client.status);
}

pub async fn run(cmd: ClientCommand, config: &Config) -> Result<ExitCode> {
    let (idp, writer) = open_idp(config).await?;
    let result = match cmd {
        ClientCommand::Create(args) => {
            let CreateArgs {
                name,
                redirect_uris,
                post_logout_redirect_uris,
                public,
                grant_types,
                auth_method,
                tls_name,
                certificate_bound,
                jwks_uri,
                jwks_file,
                scopes,
                org,
                description,
                id_token_alg,
                require_par,
                no_consent,
                backchannel_logout_uri,
                min_aal,
                json,
            } = *args;
            let grant_types = grant_types
                .iter()
                .map(|g| g.parse::<GrantType>())
                .collect::<Result<Vec<_>, _>>()?;
            let auth_method = auth_method.map(|m| m.parse::<AuthMethod>()).transpose()?;
            let tls_client_auth = tls_name.as_deref().map(parse_tls_name).transpose()?;
            let jwks = match jwks_file {
                Some(path) => Some(
                    serde_json::from_str(
                        &std::fs::read_to_string(&path)
                            .with_context(|| format!("cannot read {}", path.display()))?,
                    )
                    .with_context(|| format!("{} is not JSON", path.display()))?,
                ),
                None => None,
            };
            let org_id = match org {
                Some(org) => Some(orgs::find(&idp.core.db, &org).await?.id),
                None => None,
            };
            let created = clients::create(
                &idp.core,
                Actor::cli(),
                NewClient {
                    name,
                    description,
                    org_id,
                    redirect_uris,
                    post_logout_redirect_uris,
                    public,
                    grant_types,
                    auth_method,
                    scopes,
                    jwks,
                    jwks_uri,
                    id_token_alg,
                    require_par,
                    require_consent: Some(!no_consent),
                    backchannel_logout_uri,
                    min_aal,
                    tls_client_auth,
                    certificate_bound,
                },
            )
            .await?;
            idp.keys.ensure(&created.client.id_token_alg).await?;
            if json {
                println!("{}", serde_json::to_string(&created)?);
            } else {
                print_client(&created.client);
                if let Some(secret) = &created.client_secret {
                    println!("client_secret: {secret}");
                    println!(
                        "(the secret is shown only now; store it in the service's secret store)"
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::List { json } => {
            let list = clients::list(&idp.core.db).await?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                println!("no clients");
            } else {
                println!(
                    "{:<36}  {:<20}  {:<8}  NAME",
                    "CLIENT ID", "AUTH METHOD", "STATUS"
                );
                for c in list {
                    println!(
                        "{:<36}  {:<20}  {:<8}  {}",
                        c.client_id,
                        c.auth_method.as_str(),
                        c.status,
                        c.name
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Show { client_id, json } => {
            let Some(client) = clients::get(&idp.core.db, &client_id).await? else {
                bail!("no client with id {client_id}");
            };
            if json {
                println!("{}", serde_json::to_string(&client)?);
            } else {
                print_client(&client);
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Quota {
            client_id,
            per_minute,
            unlimited,
            json,
        } => {
            if per_minute.is_none() && !unlimited {
                bail!("give --per-minute N, or --unlimited to remove the limit");
            }
            let quota = kizuna_idp::quota::set(&idp, &client_id, per_minute, Actor::cli()).await?;
            if json {
                println!("{}", serde_json::to_string(&quota)?);
            } else {
                match quota.requests_per_minute {
                    Some(n) => println!("client {client_id}: at most {n} requests per minute"),
                    None => println!("client {client_id}: no request limit"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::ConsentTerms {
            client_id,
            purpose,
            purpose_ja,
            lifetime_days,
            optional_claims,
            json,
        } => {
            let terms = kizuna_idp::consent::set_terms(
                &idp,
                Actor::cli(),
                &client_id,
                kizuna_idp::consent::NewTerms {
                    purpose,
                    purpose_ja,
                    lifetime_days,
                    optional_claims,
                },
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string(&terms)?);
            } else {
                println!(
                    "client {client_id}: consent terms version {} (lifetime {}, optional claims: {})",
                    terms.version,
                    terms
                        .lifetime_days
                        .map_or_else(|| "the city's maximum".to_string(), |d| format!("{d} days")),
                    if terms.optional_claims.is_empty() {
                        "none".to_string()
                    } else {
                        terms.optional_claims.join(", ")
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Linkage {
            client_id,
            to,
            purpose,
            purpose_ja,
            scopes,
            json,
        } => {
            let linkage = kizuna_idp::consent::set_linkage(
                &idp,
                Actor::cli(),
                &client_id,
                kizuna_idp::consent::NewLinkage {
                    target_client_id: to.clone(),
                    purpose,
                    purpose_ja,
                    scopes,
                },
            )
            .await?;
            match (&linkage, json) {
                (_, true) => println!("{}", serde_json::to_string(&linkage)?),
                (Some(l), false) => println!(
                    "client {client_id} may obtain {} from {to} (version {}) with each resident's consent",
                    l.scopes.join(" "),
                    l.version
                ),
                (None, false) => println!("client {client_id} no longer offers a linkage to {to}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Delete { client_id } => {
            clients::delete(&idp.core, Actor::cli(), &client_id).await?;
            println!("deleted client {client_id}");
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::SetAssurance {
            client_id,
            min_ial,
            verified_claims,
            proofing_providers,
            json,
        } => {
            let settings = kizuna_idp::assurance::set_client_settings(
                &idp,
                Actor::cli(),
                &client_id,
                kizuna_idp::assurance::ClientAssurance {
                    min_ial,
                    verified_claims,
                    proofing_providers,
                },
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string(&settings)?);
            } else {
                println!(
                    "client {client_id}: minimum IAL {}, verified claims [{}], proofing providers [{}]",
                    settings.min_ial,
                    settings.verified_claims.join(", "),
                    settings.proofing_providers.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    };
    close(idp, writer).await;
    result
}
