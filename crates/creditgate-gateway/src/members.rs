//! The accounts service: every change to organizations, members, roles, invitations, keys,
//! limits and grants goes through here — from HTTP and from the CLI alike — checked against the
//! role rules and written to the audit log with who did it and from where.

use creditgate_core::accounts::{
    check_password, check_removal, check_role_change, parse_name, Action, Actor, AdminKeyRecord,
    AuditEvent, Email, Invite, KeyLimits, Member, Role, User, INVITE_TTL_MS,
};
use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{AdminKeyId, InviteId, OrganizationId, UserId};
use creditgate_core::keys::{AdminKeySecret, ApiKeyRecord, ApiKeySecret, KeyStatus};
use creditgate_core::ledger::{LedgerStore, Organization};
use creditgate_storage::{AcceptRefused, Database};
use serde_json::{json, Value};

use crate::caller::{token_hash, OrgCaller};
use crate::error::ApiError;
use crate::mail::Mailer;
use crate::App;

pub use crate::ids::new_id;

/// A member in Anthropic's user shape.
pub fn user_json(m: &Member) -> Value {
    json!({
        "id": m.user.id,
        "type": "user",
        "email": m.user.email,
        "name": m.user.name,
        "role": m.role.as_str(),
        "added_at": m.added_at.to_rfc3339(),
    })
}

/// One change being made: by whom, from where, when. Its [`Change::audit`] appends the event.
pub struct Change<'a> {
    pub db: &'a Database,
    pub actor: Actor,
    pub ip: Option<String>,
    pub now: Timestamp,
}

impl<'a> Change<'a> {
    pub fn new(db: &'a Database, actor: Actor, ip: Option<String>, now: Timestamp) -> Self {
        Self { db, actor, ip, now }
    }

    /// A change made by an organization's caller.
    pub fn by(db: &'a Database, caller: &OrgCaller, now: Timestamp) -> Self {
        Self::new(db, caller.actor.clone(), caller.ip.clone(), now)
    }

    /// Appends one audit event. `details` must never hold a secret.
    pub async fn audit(
        &self,
        org: &OrganizationId,
        action: &str,
        target_type: &str,
        target_id: &str,
        details: Value,
    ) -> Result<(), ApiError> {
        self.db
            .append_audit(&AuditEvent {
                id: String::new(),
                org: Some(org.to_string()),
                at: self.now,
                actor: self.actor.clone(),
                action: action.to_owned(),
                target_type: target_type.to_owned(),
                target_id: target_id.to_owned(),
                ip: self.ip.clone(),
                details,
            })
            .await?;
        Ok(())
    }
}

/// Creates an organization (the operator's, or a sign-up's) and, with `owner_email`, invites
/// its owner.
pub async fn create_organization(
    change: &Change<'_>,
    id: Option<OrganizationId>,
    name: &str,
    owner: Option<(&Email, &Mailer, &str)>,
) -> Result<Organization, ApiError> {
    let name = parse_name("name", name)?;
    let id = match id {
        Some(id) => id,
        None => new_id("org", OrganizationId::parse)?,
    };
    let org = change.db.create_organization(id, name).await?;
    change
        .audit(
            &org.id,
            "organization.created",
            "organization",
            org.id.as_str(),
            json!({"name": org.name}),
        )
        .await?;
    if let Some((email, mailer, public_url)) = owner {
        invite(
            change,
            &org.id,
            Role::Owner,
            email,
            Role::Owner,
            mailer,
            public_url,
        )
        .await?;
    }
    Ok(org)
}

/// The organization's owner, if one has joined.
pub async fn owner(db: &Database, org: &OrganizationId) -> Result<Option<Member>, ApiError> {
    let members = db.members(org, None).await?;
    Ok(members.into_iter().find(|m| m.role == Role::Owner))
}

fn has_owner_already() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::CONFLICT,
        "invalid_request_error",
        "This organization has an owner; ownership moves only by transfer_ownership.",
    )
}

/// Renames an organization.
pub async fn rename_organization(
    change: &Change<'_>,
    org: &OrganizationId,
    name: &str,
) -> Result<(), ApiError> {
    let name = parse_name("name", name)?;
    change.db.organization(org).await?;
    change.db.rename_organization(org, &name).await?;
    change
        .audit(
            org,
            "organization.renamed",
            "organization",
            org.as_str(),
            json!({"name": name}),
        )
        .await
}

/// The operator invites the owner of an organization that has none (created without an owner,
/// or whose owner's invitation expired). A pending owner invitation is withdrawn first, so at
/// most one link can make an owner; an organization with an owner answers 409.
pub async fn invite_owner(
    change: &Change<'_>,
    org: &OrganizationId,
    email: &Email,
    mailer: &Mailer,
    public_url: &str,
) -> Result<Invite, ApiError> {
    change.db.organization(org).await?;
    if owner(change.db, org).await?.is_some() {
        return Err(has_owner_already());
    }
    for earlier in change.db.invites(org).await? {
        if earlier.role == Role::Owner && earlier.status(change.now) == "pending" {
            change.db.delete_invite(org, &earlier.id).await?;
            change
                .audit(
                    org,
                    "invite.deleted",
                    "invite",
                    earlier.id.as_str(),
                    json!({"email": earlier.email, "role": "owner", "replaced": true}),
                )
                .await?;
        }
    }
    invite(
        change,
        org,
        Role::Owner,
        email,
        Role::Owner,
        mailer,
        public_url,
    )
    .await
}

/// Invites `email` to join with `role`, and emails the single-use link (7 days).
pub async fn invite(
    change: &Change<'_>,
    org: &OrganizationId,
    inviter: Role,
    email: &Email,
    role: Role,
    mailer: &Mailer,
    public_url: &str,
) -> Result<Invite, ApiError> {
    inviter.require(Action::ManageMembers)?;
    let owner_invite = inviter == Role::Owner && role == Role::Owner && change.actor.kind != "user";
    if role == Role::Owner && !owner_invite {
        return Err(ApiError::invalid_request(
            "role: owner is given only by transferring ownership",
        ));
    }
    if !change.db.members(org, Some(email)).await?.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "invalid_request_error",
            format!("{email} is already a member"),
        ));
    }
    let token = crate::passwords::random_token();
    let invite = Invite {
        id: new_id("invite", InviteId::parse)?,
        org: org.clone(),
        email: email.clone(),
        role,
        invited_at: change.now,
        expires_at: change.now.plus_millis(INVITE_TTL_MS),
        accepted_at: None,
    };
    let org_name = change.db.organization(org).await?.name;
    change
        .db
        .create_invite(&invite, &token_hash(&token))
        .await?;
    let body = format!(
        "You are invited to join {org_name} on creditgate as {}.\n\n\
         Accept here (the link works once, for 7 days):\n{public_url}/join/{token}\n",
        role.as_str()
    );
    let subject = format!("Join {org_name} on creditgate");
    if let Err(e) = mailer.send(email.as_str(), &subject, body).await {
        // An invitation nobody received is withdrawn: the request changed nothing.
        change.db.delete_invite(org, &invite.id).await?;
        return Err(ApiError::unavailable(e.to_string()));
    }
    change
        .audit(
            org,
            "invite.created",
            "invite",
            invite.id.as_str(),
            json!({"email": email, "role": role.as_str()}),
        )
        .await?;
    Ok(invite)
}

/// Who joins by an invitation: the existing account of its email (whose password must be
/// given), or a new one with its name and the hash of a password good enough to keep.
async fn joining_user(
    app: &App,
    invite: &Invite,
    name: Option<String>,
    password: String,
    now: Timestamp,
) -> Result<(User, Option<String>), ApiError> {
    match app.db.user_by_email(&invite.email).await? {
        Some((user, stored)) => {
            if !crate::passwords::verify_password(password, stored).await {
                return Err(ApiError::authentication(
                    "An account with this email exists: give its password to join.",
                ));
            }
            Ok((user, None))
        }
        None => {
            let name = parse_name("name", name.as_deref().unwrap_or(""))?;
            check_password(&password, invite.email.as_str())?;
            let user = User {
                id: new_id("user", UserId::parse)?,
                email: invite.email.clone(),
                name,
                created_at: now,
            };
            Ok((user, Some(crate::passwords::hash_password(password).await?)))
        }
    }
}

/// Uses an invitation link: creates the account (or checks the existing account's password),
/// adds the membership, and returns the new member.
pub async fn accept_invite(
    app: &App,
    token: &str,
    name: Option<String>,
    password: String,
    ip: Option<String>,
) -> Result<Member, ApiError> {
    let spent = || ApiError::not_found("This invitation was used, withdrawn or has expired.");
    let hash = token_hash(token);
    let now = app.clock.now();
    let invite = app
        .db
        .invite_by_token(&hash)
        .await?
        .filter(|i| i.status(now) == "pending");
    let invite = invite.ok_or_else(spent)?;
    // The schema allows one owner; a second would be refused there, this says why.
    if invite.role == Role::Owner && owner(&app.db, &invite.org).await?.is_some() {
        return Err(has_owner_already());
    }
    let (user, password_hash) = joining_user(app, &invite, name, password, now).await?;
    match app
        .db
        .accept_invite(&hash, &invite, &user, password_hash.as_deref(), now)
        .await?
    {
        Ok(()) => {}
        Err(AcceptRefused::LinkSpent) => return Err(spent()),
        Err(AcceptRefused::AlreadyMember) => {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "invalid_request_error",
                "This account is already a member of the organization.",
            ))
        }
    }
    let joined = app
        .db
        .user_by_email(&invite.email)
        .await?
        .map(|(u, _)| u.id);
    let member = match joined {
        Some(id) => app.db.member(&invite.org, &id).await?,
        None => None,
    };
    let member = member.ok_or_else(|| ApiError::internal("membership lost"))?;
    let change = Change::new(&app.db, Actor::user(member.user.id.as_str()), ip, now);
    change
        .audit(
            &invite.org,
            "invite.accepted",
            "invite",
            invite.id.as_str(),
            json!({"user_id": member.user.id, "role": member.role.as_str()}),
        )
        .await?;
    Ok(member)
}

fn is_self(caller: &OrgCaller, user: &UserId) -> bool {
    caller.user.as_ref().is_some_and(|u| &u.id == user)
}

async fn member_or_404(
    db: &Database,
    org: &OrganizationId,
    user: &UserId,
) -> Result<Member, ApiError> {
    db.member(org, user)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No user {user} in this organization.")))
}

/// Changes a member's role under the owner rules.
pub async fn change_role(
    caller: &OrgCaller,
    change: &Change<'_>,
    user: &UserId,
    role: Role,
) -> Result<Member, ApiError> {
    let target = member_or_404(change.db, &caller.org, user).await?;
    check_role_change(caller.role, is_self(caller, user), target.role, role)?;
    if target.role != role {
        change.db.set_role(&caller.org, user, role).await?;
        change
            .audit(
                &caller.org,
                "user.role_changed",
                "user",
                user.as_str(),
                json!({"from": target.role.as_str(), "to": role.as_str()}),
            )
            .await?;
    }
    member_or_404(change.db, &caller.org, user).await
}

/// Removes a member (or lets a member leave); never the owner.
pub async fn remove_member(
    caller: &OrgCaller,
    change: &Change<'_>,
    user: &UserId,
) -> Result<(), ApiError> {
    // The role is checked before the id is looked up, so that a role without the right learns
    // nothing about which ids exist.
    if !is_self(caller, user) {
        caller.require(Action::ManageMembers)?;
    }
    let target = member_or_404(change.db, &caller.org, user).await?;
    check_removal(caller.role, is_self(caller, user), target.role)?;
    if !change.db.remove_member(&caller.org, user).await? {
        return Err(ApiError::not_found(format!(
            "No user {user} in this organization."
        )));
    }
    change
        .audit(
            &caller.org,
            "user.removed",
            "user",
            user.as_str(),
            json!({"email": target.user.email}),
        )
        .await
}

/// Hands ownership to another member; the owner becomes an admin.
pub async fn transfer_ownership(
    caller: &OrgCaller,
    change: &Change<'_>,
    to: &UserId,
) -> Result<(), ApiError> {
    caller.require(Action::Own)?;
    let from = caller.user.as_ref().ok_or_else(|| {
        ApiError::permission("Only the owner, signed in, may transfer ownership.")
    })?;
    member_or_404(change.db, &caller.org, to).await?;
    if !change
        .db
        .transfer_ownership(&caller.org, &from.id, to)
        .await?
    {
        return Err(ApiError::invalid_request("user_id: must be another member"));
    }
    change
        .audit(
            &caller.org,
            "organization.ownership_transferred",
            "user",
            to.as_str(),
            json!({"from": from.id}),
        )
        .await
}

/// Creates an API key with limits; the secret is returned to be shown once.
pub async fn create_api_key(
    change: &Change<'_>,
    org: &OrganizationId,
    name: &str,
    limits: KeyLimits,
    expires_at: Option<Timestamp>,
) -> Result<(ApiKeyRecord, ApiKeySecret), ApiError> {
    let name = parse_name("name", name)?;
    limits.validate()?;
    if expires_at.is_some_and(|e| e <= change.now) {
        return Err(ApiError::invalid_request(
            "expires_at: must be in the future",
        ));
    }
    let (key, secret) = change
        .db
        .create_api_key_with(org, &name, expires_at, limits, change.actor.clone())
        .await?;
    change
        .audit(org, "api_key.created", "api_key", key.id.as_str(),
            json!({"name": key.name, "limits": key.limits, "expires_at": expires_at.map(|t| t.to_rfc3339())}))
        .await?;
    Ok((key, secret))
}

/// What a key update may change.
#[derive(Debug, Default)]
pub struct KeyUpdate {
    pub name: Option<String>,
    pub status: Option<KeyStatus>,
    pub limits: Option<KeyLimits>,
    pub expires_at: Option<Option<Timestamp>>,
}

/// Renames, disables, archives, limits or re-dates a key of the organization.
pub async fn update_api_key(
    change: &Change<'_>,
    org: &OrganizationId,
    id: &creditgate_core::ids::ApiKeyId,
    update: KeyUpdate,
) -> Result<ApiKeyRecord, ApiError> {
    let not_found = || ApiError::not_found(format!("No API key {id} in this organization."));
    let before = change.db.api_key(org, id).await?.ok_or_else(not_found)?;
    let name = update
        .name
        .as_deref()
        .map(|n| parse_name("name", n))
        .transpose()?;
    if let Some(l) = &update.limits {
        l.validate()?;
    }
    if before.status == KeyStatus::Revoked {
        return Err(ApiError::invalid_request(
            "An archived (revoked) key cannot change.",
        ));
    }
    let key = change
        .db
        .update_api_key(
            org,
            id,
            name.as_deref(),
            update.status,
            update.limits.as_ref(),
            update.expires_at,
        )
        .await?
        .ok_or_else(not_found)?;
    let mut details = serde_json::Map::new();
    if key.name != before.name {
        details.insert("name".into(), json!(key.name));
    }
    if key.status != before.status {
        details.insert("status".into(), json!(key.status));
    }
    if key.limits != before.limits {
        details.insert("limits".into(), json!(key.limits));
    }
    if key.expires_at != before.expires_at {
        details.insert(
            "expires_at".into(),
            json!(key.expires_at.map(|t| t.to_rfc3339())),
        );
    }
    if !details.is_empty() {
        change
            .audit(
                org,
                "api_key.updated",
                "api_key",
                id.as_str(),
                Value::Object(details),
            )
            .await?;
    }
    Ok(key)
}

/// Creates an organization admin key; the secret is returned to be shown once.
pub async fn create_admin_key(
    change: &Change<'_>,
    org: &OrganizationId,
    name: &str,
) -> Result<(AdminKeyRecord, AdminKeySecret), ApiError> {
    let name = parse_name("name", name)?;
    change.db.organization(org).await?;
    let secret = AdminKeySecret::from_random(rand::random());
    let rec = AdminKeyRecord {
        id: new_id("adminkey", AdminKeyId::parse)?,
        org: org.clone(),
        name,
        hint: secret.hint(),
        active: true,
        created_at: change.now,
        created_by: change.actor.clone(),
    };
    change.db.insert_admin_key(&rec, &secret.hash()).await?;
    change
        .audit(
            org,
            "admin_key.created",
            "admin_key",
            rec.id.as_str(),
            json!({"name": rec.name}),
        )
        .await?;
    Ok((rec, secret))
}

/// Deactivates an admin key of the organization (final).
pub async fn deactivate_admin_key(
    change: &Change<'_>,
    org: &OrganizationId,
    id: &AdminKeyId,
) -> Result<(), ApiError> {
    if !change.db.deactivate_admin_key(org, id).await? {
        return Err(ApiError::not_found(format!(
            "No admin key {id} in this organization."
        )));
    }
    change
        .audit(
            org,
            "admin_key.deactivated",
            "admin_key",
            id.as_str(),
            json!({}),
        )
        .await
}

/// Suspends (its keys get 403) or reactivates an organization.
pub async fn set_suspended(
    change: &Change<'_>,
    org: &OrganizationId,
    suspended: bool,
) -> Result<(), ApiError> {
    change.db.organization(org).await?;
    if change.db.organization_suspended(org).await? == suspended {
        return Ok(());
    }
    change.db.set_organization_suspended(org, suspended).await?;
    let action = if suspended {
        "organization.suspended"
    } else {
        "organization.reactivated"
    };
    change
        .audit(org, action, "organization", org.as_str(), json!({}))
        .await
}
