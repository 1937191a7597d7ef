//! Who may do what on every management surface (the console, the admin API, the CA API and
//! the device registry): staff roles, each held in a scope (one organization, or the whole
//! city), the narrow `kizuna:*` scopes an automation client can be granted, and the
//! assurance level a person's sign-in must have reached. Pure rules; the feature crates ask
//! them for every page and API call, so there is one table and no second copy.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::audit::Actor;

/// The scope of a role held across every organization.
pub const CITY_WIDE: &str = "*";

/// The scope that lets a token act with its holder's staff rights: for a person, every role
/// they hold; for an automation client, city administrator.
pub const ADMIN_SCOPE: &str = "kizuna:admin";
/// `kizuna:role:<role>`: for a person, only that role of theirs; for an automation client,
/// that role in the client's organization (or the whole city for a client of none).
pub const ROLE_SCOPE_PREFIX: &str = "kizuna:role:";
/// An automation client's right to manage its organization's devices and enrollment tokens,
/// and to suspend, resume and retire those devices.
pub const DEVICES_SCOPE: &str = "kizuna:devices";
/// An automation client's right to revoke and release its organization's certificates.
pub const REVOKE_SCOPE: &str = "kizuna:cert:revoke";
/// `kizuna:cert:<profile>`: an automation client's right to request certificates of that
/// profile for its organization.
pub const CERT_SCOPE_PREFIX: &str = "kizuna:cert:";

/// True for a scope that carries management rights (every `kizuna:` scope). Such scopes are
/// registered only by city administrators, and a person's token carries them only when the
/// person holds a matching role.
pub fn is_management_scope(scope: &str) -> bool {
    scope.starts_with("kizuna:")
}

/// A staff role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    CityAdmin,
    OrgAdmin,
    Registrar,
    Installer,
    Auditor,
    Helpdesk,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::CityAdmin,
        Role::OrgAdmin,
        Role::Registrar,
        Role::Installer,
        Role::Auditor,
        Role::Helpdesk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::CityAdmin => "city-admin",
            Role::OrgAdmin => "org-admin",
            Role::Registrar => "registrar",
            Role::Installer => "installer",
            Role::Auditor => "auditor",
            Role::Helpdesk => "helpdesk",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}"))
    }
}

/// Everything a management caller can do, as the authorization table names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    ViewDashboard,
    /// See devices, enrollment tokens and certificates.
    ViewDevices,
    /// Register devices, create and void enrollment tokens and ACME binding keys.
    ManageDevices,
    /// Request certificates through the CA API.
    IssueCertificates,
    /// Revoke, suspend and release certificates, one by one or in bulk.
    RevokeCertificates,
    ViewAudit,
    ViewUsers,
    /// Disable and enable accounts, grant and withdraw roles.
    ManageUsers,
    EndSessions,
    ResetFactors,
    ViewClients,
    ManageClients,
    /// Approve a client an organization administrator registered; register, edit and
    /// re-point clients that carry management scopes.
    ApproveClients,
    ViewOrgs,
    ManageOrgs,
    ViewReviews,
    /// Record an in-person identity check (the counter proofing provider).
    RecordProofing,
    ViewUpstreams,
    /// Register and edit upstream identity providers, disable and enable them.
    ManageUpstreams,
    /// Approve an upstream an organization administrator registered; set the trust
    /// ceiling and the email domains it answers for.
    ApproveUpstreams,
}

impl Action {
    pub const ALL: [Action; 20] = [
        Action::ViewDashboard,
        Action::ViewDevices,
        Action::ManageDevices,
        Action::IssueCertificates,
        Action::RevokeCertificates,
        Action::ViewAudit,
        Action::ViewUsers,
        Action::ManageUsers,
        Action::EndSessions,
        Action::ResetFactors,
        Action::ViewClients,
        Action::ManageClients,
        Action::ApproveClients,
        Action::ViewOrgs,
        Action::ManageOrgs,
        Action::ViewReviews,
        Action::RecordProofing,
        Action::ViewUpstreams,
        Action::ManageUpstreams,
        Action::ApproveUpstreams,
    ];
}

/// The authorization table: may `role` take `action` (within its scope)?
pub fn allows(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        Role::CityAdmin => true,
        Role::OrgAdmin => matches!(
            action,
            ViewDashboard
                | ViewDevices
                | ManageDevices
                | IssueCertificates
                | RevokeCertificates
                | ViewUsers
                | ManageUsers
                | EndSessions
                | ViewClients
                | ManageClients
                | ViewOrgs
                | ViewReviews
                | ViewUpstreams
                | ManageUpstreams
        ),
        Role::Registrar => matches!(
            action,
            ViewDashboard | ViewUsers | ViewOrgs | RecordProofing
        ),
        Role::Installer => matches!(
            action,
            ViewDashboard | ViewDevices | ManageDevices | ViewOrgs
        ),
        Role::Auditor => matches!(
            action,
            ViewDashboard
                | ViewDevices
                | ViewAudit
                | ViewUsers
                | ViewClients
                | ViewOrgs
                | ViewReviews
                | ViewUpstreams
        ),
        Role::Helpdesk => matches!(
            action,
            ViewDashboard | ViewUsers | EndSessions | ResetFactors | ViewOrgs
        ),
    }
}

/// The assurance levels (1–3, NIST SP 800-63B AAL) a person's sign-in must reach before
/// their roles count: the `[console]` settings, applied to the console and to person tokens
/// on every management API alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    /// For every staff role (`console.min_aal`).
    pub min_aal: u8,
    /// For a city administrator (`console.city_admin_aal`).
    pub city_admin_aal: u8,
}

impl Default for Levels {
    fn default() -> Self {
        Levels {
            min_aal: 2,
            city_admin_aal: 3,
        }
    }
}

impl Levels {
    /// The level a person holding `roles` must have signed in at.
    pub fn needed(&self, roles: &[(Role, String)]) -> u8 {
        if roles.iter().any(|(r, _)| *r == Role::CityAdmin) {
            self.city_admin_aal
        } else {
            self.min_aal
        }
    }
}

/// Where an action reaches for one caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Nowhere,
    City,
    Orgs(BTreeSet<String>),
}

impl Reach {
    /// The organization filter a listing applies: `None` for the whole city.
    pub fn org_filter(&self) -> Option<Vec<String>> {
        match self {
            Reach::City => None,
            Reach::Orgs(orgs) => Some(orgs.iter().cloned().collect()),
            Reach::Nowhere => Some(Vec::new()),
        }
    }
}

/// A right an automation client holds through a narrow scope, in its own organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// One action (`kizuna:devices`, `kizuna:cert:revoke`).
    Action(Action),
    /// Requesting certificates whose profile is guarded by this scope (`kizuna:cert:<profile>`).
    Profile(String),
}

/// Why a caller is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The caller may not take the action anywhere.
    Forbidden(String),
    /// The caller may take the action, but not on this thing: answered as "not found", so an
    /// organization cannot probe another's ids.
    NotFound(String),
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::Forbidden(m) => f.write_str(m),
            Denied::NotFound(what) => write!(f, "no {what}"),
        }
    }
}

/// A management caller: a signed-in staff member, a person's token, or an automation
/// client's token, with everything it holds.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    /// The account, for a person.
    pub user_id: Option<String>,
    /// A display name (the username, or the client's name).
    pub name: String,
    /// Roles, each in its scope (an organization id, or [`CITY_WIDE`]).
    pub roles: Vec<(Role, String)>,
    /// Narrow rights of an automation client, each in its organization.
    pub grants: Vec<(Grant, String)>,
}

impl Caller {
    /// A person with these roles.
    pub fn person(user_id: &str, name: &str, roles: Vec<(Role, String)>) -> Caller {
        Caller {
            actor: Actor::user(user_id),
            user_id: Some(user_id.to_string()),
            name: name.to_string(),
            roles,
            grants: Vec::new(),
        }
    }

    /// An automation client acting for itself with these token scopes: `kizuna:admin` is
    /// city administrator; `kizuna:role:<role>` that role in the client's organization (the
    /// whole city for a client of none); the narrow scopes their right in the client's
    /// organization (nothing for a client of none). Other scopes give nothing.
    pub fn client<'a>(
        client_id: &str,
        name: &str,
        org_id: Option<&str>,
        scopes: impl IntoIterator<Item = &'a str>,
    ) -> Caller {
        let mut roles = Vec::new();
        let mut grants = Vec::new();
        let role_scope = org_id.unwrap_or(CITY_WIDE).to_string();
        for scope in scopes {
            if scope == ADMIN_SCOPE {
                roles.push((Role::CityAdmin, CITY_WIDE.to_string()));
            } else if let Some(role) = scope.strip_prefix(ROLE_SCOPE_PREFIX) {
                if let Ok(role) = role.parse() {
                    roles.push((role, role_scope.clone()));
                }
            } else if let Some(org) = org_id {
                let held: &[Grant] = match scope {
                    // An organization's device automation also suspends and retires its
                    // devices, which holds and revokes their certificates.
                    DEVICES_SCOPE => &[
                        Grant::Action(Action::ManageDevices),
                        Grant::Action(Action::RevokeCertificates),
                    ],
                    REVOKE_SCOPE => &[Grant::Action(Action::RevokeCertificates)],
                    s if s.starts_with(CERT_SCOPE_PREFIX) => {
                        grants.push((Grant::Profile(s.to_string()), org.to_string()));
                        continue;
                    }
                    _ => continue,
                };
                grants.extend(held.iter().map(|g| (g.clone(), org.to_string())));
            }
        }
        Caller {
            actor: Actor::client(client_id),
            user_id: None,
            name: name.to_string(),
            roles,
            grants,
        }
    }

    /// True for a person (not an automation client).
    pub fn is_person(&self) -> bool {
        self.user_id.is_some()
    }

    pub fn reach(&self, action: Action) -> Reach {
        let mut orgs = BTreeSet::new();
        let held = self
            .roles
            .iter()
            .filter(|(role, _)| allows(*role, action))
            .map(|(_, scope)| scope)
            .chain(self.grants.iter().filter_map(|(grant, org)| {
                // Managing devices includes seeing them; revoking includes seeing what.
                let implied = matches!(
                    (grant, action),
                    (Grant::Action(Action::ManageDevices), Action::ViewDevices)
                        | (
                            Grant::Action(Action::RevokeCertificates),
                            Action::ViewDevices
                        )
                );
                (*grant == Grant::Action(action) || implied).then_some(org)
            }));
        for scope in held {
            if scope == CITY_WIDE {
                return Reach::City;
            }
            orgs.insert(scope.clone());
        }
        if orgs.is_empty() {
            Reach::Nowhere
        } else {
            Reach::Orgs(orgs)
        }
    }

    /// True when the caller may take `action` somewhere.
    pub fn may(&self, action: Action) -> bool {
        self.reach(action) != Reach::Nowhere
    }

    /// True when the caller may take `action` on something of organization `org` (`None`:
    /// something of the city itself, which only city-wide roles reach).
    pub fn may_in(&self, action: Action, org: Option<&str>) -> bool {
        match (self.reach(action), org) {
            (Reach::City, _) => true,
            (Reach::Orgs(orgs), Some(org)) => orgs.contains(org),
            _ => false,
        }
    }

    /// Refuses unless the caller may take `action` somewhere.
    pub fn require(&self, action: Action) -> Result<Reach, Denied> {
        match self.reach(action) {
            Reach::Nowhere => Err(Denied::Forbidden(format!(
                "none of your roles ({}) allows this",
                self.role_names()
            ))),
            reach => Ok(reach),
        }
    }

    /// Refuses unless the caller may take `action` on something of `org`; something out of
    /// reach answers "not found" ([`Denied::NotFound`] naming `what`).
    pub fn require_in(&self, action: Action, org: Option<&str>, what: &str) -> Result<(), Denied> {
        self.require(action)?;
        if self.may_in(action, org) {
            Ok(())
        } else {
            Err(Denied::NotFound(what.to_string()))
        }
    }

    /// May the caller request a certificate of the profile guarded by `profile_scope` for
    /// organization `org`: with a role that issues there, or an automation client's
    /// `kizuna:cert:<profile>` in its own organization.
    pub fn may_issue(&self, profile_scope: &str, org: Option<&str>) -> bool {
        self.may_in(Action::IssueCertificates, org)
            || self.grants.iter().any(|(grant, held)| {
                *grant == Grant::Profile(profile_scope.to_string()) && Some(held.as_str()) == org
            })
    }

    /// The organization a caller acts for when it names none: the one organization its
    /// rights for `action` reach, if exactly one; `None` for the city or several.
    pub fn own_org(&self, action: Action) -> Option<String> {
        match self.reach(action) {
            Reach::Orgs(orgs) if orgs.len() == 1 => orgs.into_iter().next(),
            _ => None,
        }
    }

    pub fn role_names(&self) -> String {
        let mut names: Vec<String> = self
            .roles
            .iter()
            .map(|(r, s)| format!("{}@{s}", r.as_str()))
            .collect();
        names.extend(self.grants.iter().map(|(g, s)| match g {
            Grant::Action(a) => format!("{a:?}@{s}"),
            Grant::Profile(p) => format!("{p}@{s}"),
        }));
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }

    /// True when a role is city administrator (whose sign-in needs the higher level).
    pub fn is_city_admin(&self) -> bool {
        self.roles.iter().any(|(r, _)| *r == Role::CityAdmin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff(roles: &[(Role, &str)]) -> Caller {
        Caller::person(
            "u",
            "u",
            roles.iter().map(|(r, s)| (*r, s.to_string())).collect(),
        )
    }

    #[test]
    fn an_org_admin_reaches_only_its_own_organization() {
        let s = staff(&[(Role::OrgAdmin, "org-a")]);
        assert!(s.may_in(Action::RevokeCertificates, Some("org-a")));
        assert!(!s.may_in(Action::RevokeCertificates, Some("org-b")));
        assert!(!s.may_in(Action::RevokeCertificates, None));
        assert!(!s.may(Action::ManageOrgs));
        assert!(!s.may(Action::ViewAudit));
        assert!(matches!(
            s.require_in(Action::ViewDevices, Some("org-b"), "device x"),
            Err(Denied::NotFound(_))
        ));
    }

    #[test]
    fn an_auditor_reads_everything_and_changes_nothing() {
        let s = staff(&[(Role::Auditor, CITY_WIDE)]);
        for action in Action::ALL {
            let reads = matches!(
                action,
                Action::ViewDashboard
                    | Action::ViewDevices
                    | Action::ViewAudit
                    | Action::ViewUsers
                    | Action::ViewClients
                    | Action::ViewOrgs
                    | Action::ViewReviews
                    | Action::ViewUpstreams
            );
            assert_eq!(s.may(action), reads, "{action:?}");
        }
    }

    #[test]
    fn roles_add_up_and_the_widest_scope_wins() {
        let s = staff(&[(Role::Installer, "org-a"), (Role::OrgAdmin, "org-b")]);
        assert_eq!(
            s.reach(Action::ManageDevices),
            Reach::Orgs(["org-a".to_string(), "org-b".to_string()].into())
        );
        assert!(!s.may_in(Action::RevokeCertificates, Some("org-a")));
        let c = staff(&[(Role::OrgAdmin, "org-b"), (Role::CityAdmin, CITY_WIDE)]);
        assert_eq!(c.reach(Action::RevokeCertificates), Reach::City);
        assert_eq!(staff(&[]).reach(Action::ViewDashboard), Reach::Nowhere);
    }

    #[test]
    fn a_clients_narrow_scopes_reach_its_own_organization_only() {
        let c = Caller::client(
            "c",
            "lamps",
            Some("org-a"),
            [
                DEVICES_SCOPE,
                "kizuna:cert:device",
                "openid",
                "kizuna:unknown",
            ],
        );
        assert!(c.may_in(Action::ManageDevices, Some("org-a")));
        assert!(c.may_in(Action::ViewDevices, Some("org-a")));
        assert!(!c.may_in(Action::ManageDevices, Some("org-b")));
        assert!(c.may_in(Action::RevokeCertificates, Some("org-a")));
        assert!(!c.may(Action::ManageUsers));
        assert!(c.may_issue("kizuna:cert:device", Some("org-a")));
        assert!(!c.may_issue("kizuna:cert:service", Some("org-a")));
        assert!(!c.may_issue("kizuna:cert:device", Some("org-b")));
        assert_eq!(c.own_org(Action::ManageDevices).as_deref(), Some("org-a"));
        // Without an organization the narrow scopes give nothing.
        let none = Caller::client("c", "x", None, [DEVICES_SCOPE, REVOKE_SCOPE]);
        assert_eq!(none.reach(Action::ManageDevices), Reach::Nowhere);
        assert_eq!(none.reach(Action::RevokeCertificates), Reach::Nowhere);
    }

    #[test]
    fn a_clients_role_scopes_are_roles_in_its_organization() {
        let c = Caller::client(
            "c",
            "x",
            Some("org-a"),
            ["kizuna:role:org-admin", "kizuna:role:nonsense"],
        );
        assert_eq!(c.roles, vec![(Role::OrgAdmin, "org-a".to_string())]);
        let city = Caller::client("c", "x", None, [ADMIN_SCOPE]);
        assert!(city.is_city_admin());
        assert!(city.may_issue("kizuna:cert:service", Some("any")));
    }

    #[test]
    fn a_city_administrator_needs_the_higher_level() {
        let levels = Levels::default();
        assert_eq!(levels.needed(&[(Role::Auditor, CITY_WIDE.into())]), 2);
        assert_eq!(
            levels.needed(&[
                (Role::Auditor, CITY_WIDE.into()),
                (Role::CityAdmin, CITY_WIDE.into())
            ]),
            3
        );
    }

    #[test]
    fn every_kizuna_scope_is_a_management_scope() {
        for s in [
            ADMIN_SCOPE,
            "kizuna:role:auditor",
            DEVICES_SCOPE,
            REVOKE_SCOPE,
            "kizuna:cert:x",
        ] {
            assert!(is_management_scope(s), "{s}");
        }
        for s in ["openid", "profile", "kizuna", "email"] {
            assert!(!is_management_scope(s), "{s}");
        }
    }
}
