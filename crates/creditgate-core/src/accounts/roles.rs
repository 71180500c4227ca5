//! The role table of `docs/accounts.md` and the owner rules, enforced here and nowhere else.

use serde::{Deserialize, Serialize};

use super::AccountError;

/// A member's role in one organization. Anthropic's names plus `owner` (exactly one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Billing,
    Developer,
    User,
}

/// What a caller may want to do in an organization (the rows of the role table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read balance, usage and cost reports, the member list and the audit log.
    Read,
    /// Create, limit, disable API keys.
    ManageKeys,
    /// Buy credits, payment methods, auto-reload, billing profile, receipts.
    ManageBilling,
    /// Invite and remove members, change roles, webhooks, admin keys.
    ManageMembers,
    /// Transfer ownership, close the organization.
    Own,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Billing,
        Role::Developer,
        Role::User,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Billing => "billing",
            Role::Developer => "developer",
            Role::User => "user",
        }
    }

    pub fn parse(text: &str) -> Result<Self, AccountError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| {
                AccountError::Invalid(format!(
                    "role: {text:?} is not one of owner, admin, billing, developer, user"
                ))
            })
    }

    /// The role table (`docs/accounts.md`).
    pub fn may(self, action: Action) -> bool {
        use Role::*;
        match action {
            Action::Read => true,
            Action::ManageKeys => matches!(self, Owner | Admin | Developer),
            Action::ManageBilling => matches!(self, Owner | Admin | Billing),
            Action::ManageMembers => matches!(self, Owner | Admin),
            Action::Own => self == Owner,
        }
    }

    /// A 403 unless the role allows `action`.
    pub fn require(self, action: Action) -> Result<(), AccountError> {
        if self.may(action) {
            return Ok(());
        }
        let what = match action {
            Action::Read => "read this organization",
            Action::ManageKeys => "manage API keys",
            Action::ManageBilling => "manage billing",
            Action::ManageMembers => "manage members, invites and admin keys",
            Action::Own => "do what only the owner may",
        };
        Err(AccountError::Forbidden(format!(
            "The {} role may not {what}.",
            self.as_str()
        )))
    }
}

/// Whether `actor` (with `actor_role`) may give `target` (now `current`) the role `new`.
/// Ownership moves only by transfer; nobody changes their own role (so nobody raises it).
pub fn check_role_change(
    actor_role: Role,
    actor_is_target: bool,
    current: Role,
    new: Role,
) -> Result<(), AccountError> {
    actor_role.require(Action::ManageMembers)?;
    if actor_is_target {
        return Err(AccountError::Forbidden(
            "A member cannot change their own role.".to_owned(),
        ));
    }
    if new == Role::Owner {
        return Err(AccountError::Invalid(
            "role: owner is given only by transferring ownership".to_owned(),
        ));
    }
    if current == Role::Owner {
        return Err(AccountError::Forbidden(
            "The owner's role changes only by transferring ownership.".to_owned(),
        ));
    }
    Ok(())
}

/// Whether `actor` may remove `target` from the organization. Members may leave by
/// themselves; the owner can neither be removed nor leave (an organization always has one
/// owner) until ownership is transferred.
pub fn check_removal(
    actor_role: Role,
    actor_is_target: bool,
    target: Role,
) -> Result<(), AccountError> {
    if target == Role::Owner {
        return Err(AccountError::Forbidden(
            "The owner cannot be removed or leave; transfer ownership first.".to_owned(),
        ));
    }
    if actor_is_target {
        return Ok(());
    }
    actor_role.require(Action::ManageMembers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_table_matches_the_contract() {
        let expect = |action, allowed: &[Role]| {
            for role in Role::ALL {
                assert_eq!(
                    role.may(action),
                    allowed.contains(&role),
                    "{role:?} {action:?}"
                );
            }
        };
        use Role::*;
        expect(Action::Read, &Role::ALL);
        expect(Action::ManageKeys, &[Owner, Admin, Developer]);
        expect(Action::ManageBilling, &[Owner, Admin, Billing]);
        expect(Action::ManageMembers, &[Owner, Admin]);
        expect(Action::Own, &[Owner]);
        assert!(Role::parse("superuser").is_err());
        assert_eq!(Role::parse("billing").unwrap(), Billing);
    }

    #[test]
    fn owner_rules() {
        use Role::*;
        assert!(check_role_change(Admin, true, Admin, Owner).is_err());
        assert!(
            check_role_change(User, true, User, Admin).is_err(),
            "no self-raise"
        );
        assert!(check_role_change(Developer, false, User, Developer).is_err());
        assert!(check_role_change(Admin, false, Owner, User).is_err());
        assert!(check_role_change(Owner, false, User, Owner).is_err());
        assert!(check_role_change(Admin, false, User, Billing).is_ok());
        assert!(
            check_removal(Owner, true, Owner).is_err(),
            "the last owner cannot leave"
        );
        assert!(check_removal(Admin, false, Owner).is_err());
        assert!(check_removal(User, true, User).is_ok());
        assert!(check_removal(Billing, false, User).is_err());
        assert!(check_removal(Admin, false, Developer).is_ok());
    }
}
