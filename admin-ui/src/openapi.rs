//! The OpenAPI 3.1 description of the admin API, served at `/admin/api/openapi.json`.

use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};

/// One operation: summary, the roles that may call it, and an optional JSON request body
/// schema reference.
struct Op {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    roles: &'static str,
    body: Option<&'static str>,
    query: &'static [&'static str],
}

const OPS: &[Op] = &[
    Op {
        method: "get",
        path: "/dashboard",
        id: "dashboard",
        summary: "Counts and recent security events",
        roles: "any staff role",
        body: None,
        query: &[],
    },
    Op {
        method: "get",
        path: "/devices",
        id: "searchDevices",
        summary: "Search devices by id, hardware serial, model or location",
        roles: "city-admin, auditor; org-admin, installer (own organization)",
        body: None,
        query: &["q", "org", "status"],
    },
    Op {
        method: "post",
        path: "/devices",
        id: "createDevice",
        summary: "Register a device",
        roles: "city-admin; org-admin, installer (own organization)",
        body: Some("Device"),
        query: &[],
    },
    Op {
        method: "get",
        path: "/devices/{id}",
        id: "getDevice",
        summary: "A device and its certificates",
        roles: "city-admin, auditor; org-admin, installer (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/devices/{id}/suspend",
        id: "suspendDevice",
        summary: "Suspend a device (its certificates go on hold)",
        roles: "city-admin; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/devices/{id}/resume",
        id: "resumeDevice",
        summary: "Resume a suspended device (its held certificates are valid again)",
        roles: "city-admin; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/devices/{id}/retire",
        id: "retireDevice",
        summary: "Retire a device for good (its certificates are revoked)",
        roles: "city-admin; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "get",
        path: "/certificates",
        id: "searchCertificates",
        summary: "Search certificates by serial, subject, SAN, device, organization, status",
        roles: "city-admin, auditor; org-admin, installer (own organization)",
        body: None,
        query: &["q", "org", "device", "status"],
    },
    Op {
        method: "get",
        path: "/certificates/{serial}",
        id: "getCertificate",
        summary: "A certificate with its PEM",
        roles: "city-admin, auditor; org-admin, installer (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/certificates/{serial}/unhold",
        id: "unholdCertificate",
        summary: "Release a certificate from certificateHold",
        roles: "city-admin; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/revocations",
        id: "revoke",
        summary: "Revoke (or hold) one certificate, a device's or an organization's",
        roles: "city-admin; org-admin (own organization)",
        body: Some("Revocation"),
        query: &[],
    },
    Op {
        method: "get",
        path: "/enrollment-tokens",
        id: "listEnrollmentTokens",
        summary: "An organization's enrollment tokens (never their secrets)",
        roles: "city-admin; org-admin, installer (own organization)",
        body: None,
        query: &["org"],
    },
    Op {
        method: "post",
        path: "/enrollment-tokens",
        id: "createEnrollmentToken",
        summary: "Create one enrollment token (shown once)",
        roles: "city-admin; org-admin, installer (own organization)",
        body: Some("EnrollmentToken"),
        query: &[],
    },
    Op {
        method: "post",
        path: "/enrollment-tokens/{id}/void",
        id: "voidEnrollmentToken",
        summary: "Void an unused enrollment token",
        roles: "city-admin; org-admin, installer (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "get",
        path: "/audit",
        id: "searchAudit",
        summary: "Search the audit log; with format=jsonl or csv, export it",
        roles: "city-admin, auditor",
        body: None,
        query: &["actor", "action", "target", "since", "until", "format"],
    },
    Op {
        method: "post",
        path: "/audit/verify",
        id: "verifyAudit",
        summary: "Recompute the hash chain (as `kizuna audit verify`)",
        roles: "city-admin, auditor",
        body: None,
        query: &[],
    },
    Op {
        method: "get",
        path: "/audit/{id}",
        id: "getAuditEntry",
        summary: "One audit entry",
        roles: "city-admin, auditor",
        body: None,
        query: &[],
    },
    Op {
        method: "get",
        path: "/users",
        id: "searchUsers",
        summary: "Search accounts",
        roles: "city-admin, auditor, helpdesk; org-admin, registrar (own organization)",
        body: None,
        query: &["q"],
    },
    Op {
        method: "post",
        path: "/users",
        id: "createUser",
        summary: "Create an account",
        roles: "city-admin; org-admin (own organization, with org_id)",
        body: Some("User"),
        query: &[],
    },
    Op {
        method: "get",
        path: "/users/{id}",
        id: "getUser",
        summary: "An account: roles, factors, sessions, consents, audit trail",
        roles: "city-admin, auditor, helpdesk; org-admin, registrar (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/users/{id}/disable",
        id: "disableUser",
        summary: "Disable an account (ends its sessions and grants)",
        roles: "city-admin; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/users/{id}/enable",
        id: "enableUser",
        summary: "Enable an account",
        roles: "city-admin; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/users/{id}/sessions/end",
        id: "endSessions",
        summary: "End every session of an account",
        roles: "city-admin, helpdesk; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/users/{id}/password",
        id: "setPassword",
        summary: "Set an account's password",
        roles: "city-admin",
        body: Some("Password"),
        query: &[],
    },
    Op {
        method: "post",
        path: "/users/{id}/mfa-reset",
        id: "resetFactors",
        summary: "Remove every second factor after re-proofing",
        roles: "city-admin, helpdesk",
        body: Some("FactorReset"),
        query: &[],
    },
    Op {
        method: "post",
        path: "/users/{id}/roles",
        id: "changeRole",
        summary: "Grant or withdraw a role",
        roles: "city-admin; org-admin (org-admin, registrar, installer in own organization)",
        body: Some("Role"),
        query: &[],
    },
    Op {
        method: "post",
        path: "/users/bulk-disable",
        id: "bulkDisable",
        summary: "Disable several accounts after a review",
        roles: "city-admin; org-admin (own organization)",
        body: Some("BulkDisable"),
        query: &[],
    },
    Op {
        method: "get",
        path: "/reviews",
        id: "review",
        summary: "Accounts unused for N days and role changes in that time",
        roles: "city-admin, auditor; org-admin (own organization)",
        body: None,
        query: &["days"],
    },
    Op {
        method: "get",
        path: "/clients",
        id: "listClients",
        summary: "Relying parties",
        roles: "city-admin, auditor; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/clients",
        id: "createClient",
        summary: "Register a relying party (secret shown once; pending when an org-admin registers it)",
        roles: "city-admin; org-admin (own organization)",
        body: Some("Client"),
        query: &[],
    },
    Op {
        method: "get",
        path: "/clients/{id}",
        id: "getClient",
        summary: "A relying party",
        roles: "city-admin, auditor; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "patch",
        path: "/clients/{id}",
        id: "editClient",
        summary: "Edit redirect URIs and required AAL (refused with 409 and the current version when stale)",
        roles: "city-admin; org-admin (own organization)",
        body: Some("ClientEdit"),
        query: &[],
    },
    Op {
        method: "delete",
        path: "/clients/{id}",
        id: "deleteClient",
        summary: "Delete a relying party",
        roles: "city-admin",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/clients/{id}/rotate-secret",
        id: "rotateSecret",
        summary: "New client secret (shown once)",
        roles: "city-admin; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "get",
        path: "/users/{id}/proofing",
        id: "showProofing",
        summary: "A person's identity assurance level and current proofing record",
        roles: "city-admin; org-admin, registrar, helpdesk, auditor (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/users/{id}/proofing",
        id: "recordProofing",
        summary: "Record an in-person check at the counter (a registrar's own account; the document number is stored only as a keyed hash)",
        roles: "registrar (own organization); city-admin",
        body: Some("CounterCheck"),
        query: &[],
    },
    Op {
        method: "get",
        path: "/clients/{id}/assurance",
        id: "getClientAssurance",
        summary: "A client's identity assurance settings (minimum IAL, verified claims, proofing providers)",
        roles: "city-admin, auditor; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "put",
        path: "/clients/{id}/assurance",
        id: "setClientAssurance",
        summary: "A client's minimum IAL, the verified claims it may receive and the proofing providers offered",
        roles: "city-admin",
        body: Some("ClientAssurance"),
        query: &[],
    },
    Op {
        method: "get",
        path: "/clients/{id}/quota",
        id: "getClientQuota",
        summary: "A client's request quota (requests per minute; null when not limited)",
        roles: "city-admin, auditor; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "put",
        path: "/clients/{id}/quota",
        id: "setClientQuota",
        summary: "Limit a client's requests per minute at the endpoints it calls (null: no limit)",
        roles: "city-admin",
        body: Some("ClientQuota"),
        query: &[],
    },
    Op {
        method: "post",
        path: "/clients/{id}/approve",
        id: "approveClient",
        summary: "Approve a pending relying party",
        roles: "city-admin",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/clients/{id}/disable",
        id: "disableClient",
        summary: "Disable a relying party (revokes its grants)",
        roles: "city-admin; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/clients/{id}/enable",
        id: "enableClient",
        summary: "Enable a disabled relying party (pending again when an org-admin enables it)",
        roles: "city-admin; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "get",
        path: "/upstreams",
        id: "listUpstreams",
        summary: "Upstream identity providers",
        roles: "city-admin, auditor; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/upstreams",
        id: "createUpstream",
        summary: "Add an upstream OpenID provider (its discovery document is read now; pending when an org-admin adds it); the answer carries what to register there",
        roles: "city-admin; org-admin (own organization)",
        body: Some("Upstream"),
        query: &[],
    },
    Op {
        method: "get",
        path: "/upstreams/{id}",
        id: "getUpstream",
        summary: "An upstream (by id or alias), with its registration values and client-assertion JWK Set",
        roles: "city-admin, auditor; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "patch",
        path: "/upstreams/{id}",
        id: "editUpstream",
        summary: "Edit an upstream (refused with 409 and the current version when stale); the trust ceiling and email domains are city-admin only",
        roles: "city-admin; org-admin (own organization)",
        body: Some("UpstreamEdit"),
        query: &[],
    },
    Op {
        method: "post",
        path: "/upstreams/{id}/approve",
        id: "approveUpstream",
        summary: "Approve a pending upstream",
        roles: "city-admin",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/upstreams/{id}/disable",
        id: "disableUpstream",
        summary: "Disable an upstream (no longer offered; its answers and logout tokens are refused)",
        roles: "city-admin; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/upstreams/{id}/enable",
        id: "enableUpstream",
        summary: "Enable a disabled upstream (pending again when an org-admin enables it)",
        roles: "city-admin; org-admin (own organization)",
        body: None,
        query: &[],
    },
    Op {
        method: "get",
        path: "/orgs",
        id: "listOrgs",
        summary: "Organizations",
        roles: "any staff role (own organizations)",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/orgs",
        id: "createOrg",
        summary: "Add an organization",
        roles: "city-admin",
        body: Some("Organization"),
        query: &[],
    },
    Op {
        method: "get",
        path: "/orgs/{id}",
        id: "getOrg",
        summary: "An organization",
        roles: "any staff role (own organizations)",
        body: None,
        query: &[],
    },
    Op {
        method: "patch",
        path: "/orgs/{id}",
        id: "updateOrg",
        summary: "Edit an organization (refused with 409 and the current version when stale)",
        roles: "city-admin",
        body: Some("Organization"),
        query: &[],
    },
    Op {
        method: "post",
        path: "/orgs/{id}/disable",
        id: "disableOrg",
        summary: "Disable an organization",
        roles: "city-admin",
        body: None,
        query: &[],
    },
    Op {
        method: "post",
        path: "/orgs/{id}/enable",
        id: "enableOrg",
        summary: "Enable an organization",
        roles: "city-admin",
        body: None,
        query: &[],
    },
];

fn string() -> Value {
    json!({"type": "string"})
}

fn object(required: &[&str], props: &[(&str, Value)]) -> Value {
    let properties: serde_json::Map<String, Value> = props
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    json!({"type": "object", "required": required, "properties": properties, "additionalProperties": false})
}

fn schemas() -> Value {
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
            "error": {"type": "string", "enum": ["invalid_token", "forbidden", "not_found", "invalid_request", "conflict", "stale", "server_error"]},
            "message": string(), "current": {"type": "object", "description": "for `stale`: the current version"}}},
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

fn operation(op: &Op) -> Value {
    let mut parameters: Vec<Value> = op
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": string()}))
        .collect();
    parameters.extend(
        op.query.iter().map(
            |name| json!({"name": name, "in": "query", "required": false, "schema": string()}),
        ),
    );
    let error = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut value = json!({
        "operationId": op.id,
        "summary": op.summary,
        "description": format!("Roles: {}.", op.roles),
        "parameters": parameters,
        "security": [{"bearer": []}],
        "responses": {
            "200": {"description": "done", "content": {"application/json": {}}},
            "400": error.clone(), "401": error.clone(), "403": error.clone(), "404": error.clone(),
            "409": error.clone(), "422": error,
        },
    });
    if let Some(schema) = op.body {
        value["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    }
    value
}

/// The whole document.
pub fn spec() -> Value {
    let mut paths = serde_json::Map::new();
    for op in OPS {
        let entry = paths
            .entry(format!("/admin/api/v1{}", op.path))
            .or_insert_with(|| json!({}));
        entry[op.method] = operation(op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Kizuna admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every admin console action. Authenticate with a Kizuna access token: client_credentials with scope kizuna:admin (city administrator) or kizuna:role:<role> (that role in the client's organization), or a person's token with kizuna:admin (their own roles).",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": schemas(),
        },
    })
}

pub async fn document() -> Response {
    Json(spec()).into_response()
}

#[cfg(test)]
mod tests {
    /// Every (route, method) `api.rs` serves under `/admin/api/v1`, read from its source: the
    /// path of each `.route(…)` and the method routers up to the next one.
    fn served_routes() -> Vec<(String, &'static str)> {
        let source = include_str!("api.rs");
        let mut routes = Vec::new();
        for call in source.split(".route(").skip(1) {
            let Some(path) = call
                .trim_start()
                .strip_prefix('"')
                .and_then(|p| p.split('"').next())
                .filter(|p| p.starts_with("/admin/api/v1/"))
            else {
                continue;
            };
            let handlers = call.split(".with_state(").next().unwrap_or(call);
            for method in ["get", "post", "patch", "delete", "put"] {
                let called = |prefix: &str| handlers.contains(&format!("{prefix}{method}("));
                if called(" ") || called("(") || called(".") || called("::") {
                    routes.push((path.to_string(), method));
                }
            }
        }
        routes
    }

    #[test]
    fn every_route_the_api_serves_is_described() {
        let spec = super::spec();
        let routes = served_routes();
        assert!(routes.len() > 50, "{routes:?}");
        for (route, method) in routes {
            assert!(
                spec["paths"][&route][method].is_object(),
                "{method} {route} is not in the OpenAPI document"
            );
        }
    }

    #[test]
    fn every_path_parameter_is_declared_and_every_reference_resolves() {
        let spec = super::spec();
        let schemas = spec["components"]["schemas"].as_object().unwrap();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                let declared = op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .count();
                assert_eq!(declared, path.matches('{').count(), "{path}");
                if let Some(r) =
                    op["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str()
                {
                    assert!(schemas.contains_key(r.rsplit('/').next().unwrap()), "{r}");
                }
            }
        }
    }
}
