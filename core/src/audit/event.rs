//! What an audit entry records: who acted, on what, with which outcome, from where.

use serde::{Deserialize, Serialize};

use crate::web::RequestContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    User,
    Client,
    Device,
    System,
    Anonymous,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Client => "client",
            ActorKind::Device => "device",
            ActorKind::System => "system",
            ActorKind::Anonymous => "anonymous",
        }
    }
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
}

impl Actor {
    pub fn user(id: impl Into<String>) -> Self {
        Actor {
            kind: ActorKind::User,
            id: id.into(),
        }
    }
    pub fn client(id: impl Into<String>) -> Self {
        Actor {
            kind: ActorKind::Client,
            id: id.into(),
        }
    }
    pub fn device(id: impl Into<String>) -> Self {
        Actor {
            kind: ActorKind::Device,
            id: id.into(),
        }
    }
    pub fn system(id: impl Into<String>) -> Self {
        Actor {
            kind: ActorKind::System,
            id: id.into(),
        }
    }
    pub fn anonymous() -> Self {
        Actor {
            kind: ActorKind::Anonymous,
            id: String::new(),
        }
    }
    /// An operator at the command line, named by their OS account.
    pub fn cli() -> Self {
        let who = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        Actor::system(format!("cli:{who}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// An event to append. The request id and source address are taken from the request being
/// served when there is one.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor: Actor,
    pub action: String,
    pub target: String,
    pub outcome: Outcome,
    pub details: serde_json::Value,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
}

impl AuditEvent {
    /// `action` is a dotted name such as `org.create` or `cert.revoke`; `target` names the
    /// object acted on (`org:<id>`, `cert:<serial>`).
    pub fn new(actor: Actor, action: impl Into<String>, target: impl Into<String>) -> Self {
        let ctx = RequestContext::current();
        AuditEvent {
            actor,
            action: action.into(),
            target: target.into(),
            outcome: Outcome::Success,
            details: serde_json::Value::Object(Default::default()),
            source_ip: ctx
                .as_ref()
                .and_then(|c| c.peer_ip.map(|ip| ip.to_string())),
            request_id: ctx.map(|c| c.request_id),
        }
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Structured details. Never put a secret, token, password or key here.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}
