//! `kizuna upstream add|list|show|enable|disable`: the organizations' identity providers Kizuna brokers.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use kizuna_core::audit::Actor;
use kizuna_core::custody::KeyAlgorithm;
use kizuna_core::orgs;
use kizuna_idp::Idp;
use kizuna_idp::federation::ceiling::TrustCeiling;
use kizuna_idp::federation::claims::default_map;
use kizuna_idp::federation::{ClientAuth, NewUpstream, Upstream, UpstreamStatus, upstreams};

use crate::config::Config;
use crate::serve::{close, open_idp};

#[derive(Subcommand)]
pub enum UpstreamCommand {
    /// Add an upstream OpenID provider, read from its issuer's discovery document. Prints
    /// the redirect URI and logout URI to register there (and the key, for private_key_jwt).
    Add(Box<AddArgs>),
    /// List upstreams.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one upstream and what to register for Kizuna at it.
    Show {
        alias: String,
        #[arg(long)]
        json: bool,
    },
    /// Disable an upstream: no longer offered; its answers and logout tokens are refused.
    Disable { alias: String },
    /// Enable a disabled upstream, or approve a pending one (registered in the console by
    /// an organization administrator): it is offered at sign-in again.
    Enable { alias: String },
}

#[derive(Args)]
pub struct AddArgs {
    /// Short name, used in URLs: 2-32 lower-case letters, digits and '-'.
    #[arg(long)]
    alias: String,
    /// The name on the sign-in button ("Sign in with <name>").
    #[arg(long)]
    name: String,
    /// The organization that runs this provider (id or name).
    #[arg(long, value_name = "ORG")]
    org: String,
    /// The issuer URL; its /.well-known/openid-configuration is read now and at sign-in.
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// Kizuna's client id at the upstream.
    #[arg(long, value_name = "ID")]
    client_id: String,
    /// Read the client secret from standard input (client_secret_basic).
    #[arg(long)]
    client_secret_stdin: bool,
    /// Authenticate with private_key_jwt instead: Kizuna generates a key in custody and
    /// prints its public JWK Set (also served at /federation/<alias>/jwks).
    #[arg(long)]
    private_key_jwt: bool,
    /// The key type for private_key_jwt: p256 (ES256, default) or rsa2048 (RS256).
    #[arg(long, value_name = "ALG", default_value = "p256")]
    key_alg: String,
    /// A scope to ask for (repeatable; openid is always included).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// An acr value to send as acr_values (repeatable), e.g. aal3.
    #[arg(long = "acr-value", value_name = "ACR")]
    acr_values: Vec<String>,
    /// Which upstream claim fills an account attribute (repeatable), ATTRIBUTE=CLAIM:
    /// email, name, name_kana, birthdate, address, groups; `.` reaches into objects.
    /// Default: the standard claims of the same names.
    #[arg(long = "claim", value_name = "ATTRIBUTE=CLAIM")]
    claims: Vec<String>,
    /// What an upstream acr value means (repeatable), VALUE=AAL or VALUE=AAL:IAL.
    #[arg(long = "acr-map", value_name = "VALUE=AAL[:IAL]")]
    acr_map: Vec<String>,
    /// Trust ceiling: the highest identity assurance level this upstream may vouch for.
    #[arg(long, value_name = "LEVEL", value_parser = clap::value_parser!(u8).range(1..=3), default_value_t = 1)]
    max_ial: u8,
    /// Trust ceiling: the highest authentication assurance level this upstream may vouch for.
    #[arg(long, value_name = "LEVEL", value_parser = clap::value_parser!(u8).range(1..=3), default_value_t = 1)]
    max_aal: u8,
    /// Never create accounts at first sign-in; people link an existing account instead.
    #[arg(long)]
    no_jit: bool,
    /// An email domain whose people sign in here (repeatable; home-realm discovery).
    #[arg(long = "email-domain", value_name = "DOMAIN")]
    email_domains: Vec<String>,
    /// Do not continue sign-out at the upstream's end-session endpoint.
    #[arg(long)]
    no_logout_propagation: bool,
    #[arg(long)]
    json: bool,
}

async fn add(idp: &Idp, args: AddArgs) -> Result<ExitCode> {
    let client_auth = match (args.private_key_jwt, args.client_secret_stdin) {
        (true, false) => ClientAuth::PrivateKeyJwt,
        (false, true) => ClientAuth::ClientSecretBasic,
        _ => bail!("choose one of --client-secret-stdin and --private-key-jwt"),
    };
    let client_secret = if args.client_secret_stdin {
        let secret = super::users::read_password()?;
        if secret.is_empty() {
            bail!("the client secret on standard input is empty");
        }
        Some(secret)
    } else {
        None
    };
    let key_algorithm: KeyAlgorithm = args.key_alg.parse()?;
    let claim_map = if args.claims.is_empty() {
        None
    } else {
        Some(upstreams::claim_map_from(&args.claims, default_map())?)
    };
    let acr_map = upstreams::acr_map_from(&args.acr_map)?;
    let org = orgs::find(&idp.core.db, &args.org).await?;
    let upstream = upstreams::create(
        idp,
        Actor::cli(),
        NewUpstream {
            alias: args.alias,
            name: args.name,
            org_id: org.id,
            issuer: args.issuer,
            client_id: args.client_id,
            client_auth,
            client_secret,
            key_algorithm,
            scopes: upstreams::with_openid(args.scopes),
            acr_values: args.acr_values,
            claim_map,
            acr_map,
            ceiling: TrustCeiling::new(args.max_ial, args.max_aal).map_err(anyhow::Error::msg)?,
            jit: !args.no_jit,
            email_domains: args
                .email_domains
                .iter()
                .map(|d| d.to_lowercase())
                .collect(),
            propagate_logout: !args.no_logout_propagation,
        },
        UpstreamStatus::Active,
    )
    .await?;
    if !args.json {
        println!("added upstream {} ({})", upstream.alias, upstream.id);
    }
    print_upstream(idp, &upstream, args.json).await
}

/// Prints an upstream's registration values (and, as JSON, the whole upstream).
async fn print_upstream(idp: &Idp, upstream: &Upstream, json: bool) -> Result<ExitCode> {
    let jwks = upstreams::client_jwks(idp, upstream).await?;
    let registration = upstreams::registration(idp, upstream);
    if json {
        let mut out = serde_json::to_value(upstream)?;
        out["registration"] = json!(registration);
        out["jwks"] = json!(jwks);
        println!("{}", serde_json::to_string(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} ({}): {}, {}, ceiling IAL{}/AAL{}",
        upstream.alias,
        upstream.name,
        upstream.issuer,
        upstream.status,
        upstream.ceiling.max_ial,
        upstream.ceiling.max_aal
    );
    println!("register at the upstream:");
    println!("  redirect URI:             {}", registration.redirect_uri);
    println!(
        "  back-channel logout URI:  {}",
        registration.backchannel_logout_uri
    );
    println!(
        "  post-logout redirect URI: {}",
        registration.post_logout_redirect_uri
    );
    if let Some(jwks) = jwks {
        println!(
            "  jwks_uri:                 {}",
            registration.jwks_uri.as_deref().unwrap_or_default()
        );
        println!("  jwks:                     {jwks}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(cmd: UpstreamCommand, config: &Config) -> Result<ExitCode> {
    let (idp, writer) = open_idp(config).await?;
    let result = match cmd {
        UpstreamCommand::Add(args) => add(&idp, *args).await,
        UpstreamCommand::List { json } => {
            let list = upstreams::list(&idp).await?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                println!("no upstreams");
            } else {
                println!(
                    "{:<16}  {:<8}  {:<7}  {:<40}  NAME",
                    "ALIAS", "STATUS", "CEILING", "ISSUER"
                );
                for u in list {
                    println!(
                        "{:<16}  {:<8}  {:<7}  {:<40}  {}",
                        u.alias,
                        u.status,
                        format!("IAL{}/AAL{}", u.ceiling.max_ial, u.ceiling.max_aal),
                        u.issuer,
                        u.name
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        UpstreamCommand::Show { alias, json } => match upstreams::find(&idp, &alias).await? {
            Some(upstream) => print_upstream(&idp, &upstream, json).await,
            None => Err(anyhow::anyhow!("no upstream {alias:?}")),
        },
        UpstreamCommand::Disable { alias } => {
            let upstream =
                upstreams::set_status(&idp, Actor::cli(), &alias, UpstreamStatus::Disabled).await?;
            println!("disabled upstream {}", upstream.alias);
            Ok(ExitCode::SUCCESS)
        }
        UpstreamCommand::Enable { alias } => {
            let upstream =
                upstreams::set_status(&idp, Actor::cli(), &alias, UpstreamStatus::Active).await?;
            println!("enabled upstream {}", upstream.alias);
            Ok(ExitCode::SUCCESS)
        }
    };
    close(idp, writer).await;
    result
}
