//! The shape of the code, checked: every table has one owning module and only it holds SQL
//! naming the table (docs/design/where-things-live.md), and no production file grows past
//! 600 lines. Reads the sources, so a change that breaks either rule fails here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Each table and the one module (file, or folder for a store split in files) that owns it.
const OWNERS: &[(&str, &str)] = &[
    // core
    ("audit_log", "core/src/audit.rs"),
    ("audit_head", "core/src/audit.rs"),
    ("keys", "core/src/custody/"),
    ("meta", "core/src/custody/"),
    ("organizations", "core/src/orgs.rs"),
    ("settings", "core/src/settings.rs"),
    // ca
    ("certificates", "ca/src/store.rs"),
    ("cas", "ca/src/hierarchy/"),
    ("cert_changes", "ca/src/changes.rs"),
    ("certificate_client_scopes", "ca/src/cert_clients.rs"),
    ("crls", "ca/src/crl.rs"),
    ("ocsp_signers", "ca/src/ocsp_signer.rs"),
    ("devices", "ca/src/devices.rs"),
    ("enrollment_tokens", "ca/src/enroll/tokens.rs"),
    ("acme_accounts", "ca/src/acme/store.rs"),
    ("acme_authorizations", "ca/src/acme/store.rs"),
    ("acme_challenges", "ca/src/acme/store.rs"),
    ("acme_nonces", "ca/src/acme/store.rs"),
    ("acme_orders", "ca/src/acme/store.rs"),
    ("acme_eab_keys", "ca/src/acme/eab.rs"),
    // admin-ui
    ("bootstrap_tokens", "admin-ui/src/bootstrap.rs"),
    ("console_logins", "admin-ui/src/auth.rs"),
    ("console_sessions", "admin-ui/src/auth.rs"),
    // idp: its store layer, one module per aggregate
    ("auth_requests", "idp/src/store/codes.rs"),
    ("authorization_codes", "idp/src/store/codes.rs"),
    ("device_codes", "idp/src/store/codes.rs"),
    ("sessions", "idp/src/store/sessions.rs"),
    ("session_clients", "idp/src/store/sessions.rs"),
    ("users", "idp/src/store/users.rs"),
    ("role_assignments", "idp/src/store/users.rs"),
    ("clients", "idp/src/store/clients.rs"),
    ("client_quotas", "idp/src/store/clients.rs"),
    ("client_assertion_jtis", "idp/src/store/clients.rs"),
    ("client_assurance", "idp/src/store/assurance.rs"),
    ("grants", "idp/src/store/grants.rs"),
    ("refresh_tokens", "idp/src/store/grants.rs"),
    ("revoked_tokens", "idp/src/store/grants.rs"),
    ("consents", "idp/src/store/consents.rs"),
    ("consent_terms", "idp/src/store/consents.rs"),
    ("consent_linkages", "idp/src/store/consents.rs"),
    ("org_consent_lifetimes", "idp/src/store/consents.rs"),
    ("signing_keys", "idp/src/store/keys.rs"),
    ("throttle", "idp/src/store/throttle.rs"),
    ("mail_outbox", "idp/src/store/mail.rs"),
    ("logout_deliveries", "idp/src/store/logout.rs"),
    ("upstreams", "idp/src/store/federation.rs"),
    ("upstream_authorizations", "idp/src/store/federation.rs"),
    ("federated_identities", "idp/src/store/federation.rs"),
    ("federated_sessions", "idp/src/store/federation.rs"),
    ("federation_link_requests", "idp/src/store/federation.rs"),
    ("federation_logouts", "idp/src/store/federation.rs"),
    ("totp_credentials", "idp/src/store/mfa.rs"),
    ("webauthn_credentials", "idp/src/store/mfa.rs"),
    ("webauthn_ceremonies", "idp/src/store/mfa.rs"),
    ("recovery_codes", "idp/src/store/mfa.rs"),
    ("mfa_pending", "idp/src/store/mfa.rs"),
    ("known_devices", "idp/src/store/mfa.rs"),
    ("releases", "idp/src/store/releases.rs"),
    ("identity_proofing", "idp/src/store/assurance.rs"),
    ("identity_bindings", "idp/src/store/assurance.rs"),
    ("proofing_attempts", "idp/src/store/assurance.rs"),
    ("proofing_result_ids", "idp/src/store/assurance.rs"),
];

/// The longest a production file may be (lines before its unit tests).
const MAX_LINES: usize = 600;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Production sources: every crate's `src/` (not its tests or benches).
fn production_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for dir in [
        "src",
        "core/src",
        "idp/src",
        "ca/src",
        "ocsp/src",
        "admin-ui/src",
    ] {
        rust_files(&Path::new(ROOT).join(dir), &mut files);
    }
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
            let relative = path
                .strip_prefix(ROOT)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (relative, code)
        })
        .collect()
}

/// The contents of the string literals in some Rust code (plain and raw).
fn string_literals(code: &str) -> Vec<String> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'\'' => {
                // A char literal ('"', '\'') or a lifetime: skip what could hide a quote.
                let close = code[i + 1..].find('\'').map(|n| i + 1 + n);
                i = match close {
                    Some(end) if end - i <= 4 => end + 1,
                    _ => i + 1,
                };
            }
            b'r' if bytes.get(i + 1) == Some(&b'#') || bytes.get(i + 1) == Some(&b'"') => {
                let hashes = bytes[i + 1..].iter().take_while(|b| **b == b'#').count();
                if bytes.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let start = i + 2 + hashes;
                let closing = format!("\"{}", "#".repeat(hashes));
                let end = code[start..]
                    .find(&closing)
                    .map_or(bytes.len(), |n| start + n);
                out.push(code[start..end].to_string());
                i = end + closing.len();
            }
            b'"' => {
                let mut j = i + 1;
                let mut text = String::new();
                while j < bytes.len() && bytes[j] != b'"' {
                    if bytes[j] == b'\\' {
                        j += 1;
                    }
                    if let Some(c) = code[j..].chars().next() {
                        text.push(c);
                        j += c.len_utf8();
                    } else {
                        break;
                    }
                }
                out.push(text);
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Tables a piece of SQL names after FROM, JOIN, INTO, UPDATE or TABLE.
fn tables_named(sql: &str) -> Vec<String> {
    let words: Vec<String> = sql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    words
        .windows(2)
        .filter(|w| {
            ["from", "join", "into", "update", "table"].contains(&w[0].to_lowercase().as_str())
        })
        .map(|w| w[1].to_string())
        .collect()
}

#[test]
fn only_a_tables_owner_names_it_in_sql() {
    let owners: BTreeMap<&str, &str> = OWNERS.iter().copied().collect();
    let mut wrong = Vec::new();
    let mut seen = BTreeMap::new();
    for (file, code) in production_files() {
        for literal in string_literals(&code) {
            for table in tables_named(&literal) {
                let Some(owner) = owners.get(table.as_str()) else {
                    continue;
                };
                seen.insert(table.clone(), true);
                let owned = if owner.ends_with('/') {
                    file.starts_with(owner)
                } else {
                    file == *owner
                };
                if !owned {
                    wrong.push(format!("{file} names {table} (owner: {owner})"));
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "SQL outside its table's owner:\n{}",
        wrong.join("\n")
    );
    // Every table of the schema has an owner listed here.
    for dialect in ["sqlite", "postgres"] {
        let dir = Path::new(ROOT).join("migrations").join(dialect);
        for entry in std::fs::read_dir(dir).unwrap() {
            let sql = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for table in tables_named(&sql.replace("IF NOT EXISTS", "")) {
                let created = sql.contains(&format!("TABLE {table} "))
                    || sql.contains(&format!("TABLE IF NOT EXISTS {table} "))
                    || sql.contains(&format!("TABLE {table}("));
                if created && !table.ends_with("_new") {
                    assert!(owners.contains_key(table.as_str()), "{table} has no owner");
                }
            }
        }
    }
    assert!(seen.len() > 40, "the scan found SQL: {seen:?}");
}

#[test]
fn no_production_file_passes_six_hundred_lines() {
    let mut long: Vec<String> = production_files()
        .into_iter()
        .map(|(file, code)| (file, code.lines().count()))
        .filter(|(_, lines)| *lines > MAX_LINES)
        .map(|(file, lines)| format!("{file}: {lines} lines"))
        .collect();
    long.sort();
    assert!(long.is_empty(), "split these:\n{}", long.join("\n"));
}

#[test]
fn the_scanner_finds_tables_in_literals_and_not_in_comments() {
    let code = "// SELECT x FROM users\nlet q = \"SELECT a FROM grants g JOIN clients c\";\nlet r = r#\"UPDATE \"sessions\"\"#;\nlet c = '\"';";
    let found: Vec<String> = string_literals(code)
        .iter()
        .flat_map(|l| tables_named(l))
        .collect();
    assert_eq!(found, vec!["grants", "clients", "sessions"]);
}
