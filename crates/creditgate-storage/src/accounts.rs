//! People and their rights as stored: users, memberships, sessions, invitations, password
//! resets and sign-in throttling. Secrets (session and link tokens) are stored only as hashes.

use creditgate_core::accounts::{Email, Invite, Member, Role, Session, User};
use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{InviteId, OrganizationId, UserId};
use creditgate_core::ledger::{LedgerError, LedgerResult};

use crate::run::Step;
use crate::statement::{Columns, Param};
use crate::Database;

pub(crate) fn corrupt(what: &str) -> LedgerError {
    LedgerError::Corrupt(format!("stored account data has an invalid {what}"))
}

fn text(s: impl ToString) -> Param {
    Param::Text(s.to_string())
}

fn email_col(row: &dyn Columns, i: usize) -> LedgerResult<Email> {
    Email::parse(&row.text(i)?).map_err(|_| corrupt("email"))
}

fn role_col(row: &dyn Columns, i: usize) -> LedgerResult<Role> {
    Role::parse(&row.text(i)?).map_err(|_| corrupt("role"))
}

/// Maps `id, email, name, created_at` starting at column `i`.
fn user_at(row: &dyn Columns, i: usize) -> LedgerResult<User> {
    Ok(User {
        id: UserId::parse(&row.text(i)?).map_err(|_| corrupt("user id"))?,
        email: email_col(row, i + 1)?,
        name: row.text(i + 2)?,
        created_at: Timestamp::from_millis(row.int(i + 3)?),
    })
}

fn member_row(row: &dyn Columns) -> LedgerResult<Member> {
    Ok(Member {
        user: user_at(row, 0)?,
        org: OrganizationId::parse(&row.text(4)?).map_err(|_| corrupt("organization"))?,
        role: role_col(row, 5)?,
        added_at: Timestamp::from_millis(row.int(6)?),
    })
}

fn invite_row(row: &dyn Columns) -> LedgerResult<Invite> {
    Ok(Invite {
        id: InviteId::parse(&row.text(0)?).map_err(|_| corrupt("invite id"))?,
        org: OrganizationId::parse(&row.text(1)?).map_err(|_| corrupt("organization"))?,
        email: email_col(row, 2)?,
        role: role_col(row, 3)?,
        invited_at: Timestamp::from_millis(row.int(4)?),
        expires_at: Timestamp::from_millis(row.int(5)?),
        accepted_at: row.opt_int(6)?.map(Timestamp::from_millis),
    })
}

/// Why accepting an invitation did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptRefused {
    /// The link was used, deleted or expired.
    LinkSpent,
    /// The email is already a member of the organization.
    AlreadyMember,
}

impl Database {
    /// Adds a user; `false` when the email is taken.
    pub async fn create_user(
        &self,
        user: &User,
        password_hash: Option<&str>,
    ) -> LedgerResult<bool> {
        let n = self
            .execute(
                "INSERT INTO users (id, email, name, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (email) DO NOTHING",
                vec![
                    text(&user.id),
                    text(&user.email),
                    text(&user.name),
                    Param::OptText(password_hash.map(str::to_owned)),
                    Param::Int(user.created_at.millis()),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// The user with this email, with their password hash (if they set a password).
    pub async fn user_by_email(
        &self,
        email: &Email,
    ) -> LedgerResult<Option<(User, Option<String>)>> {
        self.query_opt(
            "SELECT id, email, name, created_at, password_hash FROM users WHERE email = $1",
            vec![text(email)],
            |row| Ok((user_at(row, 0)?, row.opt_text(4)?)),
        )
        .await
    }

    /// The user's password hash.
    pub async fn password_hash(&self, user: &UserId) -> LedgerResult<Option<String>> {
        let row = self
            .query_opt(
                "SELECT password_hash FROM users WHERE id = $1",
                vec![text(user)],
                |row| row.opt_text(0),
            )
            .await?;
        Ok(row.flatten())
    }

    /// Adds a member; `false` if the user already is one.
    pub async fn add_member(
        &self,
        org: &OrganizationId,
        user: &UserId,
        role: Role,
        now: Timestamp,
    ) -> LedgerResult<bool> {
        let n = self
            .execute(
                "INSERT INTO memberships (org_id, user_id, role, added_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (org_id, user_id) DO NOTHING",
                vec![text(org), text(user), text(role.as_str()), Param::Int(now.millis())],
            )
            .await?;
        Ok(n == 1)
    }

    /// The organization's members (optionally only the one with `email`), by join date.
    pub async fn members(
        &self,
        org: &OrganizationId,
        email: Option<&Email>,
    ) -> LedgerResult<Vec<Member>> {
        self.query(
            "SELECT u.id, u.email, u.name, u.created_at, m.org_id, m.role, m.added_at \
             FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.org_id = $1 AND ($2 = '' OR u.email = $2) ORDER BY m.added_at, u.id",
            vec![text(org), text(email.map(Email::as_str).unwrap_or(""))],
            member_row,
        )
        .await
    }

    /// One member of the organization.
    pub async fn member(
        &self,
        org: &OrganizationId,
        user: &UserId,
    ) -> LedgerResult<Option<Member>> {
        self.query_opt(
            "SELECT u.id, u.email, u.name, u.created_at, m.org_id, m.role, m.added_at \
             FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.org_id = $1 AND m.user_id = $2",
            vec![text(org), text(user)],
            member_row,
        )
        .await
    }

    /// Every organization the user belongs to, oldest membership first.
    pub async fn memberships_of(&self, user: &UserId) -> LedgerResult<Vec<Member>> {
        self.query(
            "SELECT u.id, u.email, u.name, u.created_at, m.org_id, m.role, m.added_at \
             FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.user_id = $1 ORDER BY m.added_at, m.org_id",
            vec![text(user)],
            member_row,
        )
        .await
    }

    /// Sets a member's role; never the owner's (that moves only by transfer). `false` if
    /// nothing changed.
    pub async fn set_role(
        &self,
        org: &OrganizationId,
        user: &UserId,
        role: Role,
    ) -> LedgerResult<bool> {
        let n = self
            .execute(
                "UPDATE memberships SET role = $3 WHERE org_id = $1 AND user_id = $2 \
                 AND role <> 'owner' AND $3 <> 'owner'",
                vec![text(org), text(user), text(role.as_str())],
            )
            .await?;
        Ok(n == 1)
    }

    /// Removes a member (never the owner) and ends their sessions in that organization.
    pub async fn remove_member(&self, org: &OrganizationId, user: &UserId) -> LedgerResult<bool> {
        let steps = vec![
            Step::new(
                "DELETE FROM memberships WHERE org_id = $1 AND user_id = $2 AND role <> 'owner'",
                vec![text(org), text(user)],
            )
            .expect(1),
            Step::new(
                "DELETE FROM sessions WHERE org_id = $1 AND user_id = $2",
                vec![text(org), text(user)],
            ),
        ];
        Ok(self.transaction(steps).await?.is_ok())
    }

    /// Makes `to` the owner and `from` (the owner) an admin, in one transaction. `false` if
    /// `from` is not the owner or `to` is not a member.
    pub async fn transfer_ownership(
        &self,
        org: &OrganizationId,
        from: &UserId,
        to: &UserId,
    ) -> LedgerResult<bool> {
        let steps = vec![
            Step::new(
                "UPDATE memberships SET role = 'admin' WHERE org_id = $1 AND user_id = $2 \
                 AND role = 'owner'",
                vec![text(org), text(from)],
            )
            .expect(1),
            Step::new(
                "UPDATE memberships SET role = 'owner' WHERE org_id = $1 AND user_id = $2 \
                 AND user_id <> $3",
                vec![text(org), text(to), text(from)],
            )
            .expect(1),
        ];
        Ok(self.transaction(steps).await?.is_ok())
    }

    /// Stores a new session (its token only as a hash).
    pub async fn create_session(
        &self,
        token_hash: &str,
        member: &Member,
        csrf_token: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> LedgerResult<()> {
        self.execute(
            "INSERT INTO sessions (token_hash, user_id, org_id, csrf_token, created_at, \
             last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $5, $6)",
            vec![
                text(token_hash),
                text(&member.user.id),
                text(&member.org),
                text(csrf_token),
                Param::Int(now.millis()),
                Param::Int(expires_at.millis()),
            ],
        )
        .await?;
        Ok(())
    }

    /// The live session with this token hash, with the member's current role.
    pub async fn session(&self, token_hash: &str, now: Timestamp) -> LedgerResult<Option<Session>> {
        self.query_opt(
            "SELECT u.id, u.email, u.name, u.created_at, m.org_id, m.role, m.added_at, \
             s.csrf_token, s.expires_at \
             FROM sessions s JOIN memberships m ON m.user_id = s.user_id AND m.org_id = s.org_id \
             JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2",
            vec![text(token_hash), Param::Int(now.millis())],
            |row| {
                Ok(Session {
                    member: member_row(row)?,
                    csrf_token: row.text(7)?,
                    expires_at: Timestamp::from_millis(row.int(8)?),
                })
            },
        )
        .await
    }

    /// Pushes an active session's idle expiry forward.
    pub async fn touch_session(
        &self,
        token_hash: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> LedgerResult<()> {
        self.execute(
            "UPDATE sessions SET last_seen_at = $2, expires_at = $3 WHERE token_hash = $1",
            vec![
                text(token_hash),
                Param::Int(now.millis()),
                Param::Int(expires_at.millis()),
            ],
        )
        .await?;
        Ok(())
    }

    /// Ends one session.
    pub async fn delete_session(&self, token_hash: &str) -> LedgerResult<()> {
        self.execute(
            "DELETE FROM sessions WHERE token_hash = $1",
            vec![text(token_hash)],
        )
        .await?;
        Ok(())
    }

    /// Ends every session of a user (sign-out everywhere); returns how many.
    pub async fn delete_user_sessions(&self, user: &UserId) -> LedgerResult<u64> {
        self.execute("DELETE FROM sessions WHERE user_id = $1", vec![text(user)])
            .await
    }

    /// Stores an invitation (its link token only as a hash).
    pub async fn create_invite(&self, invite: &Invite, token_hash: &str) -> LedgerResult<()> {
        self.execute(
            "INSERT INTO invites (id, org_id, email, role, token_hash, invited_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                text(&invite.id),
                text(&invite.org),
                text(&invite.email),
                text(invite.role.as_str()),
                text(token_hash),
                Param::Int(invite.invited_at.millis()),
                Param::Int(invite.expires_at.millis()),
            ],
        )
        .await?;
        Ok(())
    }

    /// The organization's invitations, newest first.
    pub async fn invites(&self, org: &OrganizationId) -> LedgerResult<Vec<Invite>> {
        self.query(
            "SELECT id, org_id, email, role, invited_at, expires_at, accepted_at FROM invites \
             WHERE org_id = $1 ORDER BY invited_at DESC, id",
            vec![text(org)],
            invite_row,
        )
        .await
    }

    /// One invitation of the organization.
    pub async fn invite(
        &self,
        org: &OrganizationId,
        id: &InviteId,
    ) -> LedgerResult<Option<Invite>> {
        self.query_opt(
            "SELECT id, org_id, email, role, invited_at, expires_at, accepted_at FROM invites \
             WHERE org_id = $1 AND id = $2",
            vec![text(org), text(id)],
            invite_row,
        )
        .await
    }

    /// The invitation a link token belongs to.
    pub async fn invite_by_token(&self, token_hash: &str) -> LedgerResult<Option<Invite>> {
        self.query_opt(
            "SELECT id, org_id, email, role, invited_at, expires_at, accepted_at FROM invites \
             WHERE token_hash = $1",
            vec![text(token_hash)],
            invite_row,
        )
        .await
    }

    /// Deletes an invitation (its link stops working); `false` if there is none.
    pub async fn delete_invite(&self, org: &OrganizationId, id: &InviteId) -> LedgerResult<bool> {
        let n = self
            .execute(
                "DELETE FROM invites WHERE org_id = $1 AND id = $2",
                vec![text(org), text(id)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Uses an invitation link once: marks it accepted, creates `new_user` unless a user with
    /// that email exists, and adds the email's user as a member with the invited role — all in
    /// one transaction.
    pub async fn accept_invite(
        &self,
        token_hash: &str,
        invite: &Invite,
        new_user: &User,
        password_hash: Option<&str>,
        now: Timestamp,
    ) -> LedgerResult<Result<(), AcceptRefused>> {
        let steps = vec![
            Step::new(
                "UPDATE invites SET accepted_at = $2 WHERE token_hash = $1 \
                 AND accepted_at IS NULL AND expires_at > $2",
                vec![text(token_hash), Param::Int(now.millis())],
            )
            .expect(1),
            Step::new(
                "INSERT INTO users (id, email, name, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (email) DO NOTHING",
                vec![
                    text(&new_user.id),
                    text(&invite.email),
                    text(&new_user.name),
                    Param::OptText(password_hash.map(str::to_owned)),
                    Param::Int(now.millis()),
                ],
            ),
            Step::new(
                "INSERT INTO memberships (org_id, user_id, role, added_at) \
                 SELECT $1, id, $2, $3 FROM users WHERE email = $4 \
                 ON CONFLICT (org_id, user_id) DO NOTHING",
                vec![
                    text(&invite.org),
                    text(invite.role.as_str()),
                    Param::Int(now.millis()),
                    text(&invite.email),
                ],
            )
            .expect(1),
        ];
        Ok(match self.transaction(steps).await? {
            Ok(()) => Ok(()),
            Err(0) => Err(AcceptRefused::LinkSpent),
            Err(_) => Err(AcceptRefused::AlreadyMember),
        })
    }

    /// Stores a password-reset link (its token only as a hash).
    pub async fn create_password_reset(
        &self,
        token_hash: &str,
        user: &UserId,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> LedgerResult<()> {
        self.execute(
            "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
            vec![
                text(token_hash),
                text(user),
                Param::Int(now.millis()),
                Param::Int(expires_at.millis()),
            ],
        )
        .await?;
        Ok(())
    }

    /// The user a live (unused, unexpired) reset link belongs to.
    pub async fn password_reset_user(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> LedgerResult<Option<User>> {
        self.query_opt(
            "SELECT u.id, u.email, u.name, u.created_at FROM password_resets r \
             JOIN users u ON u.id = r.user_id \
             WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > $2",
            vec![text(token_hash), Param::Int(now.millis())],
            |row| user_at(row, 0),
        )
        .await
    }

    /// Uses a reset link once: sets the new password and ends every session of the user, in
    /// one transaction. `false` if the link was used or expired meanwhile.
    pub async fn use_password_reset(
        &self,
        token_hash: &str,
        user: &UserId,
        password_hash: &str,
        now: Timestamp,
    ) -> LedgerResult<bool> {
        let steps = vec![
            Step::new(
                "UPDATE password_resets SET used_at = $3 WHERE token_hash = $1 AND user_id = $2 \
                 AND used_at IS NULL AND expires_at > $3",
                vec![text(token_hash), text(user), Param::Int(now.millis())],
            )
            .expect(1),
            Step::new(
                "UPDATE users SET password_hash = $2 WHERE id = $1",
                vec![text(user), text(password_hash)],
            )
            .expect(1),
            Step::new("DELETE FROM sessions WHERE user_id = $1", vec![text(user)]),
        ];
        Ok(self.transaction(steps).await?.is_ok())
    }

    /// Records one failed sign-in for each subject, dropping failures older than `forget_before`.
    pub async fn record_sign_in_failure(
        &self,
        subjects: &[String],
        now: Timestamp,
        forget_before: Timestamp,
    ) -> LedgerResult<()> {
        let mut steps = vec![Step::new(
            "DELETE FROM sign_in_failures WHERE at < $1",
            vec![Param::Int(forget_before.millis())],
        )];
        for s in subjects {
            steps.push(Step::new(
                "INSERT INTO sign_in_failures (subject, at) VALUES ($1, $2)",
                vec![text(s), Param::Int(now.millis())],
            ));
        }
        self.transaction(steps)
            .await?
            .map_err(|_| corrupt("throttle"))
    }

    /// Failed sign-ins of a subject since `since`.
    pub async fn sign_in_failures(&self, subject: &str, since: Timestamp) -> LedgerResult<i64> {
        let n = self
            .query_opt(
                "SELECT COUNT(*) FROM sign_in_failures WHERE subject = $1 AND at >= $2",
                vec![text(subject), Param::Int(since.millis())],
                |row| row.int(0),
            )
            .await?;
        Ok(n.unwrap_or(0))
    }
}
