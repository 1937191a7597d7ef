//! The OpenAPI 3.1 description of the admin API, served at `/admin/api/openapi.json`.

mod operations;
mod schemas;

use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};

use operations::{OPS, Op};
use schemas::{schemas, string};

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
    /// Every (route, method) `api/mod.rs` serves under `/admin/api/v1`, read from its source: the
    /// path of each `.route(…)` and the method routers up to the next one.
    fn served_routes() -> Vec<(String, &'static str)> {
        let source = include_str!("../api/mod.rs");
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
    fn the_error_schema_lists_every_code_the_api_answers_with() {
        use crate::error::{ConsoleError, Stale};
        use crate::messages::Msg;
        use kizuna_core::orgs::{OrgKind, Organization};

        let spec = super::spec();
        let error = &spec["components"]["schemas"]["Error"];
        let codes = error["properties"]["error"]["enum"].as_array().unwrap();
        assert!(error["properties"]["detail"].is_object());
        let org = Organization {
            id: "o".into(),
            name: "Parks".into(),
            name_ja: None,
            kind: OrgKind::Other,
            status: "active".into(),
            created_at: 0,
            version: 1,
        };
        for e in [
            ConsoleError::Unauthorized(Msg::InvalidToken.into()),
            ConsoleError::StepUp(3),
            ConsoleError::Forbidden(Msg::NotPermitted.into()),
            ConsoleError::InsufficientScope(Msg::InsufficientScope.into()),
            ConsoleError::BadRequest(Msg::MalformedBody.into()),
            ConsoleError::NotFound(Msg::NotFound.into()),
            ConsoleError::Invalid(Msg::DaysRange.into()),
            ConsoleError::Conflict(Msg::TargetsChanged.into()),
            ConsoleError::Stale(Stale::Org(Box::new(org))),
            ConsoleError::Internal("x".into()),
            ConsoleError::Unavailable("x".into()),
        ] {
            assert!(codes.contains(&e.code().into()), "{}", e.code());
        }
        assert_eq!(codes.len(), 10, "{codes:?}");
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
