//! The audit log as a download (JSON lines or CSV), for the console's export links and the
//! admin API's `format=`.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::Console;
use crate::error::ConsoleError;
use crate::forms::AuditQuery;
use crate::messages::Msg;
use crate::ops;
use kizuna_core::access::Caller;

/// The matching entries as a download, oldest first: JSON lines or CSV.
pub async fn audit_log(
    c: &Console,
    who: &Caller,
    q: &AuditQuery,
    format: &str,
) -> Result<Response, ConsoleError> {
    let mut entries = ops::search_audit(c, who, q.search(100_000)).await?;
    entries.reverse();
    let (content_type, name, text) = match format {
        "jsonl" => {
            let mut out = String::new();
            for e in &entries {
                out.push_str(
                    &serde_json::to_string(e).map_err(|e| ConsoleError::Internal(e.to_string()))?,
                );
                out.push('\n');
            }
            ("application/jsonl", "audit.jsonl", out)
        }
        "csv" => {
            let mut out = String::from(
                "seq,id,at,actor_kind,actor_id,action,target,outcome,source_ip,request_id,details,hash\n",
            );
            for e in &entries {
                let fields = [
                    e.seq.to_string(),
                    e.id.clone(),
                    e.at.clone(),
                    e.actor_kind.clone(),
                    e.actor_id.clone(),
                    e.action.clone(),
                    e.target.clone(),
                    e.outcome.clone(),
                    e.source_ip.clone().unwrap_or_default(),
                    e.request_id.clone().unwrap_or_default(),
                    e.details.clone(),
                    e.hash.clone(),
                ];
                out.push_str(&kizuna_core::web::csv::row(&fields));
                out.push('\n');
            }
            ("text/csv; charset=utf-8", "audit.csv", out)
        }
        other => {
            return Err(ConsoleError::Invalid(
                Msg::ExportFormat {
                    format: format!("{other:?}"),
                }
                .into(),
            ));
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        text,
    )
        .into_response())
}
