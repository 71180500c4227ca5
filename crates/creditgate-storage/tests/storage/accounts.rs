//! The accounts' storage (users, memberships, sessions, invitations, resets, admin keys, key
//! limits, rate windows, the audit log), on SQLite and on Postgres (when
//! `CREDITGATE_TEST_POSTGRES_URL` is set).

use crate::common::*;
use creditgate_core::accounts::{
    Actor, AdminKeyRecord, AuditEvent, Email, Invite, KeyLimits, Role, User,
};
use creditgate_core::clock::Timestamp;
use creditgate_core::ids::{AdminKeyId, InviteId, UserId};
use creditgate_core::keys::{AdminKeySecret, KeyStatus};
use creditgate_storage::{AcceptRefused, Database};

contract!(
    one_owner_transfer_and_removal,
    sessions_expire_and_end_everywhere,
    invitations_work_once_and_expire,
    password_resets_work_once,
    admin_keys_limits_and_rate_windows,
    audit_log_is_append_only_and_scoped,
    sign_in_failures_are_counted_and_forgotten,
);

fn user(id: &str, email: &str) -> User {
    User {
        id: UserId::parse(id).unwrap(),
        email: Email::parse(email).unwrap(),
        name: id.to_owned(),
        created_at: Timestamp::from_millis(1),
    }
}

async fn with_member(db: &Database, org_id: &str, id: &str, role: Role) -> User {
    let u = user(id, &format!("{id}@example.com"));
    assert!(db.create_user(&u, Some("hash")).await.unwrap());
    assert!(db
        .add_member(&org(org_id), &u.id, role, Timestamp::from_millis(2))
        .await
        .unwrap());
    u
}

async fn one_owner_transfer_and_removal(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    let ada = with_member(db, "acme", "ada", Role::Owner).await;
    let bob = with_member(db, "acme", "bob", Role::Developer).await;
    assert!(
        !db.create_user(&user("x", "ada@example.com"), None)
            .await
            .unwrap(),
        "email taken"
    );
    assert!(
        db.add_member(
            &org("acme"),
            &bob.id,
            Role::Owner,
            Timestamp::from_millis(3)
        )
        .await
        .is_ok_and(|added| !added),
        "already a member"
    );
    // The schema refuses a second owner even if a caller forgot the rule.
    assert!(!db
        .set_role(&org("acme"), &bob.id, Role::Owner)
        .await
        .unwrap());
    assert!(!db
        .set_role(&org("acme"), &ada.id, Role::User)
        .await
        .unwrap());
    assert!(
        !db.remove_member(&org("acme"), &ada.id).await.unwrap(),
        "owner stays"
    );
    assert!(db
        .transfer_ownership(&org("acme"), &ada.id, &bob.id)
        .await
        .unwrap());
    let roles: Vec<_> = db
        .members(&org("acme"), None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user.id.to_string(), m.role))
        .collect();
    assert_eq!(
        roles,
        [("ada".into(), Role::Admin), ("bob".into(), Role::Owner)]
    );
    assert!(!db
        .transfer_ownership(&org("acme"), &ada.id, &bob.id)
        .await
        .unwrap());
    assert!(db.remove_member(&org("acme"), &ada.id).await.unwrap());
    let only = db.members(&org("acme"), Some(&bob.email)).await.unwrap();
    assert_eq!(only.len(), 1);
    assert!(db.member(&org("other"), &bob.id).await.unwrap().is_none());
}

async fn sessions_expire_and_end_everywhere(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    let ada = with_member(db, "acme", "ada", Role::Admin).await;
    let m = db.member(&org("acme"), &ada.id).await.unwrap().unwrap();
    let t = Timestamp::from_millis;
    db.create_session("h1", &m, "csrf1", t(10), t(100))
        .await
        .unwrap();
    db.create_session("h2", &m, "csrf2", t(10), t(100))
        .await
        .unwrap();
    let s = db.session("h1", t(50)).await.unwrap().unwrap();
    assert_eq!(
        (s.member.role, s.csrf_token.as_str()),
        (Role::Admin, "csrf1")
    );
    assert!(
        db.session("h1", t(100)).await.unwrap().is_none(),
        "idle expiry"
    );
    db.touch_session("h1", t(90), t(200)).await.unwrap();
    assert!(db.session("h1", t(150)).await.unwrap().is_some());
    db.set_role(&org("acme"), &ada.id, Role::User)
        .await
        .unwrap();
    let s = db.session("h1", t(150)).await.unwrap().unwrap();
    assert_eq!(
        s.member.role,
        Role::User,
        "the role is read live, not copied"
    );
    assert_eq!(db.delete_user_sessions(&ada.id).await.unwrap(), 2);
    assert!(db.session("h2", t(50)).await.unwrap().is_none());
}

async fn invitations_work_once_and_expire(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    let t = Timestamp::from_millis;
    let invite = Invite {
        id: InviteId::parse("invite_1").unwrap(),
        org: org("acme"),
        email: Email::parse("cy@example.com").unwrap(),
        role: Role::Billing,
        invited_at: t(10),
        expires_at: t(100),
        accepted_at: None,
    };
    db.create_invite(&invite, "tok1").await.unwrap();
    assert_eq!(
        db.invites(&org("acme")).await.unwrap(),
        vec![invite.clone()]
    );
    assert!(db
        .invite(&org("other"), &invite.id)
        .await
        .unwrap()
        .is_none());
    let cy = user("user_cy", "cy@example.com");
    assert_eq!(
        db.accept_invite("tok1", &invite, &cy, Some("h"), t(100))
            .await
            .unwrap(),
        Err(AcceptRefused::LinkSpent),
        "expired"
    );
    assert_eq!(
        db.accept_invite("tok1", &invite, &cy, Some("h"), t(50))
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        db.accept_invite("tok1", &invite, &cy, Some("h"), t(51))
            .await
            .unwrap(),
        Err(AcceptRefused::LinkSpent),
        "single use"
    );
    let m = db.member(&org("acme"), &cy.id).await.unwrap().unwrap();
    assert_eq!(m.role, Role::Billing);
    assert_eq!(
        db.invite_by_token("tok1")
            .await
            .unwrap()
            .unwrap()
            .status(t(60)),
        "accepted"
    );

    let again = Invite {
        id: InviteId::parse("invite_2").unwrap(),
        ..invite.clone()
    };
    db.create_invite(&again, "tok2").await.unwrap();
    let other = user("user_other", "cy@example.com");
    assert_eq!(
        db.accept_invite("tok2", &again, &other, None, t(60))
            .await
            .unwrap(),
        Err(AcceptRefused::AlreadyMember)
    );
    assert!(
        db.invite_by_token("tok2")
            .await
            .unwrap()
            .unwrap()
            .accepted_at
            .is_none(),
        "rolled back"
    );
    assert!(db.delete_invite(&org("acme"), &again.id).await.unwrap());
    assert!(db.invite_by_token("tok2").await.unwrap().is_none());
}

async fn password_resets_work_once(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    let ada = with_member(db, "acme", "ada", Role::Owner).await;
    let m = db.member(&org("acme"), &ada.id).await.unwrap().unwrap();
    let t = Timestamp::from_millis;
    db.create_session("s", &m, "c", t(1), t(1000))
        .await
        .unwrap();
    db.create_password_reset("r1", &ada.id, t(10), t(100))
        .await
        .unwrap();
    assert_eq!(
        db.password_reset_user("r1", t(20))
            .await
            .unwrap()
            .unwrap()
            .id,
        ada.id
    );
    assert!(db
        .password_reset_user("r1", t(100))
        .await
        .unwrap()
        .is_none());
    assert!(
        !db.use_password_reset("r1", &ada.id, "new", t(100))
            .await
            .unwrap(),
        "expired"
    );
    assert!(db
        .use_password_reset("r1", &ada.id, "new", t(20))
        .await
        .unwrap());
    assert!(
        !db.use_password_reset("r1", &ada.id, "newer", t(21))
            .await
            .unwrap(),
        "once"
    );
    assert_eq!(
        db.password_hash(&ada.id).await.unwrap().as_deref(),
        Some("new")
    );
    assert!(
        db.session("s", t(30)).await.unwrap().is_none(),
        "sessions ended"
    );
}

async fn admin_keys_limits_and_rate_windows(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    let secret = AdminKeySecret::from_random([3; 32]);
    let rec = AdminKeyRecord {
        id: AdminKeyId::parse("adminkey_1").unwrap(),
        org: org("acme"),
        name: "ci".into(),
        hint: secret.hint(),
        active: true,
        created_at: Timestamp::from_millis(5),
        created_by: Actor::user("ada"),
    };
    db.insert_admin_key(&rec, &secret.hash()).await.unwrap();
    assert_eq!(
        db.admin_key_by_hash(&secret.hash()).await.unwrap(),
        Some(rec.clone())
    );
    assert!(!db
        .deactivate_admin_key(&org("other"), &rec.id)
        .await
        .unwrap());
    assert!(db
        .deactivate_admin_key(&org("acme"), &rec.id)
        .await
        .unwrap());
    assert!(!db.admin_keys(&org("acme")).await.unwrap()[0].active);

    let limits: KeyLimits =
        serde_json::from_str(r#"{"requests_per_minute":2,"spend":{"daily":"1.5"}}"#).unwrap();
    let (key, _) = db
        .create_api_key_with(&org("acme"), "k", None, limits.clone(), Actor::user("ada"))
        .await
        .unwrap();
    assert_eq!(
        db.api_key(&org("acme"), &key.id)
            .await
            .unwrap()
            .unwrap()
            .limits,
        limits
    );
    assert!(db.api_key(&org("other"), &key.id).await.unwrap().is_none());
    let renamed = db
        .update_api_key(
            &org("acme"),
            &key.id,
            Some("k2"),
            Some(KeyStatus::Disabled),
            None,
            Some(Some(Timestamp::from_millis(9))),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.status, renamed.limits),
        ("k2", KeyStatus::Disabled, limits)
    );
    assert_eq!(renamed.expires_at, Some(Timestamp::from_millis(9)));
    assert!(db
        .update_api_key(&org("other"), &key.id, Some("x"), None, None, None)
        .await
        .unwrap()
        .is_none());

    let w = Timestamp::from_millis(60_000);
    let take = |at, tokens, rpm| db.take_rate(&key.id, at, tokens, rpm, Some(25));
    assert_eq!(take(w, 10, Some(2)).await.unwrap(), Ok((1, 10)));
    assert_eq!(take(w, 10, Some(2)).await.unwrap(), Ok((2, 20)));
    assert_eq!(take(w, 1, Some(2)).await.unwrap(), Err((2, 20)));
    assert_eq!(take(w, 6, None).await.unwrap(), Err((2, 20)));
    // The settlement corrects the estimate: 15 of the 20 tokens were not used.
    assert!(db.adjust_rate_tokens(&key.id, w, -15).await.unwrap());
    assert_eq!(take(w, 6, None).await.unwrap(), Ok((3, 11)));
    assert!(db.adjust_rate_tokens(&key.id, w, -100).await.unwrap());
    assert_eq!(
        take(w, 0, None).await.unwrap(),
        Ok((4, 0)),
        "never below zero"
    );
    let next = Timestamp::from_millis(120_000);
    assert_eq!(take(next, 30, Some(2)).await.unwrap(), Err((0, 0)));
    assert_eq!(take(next, 25, Some(2)).await.unwrap(), Ok((1, 25)));
    assert!(
        !db.adjust_rate_tokens(&key.id, w, 5).await.unwrap(),
        "a window that is over is gone"
    );
}

async fn audit_log_is_append_only_and_scoped(h: Harness) {
    let db = &h.db;
    funded(db, "acme", 0).await;
    for (i, o) in ["acme", "other", "acme"].into_iter().enumerate() {
        db.append_audit(&AuditEvent {
            id: String::new(),
            org: Some(o.to_owned()),
            at: Timestamp::from_millis(i as i64),
            actor: Actor::operator(),
            action: format!("test.{i}"),
            target_type: "organization".into(),
            target_id: o.into(),
            ip: Some("127.0.0.1".into()),
            details: serde_json::json!({"n": i}),
        })
        .await
        .unwrap();
    }
    let mine = db.audit_log(Some(&org("acme")), None, 10).await.unwrap();
    let actions: Vec<_> = mine.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["test.2", "test.0"],
        "newest first, own organization only"
    );
    let seq: i64 = mine[0].id.trim_start_matches("audit_").parse().unwrap();
    let older = db
        .audit_log(Some(&org("acme")), Some(seq), 10)
        .await
        .unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(db.audit_log(None, None, 2).await.unwrap().len(), 2);
    assert_append_only(&h).await;
}

async fn assert_append_only(h: &Harness) {
    match &h.db {
        Database::Sqlite(s) => {
            let conn = rusqlite::Connection::open(s.path()).unwrap();
            assert!(conn
                .execute("UPDATE audit_log SET action = 'x'", [])
                .is_err());
            assert!(conn.execute("DELETE FROM audit_log", []).is_err());
        }
        Database::Postgres(_) => {
            let (client, conn) = tokio_postgres::connect(&h.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            assert!(client
                .execute("UPDATE audit_log SET action = 'x'", &[])
                .await
                .is_err());
            assert!(client.execute("DELETE FROM audit_log", &[]).await.is_err());
            assert!(client.execute("TRUNCATE audit_log", &[]).await.is_err());
        }
    }
}

async fn sign_in_failures_are_counted_and_forgotten(h: Harness) {
    let db = &h.db;
    let t = Timestamp::from_millis;
    let subjects = vec!["account:a@example.com".to_owned(), "ip:10.0.0.1".to_owned()];
    for i in 0..3 {
        db.record_sign_in_failure(&subjects, t(100 + i), t(0))
            .await
            .unwrap();
    }
    assert_eq!(db.sign_in_failures("ip:10.0.0.1", t(0)).await.unwrap(), 3);
    assert_eq!(db.sign_in_failures("ip:10.0.0.1", t(102)).await.unwrap(), 1);
    db.record_sign_in_failure(&subjects[..1], t(500), t(200))
        .await
        .unwrap();
    assert_eq!(
        db.sign_in_failures("ip:10.0.0.1", t(0)).await.unwrap(),
        0,
        "forgotten"
    );
    assert_eq!(
        db.sign_in_failures("account:a@example.com", t(0))
            .await
            .unwrap(),
        1
    );
}
