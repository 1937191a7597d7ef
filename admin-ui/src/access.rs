//! Who may do what in the console and the admin API: staff roles, each held in a scope (one
//! organization, or the whole city), against the console's actions. Pure rules; the server
//! checks them for every page and API call.

use std::collections::BTreeSet;

use kizuna_core::audit::Actor;
use kizuna_idp::users::{CITY_WIDE, Role};

use crate::error::ConsoleError;

/// Everything the console can do, as the authorization table names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    ViewDashboard,
    ViewDevices,
    /// Register devices, create and void enrollment tokens.
    ManageDevices,
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
    /// Approve a client an organization administrator registered; register admin scopes.
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

/// A signed-in staff member (console) or an automation client (API), with its roles.
#[derive(Debug, Clone)]
pub struct Staff {
    pub actor: Actor,
    /// The account, for a person.
    pub user_id: Option<String>,
    /// A display name for the page header.
    pub name: String,
    pub roles: Vec<(Role, String)>,
}

impl Staff {
    pub fn reach(&self, action: Action) -> Reach {
        let mut orgs = BTreeSet::new();
        for (role, scope) in &self.roles {
            if !allows(*role, action) {
                continue;
            }
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
    pub fn require(&self, action: Action) -> Result<Reach, ConsoleError> {
        match self.reach(action) {
            Reach::Nowhere => Err(ConsoleError::Forbidden(format!(
                "none of your roles ({}) allows this",
                self.role_names()
            ))),
            reach => Ok(reach),
        }
    }

    /// Refuses unless the caller may take `action` on something of `org`. Something out of
    /// reach answers "not found", so an organization cannot probe another's ids.
    pub fn require_in(
        &self,
        action: Action,
        org: Option<&str>,
        what: &str,
    ) -> Result<(), ConsoleError> {
        self.require(action)?;
        if self.may_in(action, org) {
            Ok(())
        } else {
            Err(ConsoleError::NotFound(what.to_string()))
        }
    }

    pub fn role_names(&self) -> String {
        if self.roles.is_empty() {
            return "none".into();
        }
        self.roles
            .iter()
            .map(|(r, s)| format!("{}@{s}", r.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// True when a role is city administrator (whose console sign-in needs the higher level).
    pub fn is_city_admin(&self) -> bool {
        self.roles.iter().any(|(r, _)| *r == Role::CityAdmin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Action {
        const ALL: [Action; 15] = [
            Action::ViewDashboard,
            Action::ViewDevices,
            Action::ManageDevices,
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
        ];
    }

    fn staff(roles: &[(Role, &str)]) -> Staff {
        Staff {
            actor: Actor::user("u"),
            user_id: Some("u".into()),
            name: "u".into(),
            roles: roles.iter().map(|(r, s)| (*r, s.to_string())).collect(),
        }
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
            Err(ConsoleError::NotFound(_))
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
}
