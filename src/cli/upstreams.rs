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
use kizuna_idp::federation::upstreams::SamlIdp;
use kizuna_idp::federation::{ClientAuth, NewUpstream, Upstream, UpstreamStatus, saml, upstreams};

use crate::config::Config;
use crate::serve::{close, open_idp};

#[derive(Subcommand)]
pub enum UpstreamCommand {
    /// Add an upstream OpenID provider, read from its issuer's discovery document, or (with
    /// --saml) a SAML 2.0 IdP, read from its metadata. Prints what to register there: the
    /// redirect and logout URIs (and the key, for private_key_jwt), or Kizuna's SP metadata.
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
    #[arg(long, value_name = "URL", required_unless_present = "saml")]
    issuer: Option<String>,
    /// Kizuna's client id at the upstream.
    #[arg(long, value_name = "ID", required_unless_present = "saml")]
    client_id: Option<String>,
    /// A SAML 2.0 IdP instead of an OpenID provider, read from --metadata-url or
    /// --metadata-file. Kizuna makes its SP keys and serves its SP metadata at
    /// /federation/saml/<alias>/metadata; --acr-value sets the requested authentication
    /// context classes, --acr-map reads AuthnContextClassRef, --claim maps attributes (by
    /// Name or FriendlyName; default email=mail, name=displayName).
    #[arg(long, conflicts_with_all = ["issuer", "client_id", "client_secret_stdin", "private_key_jwt", "scopes"])]
    saml: bool,
    /// Where the SAML IdP's metadata is read (https://, or http:// on loopback).
    #[arg(
        long,
        value_name = "URL",
        requires = "saml",
        conflicts_with = "metadata_file"
    )]
    metadata_url: Option<String>,
    /// A file holding the SAML IdP's metadata.
    #[arg(long, value_name = "FILE", requires = "saml")]
    metadata_file: Option<std::path::PathBuf>,
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

/// The SAML IdP's metadata, from its URL or file.
async fn saml_idp(idp: &Idp, args: &AddArgs) -> Result<SamlIdp> {
    match (&args.metadata_url, &args.metadata_file) {
        (Some(url), None) => Ok(saml::idp_from_url(idp, url).await?),
        (None, Some(file)) => {
            let xml = std::fs::read(file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            Ok(SamlIdp {
                metadata: saml::read::idp_metadata(&xml)
                    .map_err(|e| anyhow::anyhow!("the IdP's metadata: {e}"))?,
                metadata_url: None,
            })
        }
        _ => bail!("--saml needs --metadata-url or --metadata-file"),
    }
}

async fn add(idp: &Idp, args: AddArgs) -> Result<ExitCode> {
    let saml = if args.saml {
        Some(saml_idp(idp, &args).await?)
    } else {
        None
    };
    let client_auth = match (args.saml, args.private_key_jwt, args.client_secret_stdin) {
        (true, _, _) => ClientAuth::Saml,
        (false, true, false) => ClientAuth::PrivateKeyJwt,
        (false, false, true) => ClientAuth::ClientSecretBasic,
        _ => bail!("choose one of --client-secret-stdin, --private-key-jwt and --saml"),
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
    let base = if args.saml {
        saml::default_claim_map()
    } else {
        default_map()
    };
    let claim_map = if args.claims.is_empty() && !args.saml {
        None
    } else {
        Some(upstreams::claim_map_from(&args.claims, base)?)
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
            issuer: args.issuer.unwrap_or_default(),
            client_id: args.client_id.unwrap_or_default(),
            client_auth,
            client_secret,
            key_algorithm,
            scopes: if args.saml {
                Vec::new()
            } else {
                upstreams::with_openid(args.scopes)
            },
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
            saml,
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
    if let Some(sp) = &registration.saml {
        println!("register Kizuna at the IdP by its SP metadata:");
        println!("  metadata URL:             {}", sp.metadata_url);
        println!("  entity id:                {}", sp.entity_id);
        println!("  assertion consumer (POST): {}", sp.acs_url);
        println!("  single logout (Redirect): {}", sp.slo_url);
        if let Some(metadata) = saml::sp::metadata(idp, upstream) {
            println!("{metadata}");
        }
        return Ok(ExitCode::SUCCESS);
    }
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
