//! The JSON schemas of the admin API's request bodies and of its error body.

use serde_json::{Value, json};

/// Every `error` code the admin API answers with.
const ERROR_CODES: [&str; 10] = [
    "invalid_token",
    "insufficient_user_authentication",
    "insufficient_scope",
    "forbidden",
    "not_found",
    "invalid_request",
    "conflict",
    "stale",
    "server_error",
    "temporarily_unavailable",
];

pub(super) fn string() -> Value {
    json!({"type": "string"})
}

fn object(required: &[&str], props: &[(&str, Value)]) -> Value {
    let properties: serde_json::Map<String, Value> = props
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    json!({"type": "object", "required": required, "properties": properties, "additionalProperties": false})
}

pub(super) fn schemas() -> Value {
    let int = json!({"type": "integer"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let level = json!({"type": "integer", "minimum": 1, "maximum": 3});
    let claim_map = json!({"type": "object", "description": "account attribute (email, name, name_kana, birthdate, address, groups) to upstream claim", "additionalProperties": {"type": "string"}});
    let acr_map = json!({"type": "object", "description": "upstream acr value to the levels it stands for", "additionalProperties": object(&["aal"], &[("aal", level.clone()), ("ial", level.clone())])});
    let ceiling = object(
        &["max_ial", "max_aal"],
        &[("max_ial", level.clone()), ("max_aal", level)],
    );
    json!({
        "Error": {"type": "object", "required": ["error", "message"], "properties": {
            "error": {"type": "string", "description": "stable and machine-readable: branch on this", "enum": ERROR_CODES},
            "message": {"type": "string", "description": "for people: in the language Accept-Language asks for (ja or en), English without one"},
            "detail": {"type": "string", "description": "when the error comes from a rule of Kizuna's domain (a redirect URI, a certificate profile, …): that rule's own text, in English"},
            "current": {"type": "object", "description": "for `stale`: the current version"}}},
        "Device": object(&["org_id", "model"], &[("id", string()), ("org_id", string()), ("model", string()), ("hardware_serial", string()), ("location", string()), ("installer", string())]),
        "Revocation": object(&["reason"], &[("serial", string()), ("device_id", string()), ("org_id", string()),
            ("reason", json!({"type": "string", "enum": ["unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded", "cessationOfOperation", "certificateHold", "privilegeWithdrawn", "aACompromise"]}))]),
        "EnrollmentToken": object(&["org_id"], &[("org_id", string()), ("profile", string()), ("device_id", string()), ("subject_pattern", string()), ("ttl_secs", int.clone())]),
        "User": object(&["username"], &[("username", string()), ("email", string()), ("name", string()), ("password", string()), ("org_id", string())]),
        "Password": object(&["password"], &[("password", string())]),
        "FactorReset": object(&["reproofing_reference"], &[("reproofing_reference", string()), ("reason", string())]),
        "Role": object(&["role", "scope"], &[("role", json!({"type": "string", "enum": ["city-admin", "org-admin", "registrar", "installer", "auditor", "helpdesk"]})), ("scope", string()), ("granted", json!({"type": "boolean"}))]),
        "BulkDisable": object(&["user_ids"], &[("user_ids", strings.clone())]),
        "Client": object(&["client_name"], &[("client_name", string()), ("description", string()), ("org_id", string()), ("redirect_uris", strings.clone()),
            ("post_logout_redirect_uris", strings.clone()), ("grant_types", strings.clone()), ("token_endpoint_auth_method", string()), ("scope", string()),
            ("jwks", json!({"type": "object"})), ("jwks_uri", string()), ("id_token_signed_response_alg", string()),
            ("require_pushed_authorization_requests", json!({"type": "boolean"})), ("require_consent", json!({"type": "boolean"})),
            ("backchannel_logout_uri", string()), ("min_aal", int.clone())]),
        "ClientEdit": object(&["redirect_uris", "version"], &[("redirect_uris", strings.clone()), ("min_aal", int.clone()), ("version", int.clone())]),
        "CounterCheck": object(&["document_type", "document_number", "level"], &[("document_type", string()), ("document_number", string()), ("issuer", string()), ("level", int.clone()), ("attributes", json!({"type": "object", "additionalProperties": {"type": "string"}}))]),
        "ClientAssurance": object(&["min_ial", "verified_claims", "proofing_providers"], &[("min_ial", int.clone()), ("verified_claims", strings.clone()), ("proofing_providers", strings.clone())]),
        "ClientQuota": object(&["requests_per_minute"], &[("requests_per_minute", json!({"type": ["integer", "null"], "minimum": 1}))]),
        "OrgConsentLifetime": object(&["lifetime_days"], &[("lifetime_days", json!({"type": ["integer", "null"], "minimum": 1}))]),
        "Linkage": object(&["target_client_id"], &[("target_client_id", string()), ("purpose", string()), ("purpose_ja", string()), ("scopes", strings.clone())]),
        "ConsentTerms": object(&["purpose"], &[("purpose", string()), ("purpose_ja", string()), ("lifetime_days", json!({"type": ["integer", "null"], "minimum": 1})), ("optional_claims", strings.clone())]),
        "CertificateClientScopes": object(&[], &[("profile", string()), ("model", string()), ("scopes", json!({"type": "array", "items": string()}))]),
        "Organization": object(&["name"], &[("name", string()), ("name_ja", string()), ("kind", string()), ("version", int.clone())]),
        "Upstream": object(&["alias", "name", "org_id", "issuer", "client_id"], &[("alias", string()), ("name", string()), ("org_id", string()),
            ("issuer", string()), ("client_id", string()),
            ("client_auth", json!({"type": "string", "enum": ["client_secret_basic", "private_key_jwt"]})), ("client_secret", string()),
            ("key_algorithm", json!({"type": "string", "enum": ["p256", "rsa2048"]})), ("scopes", strings.clone()), ("acr_values", strings.clone()),
            ("claim_map", claim_map.clone()), ("acr_map", acr_map.clone()), ("ceiling", ceiling.clone()), ("jit", json!({"type": "boolean"})),
            ("email_domains", strings.clone()), ("propagate_logout", json!({"type": "boolean"}))]),
        "UpstreamEdit": object(&["version"], &[("version", int), ("name", string()), ("client_secret", string()), ("scopes", strings.clone()),
            ("acr_values", strings.clone()), ("claim_map", claim_map), ("acr_map", acr_map), ("ceiling", ceiling), ("jit", json!({"type": "boolean"})),
            ("email_domains", strings), ("propagate_logout", json!({"type": "boolean"}))]),
    })
}
