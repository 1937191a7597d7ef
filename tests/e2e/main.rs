//! Kizuna's end-to-end and structure tests, one binary: each module drives the built `kizuna`
//! binary (or reads the sources) the way a city's systems and operators would, through the
//! shared kit in `common`.

mod common;

mod acme;
mod admin_api;
mod assurance;
mod authorization;
mod backup;
mod browser_passkey;
mod ca;
mod cli;
mod consent;
mod consent_browser;
mod console_browser;
mod console_roles;
mod device_clients;
mod disk_full;
mod est;
mod faults;
mod federation;
mod helm_chart;
mod hsm;
mod kek;
mod mfa;
mod mosquitto;
mod mtls;
mod node_rp;
mod oidc_flows;
mod oidc_rp;
mod registry_api;
mod release_history;
mod revocation;
mod root_rollover;
mod saml;
mod saml_peer;
mod sbom;
mod serve;
mod statement_budget;
mod structure;
mod test_script;
mod topology;
