//! One storage suite, run against both backends: SQLite in a temp dir and PostgreSQL in a
//! fresh database cloned from a migrated template (connected as the RLS-bound app role).

use parlo::model::*;
use parlo::storage::*;
use parlo_tests::fixture::{self, NewTenant, Tenant};
use parlo_tests::{Backend, both_backends, test_store};

async fn user(store: &Store, email: &str) -> User {
    store
        .create_user(&Email::parse(email).unwrap(), "$argon2id$dummy")
        .await
        .unwrap()
}

async fn workspace(store: &Store, name: &str, owner: UserId) -> Workspace {
    store
        .create_workspace(&WorkspaceName::parse(name).unwrap(), owner)
        .await
        .unwrap()
}

fn bot_input(name: &str) -> BotInput {
    BotInput {
        name: name.into(),
        greeting: "Hi! Ask me about **pricing**.".into(),
        system_prompt: "You are helpful.".into(),
        allowed_origins: "https://shop.example".into(),
        retention_days: Some(30),
        ..BotInput::default()
    }
}

fn bot_settings(name: &str) -> BotSettings {
    BotSettings::parse(&bot_input(name)).unwrap()
}

/// How many messages and attachments of conversation `c` tenant `t` can see.
async fn chat_rows(s: &Store, t: TenantId, c: ConversationId) -> (usize, usize) {
    let messages = s.messages(t, c).await.unwrap().len();
    (messages, s.attachments(t, c).await.unwrap().len())
}

/// Two tenants, each with a bot, a conversation with two messages, a key and an audit entry.
struct World {
    a: Tenant,
    b: Tenant,
    bot_a: Bot,
    bot_b: Bot,
    conv_a: Conversation,
    conv_b: Conversation,
}

async fn world(store: &Store) -> World {
    let a = NewTenant::owned_by("ann@a.example")
        .workspace("Acme")
        .bot(bot_input("Acme help"))
        .create(store)
        .await;
    let b = NewTenant::owned_by("bob@b.example")
        .workspace("Bolt")
        .bot(bot_input("Bolt help"))
        .create(store)
        .await;
    let (bot_a, bot_b) = (a.bot.clone(), b.bot.clone());
    let mut convs = Vec::new();
    for (t, bot) in [(a.tenant, &bot_a), (b.tenant, &bot_b)] {
        let (c, _) = fixture::chat(
            store,
            t,
            bot.id,
            &[(MessageRole::User, "hello"), (MessageRole::Assistant, "hi")],
        )
        .await;
        fixture::attachment(store, t, c.id, None, "scan.pdf").await;
        store
            .put_provider_key(
                t,
                &ProviderKey {
                    provider: Provider::Mistral,
                    sealed: SealedSecret {
                        ciphertext: vec![5; 48],
                        nonce: vec![6; 12],
                        key_version: 1,
                    },
                    last_four: "wxyz".into(),
                    updated_at: Timestamp::now(),
                },
            )
            .await
            .unwrap();
        store
            .append_audit(
                t,
                &NewAuditEntry {
                    actor: None,
                    action: "bot.create".into(),
                    target: bot.public_id.clone(),
                    details: serde_json::json!({"name": bot.settings.name}),
                },
            )
            .await
            .unwrap();
        convs.push(c);
    }
    let conv_b = convs.pop().unwrap();
    let conv_a = convs.pop().unwrap();
    World {
        a,
        b,
        bot_a,
        bot_b,
        conv_a,
        conv_b,
    }
}

fn turn(bot: BotId, conversation: ConversationId, content: &str) -> NewTurn {
    NewTurn {
        bot,
        conversation,
        start: None,
        retry_of: None,
        content: content.into(),
        provider: Provider::Mistral,
        context: 40,
    }
}

fn started(s: TurnStart) -> Turn {
    match s {
        TurnStart::Started(t) => *t,
        other => panic!("expected a started turn, got {other:?}"),
    }
}

both_backends!(
    workspace_owner_and_membership,
    duplicate_email_is_a_conflict,
    members_roles_change_and_removal,
    login_sessions_by_hash_and_expiry,
    totp_secret_round_trips,
    bots_are_created_updated_and_found_by_public_id,
    tenants_cannot_reach_each_others_rows,
    messages_record_status_and_usage,
    provider_keys_upsert_and_delete,
    retention_deletes_only_old_conversations_of_that_bot,
    deleting_a_workspace_deletes_all_its_data,
    conversations_page_newest_first,
    a_turn_stores_question_and_pending_answer_and_reads_everything_in_one_go,
    a_turn_reads_only_the_latest_usable_context,
    a_refused_turn_stores_nothing,
    rate_limit_counters_are_hit_together_and_counted_apart,
    two_owners_demoting_or_removing_each_other_at_once_leave_an_owner,
    two_co_owners_deleting_their_accounts_at_once_leave_an_owner,
    a_removed_or_demoted_admins_invitations_are_revoked_and_refused
);

async fn owners(s: &Store, t: TenantId) -> usize {
    s.members(t)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.role == Role::Owner)
        .count()
}

/// Of two changes racing to take away the last two owners, exactly one goes through and
/// the other is refused as [`LAST_OWNER`], whatever the interleaving.
fn one_went_through<T: std::fmt::Debug>(
    round: usize,
    a: StoreResult<Option<T>>,
    b: StoreResult<Option<T>>,
) {
    let refused = |r: &StoreResult<Option<T>>| matches!(r, Err(StoreError::Conflict(why)) if *why == LAST_OWNER);
    let done = |r: &StoreResult<Option<T>>| matches!(r, Ok(Some(_)));
    assert!(
        (done(&a) && refused(&b)) || (refused(&a) && done(&b)),
        "round {round}: {a:?} / {b:?}"
    );
}

async fn two_owners_demoting_or_removing_each_other_at_once_leave_an_owner(backend: Backend) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    let ann = user(s, "ann@example.com").await;
    let bea = user(s, "bea@example.com").await;
    let w = workspace(s, "Acme", ann.id).await;
    s.add_member(w.id, bea.id, Role::Owner).await.unwrap();
    for round in 0..20 {
        let (a, b) = tokio::join!(
            s.set_member_role(w.id, ann.id, Role::Admin),
            s.set_member_role(w.id, bea.id, Role::Member),
        );
        one_went_through(round, a, b);
        assert_eq!(owners(s, w.id).await, 1, "round {round}");
        let (a, b) = tokio::join!(
            s.set_member_role(w.id, ann.id, Role::Owner),
            s.set_member_role(w.id, bea.id, Role::Owner),
        );
        assert!(a.is_ok() && b.is_ok(), "promotions never conflict");
        let (a, b) = tokio::join!(s.remove_member(w.id, ann.id), s.remove_member(w.id, bea.id));
        one_went_through(round, a, b);
        assert_eq!(owners(s, w.id).await, 1, "round {round}");
        let gone = if s.memberships_of(ann.id).await.unwrap().is_empty() {
            ann.id
        } else {
            bea.id
        };
        s.add_member(w.id, gone, Role::Owner).await.unwrap();
    }
    // Alone, the last owner can neither be demoted nor removed.
    s.remove_member(w.id, bea.id).await.unwrap();
    assert!(matches!(
        s.set_member_role(w.id, ann.id, Role::Admin).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.remove_member(w.id, ann.id).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(owners(s, w.id).await, 1);
}

async fn two_co_owners_deleting_their_accounts_at_once_leave_an_owner(backend: Backend) {
    use parlo::lifecycle::erasure::{ErasureError, erase_account};
    let ts = test_store(backend).await;
    let s = &ts.store;
    for round in 0..10 {
        let ann = user(s, &format!("ann{round}@example.com")).await;
        let bea = user(s, &format!("bea{round}@example.com")).await;
        let cid = user(s, &format!("cid{round}@example.com")).await;
        let w = workspace(s, "Acme", ann.id).await;
        s.add_member(w.id, bea.id, Role::Owner).await.unwrap();
        // A colleague stays, so the workspace must keep an owner for them.
        s.add_member(w.id, cid.id, Role::Member).await.unwrap();
        // Each also has a workspace of their own, so a refusal has something to keep.
        let own = workspace(s, "Own", bea.id).await;
        let (a, b) = tokio::join!(erase_account(s, ann.id), erase_account(s, bea.id));
        let refused = |r: &Result<_, ErasureError>| matches!(r, Err(ErasureError::SoleOwner(_)));
        assert!(
            (a.is_ok() && refused(&b)) || (refused(&a) && b.is_ok()),
            "round {round}: {a:?} / {b:?}"
        );
        let members = s.members(w.id).await.unwrap();
        assert_eq!(members.len(), 2, "round {round}");
        let owner = members.iter().find(|m| m.role == Role::Owner);
        assert!(owner.is_some(), "round {round}: no owner left");
        // The refused account lost nothing.
        let kept = owner.unwrap().user_id;
        assert!(s.user(kept).await.unwrap().is_some());
        if kept == bea.id {
            assert!(s.workspace(own.id).await.unwrap().is_some());
            assert_eq!(s.memberships_of(bea.id).await.unwrap().len(), 2);
        }
    }
}

async fn a_removed_or_demoted_admins_invitations_are_revoked_and_refused(backend: Backend) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    let ann = user(s, "ann@example.com").await;
    let dan = user(s, "dan@example.com").await;
    let eve = user(s, "eve@example.com").await;
    let w = workspace(s, "Acme", ann.id).await;
    s.add_member(w.id, dan.id, Role::Admin).await.unwrap();
    let invite = |by: UserId, token: &'static str| NewInvitation {
        token_hash: token.as_bytes().to_vec(),
        role: Role::Admin,
        created_by: Some(by),
        expires_at: Timestamp::now().plus_secs(3600),
        email: None,
    };
    s.create_invitation(w.id, &invite(dan.id, "dan-1"))
        .await
        .unwrap();
    s.create_invitation(w.id, &invite(dan.id, "dan-2"))
        .await
        .unwrap();
    s.create_invitation(w.id, &invite(ann.id, "ann-1"))
        .await
        .unwrap();
    // A promotion keeps them; a demotion revokes them in the same transaction.
    assert_eq!(
        s.set_member_role(w.id, dan.id, Role::Owner).await.unwrap(),
        Some(0)
    );
    assert_eq!(
        s.set_member_role(w.id, dan.id, Role::Member).await.unwrap(),
        Some(2)
    );
    assert_eq!(s.invitations(w.id).await.unwrap().len(), 1);
    assert!(matches!(
        s.accept_invitation(w.id, b"dan-1", eve.id).await,
        Err(StoreError::NotFound)
    ));
    // Removal revokes too.
    s.set_member_role(w.id, dan.id, Role::Admin).await.unwrap();
    s.create_invitation(w.id, &invite(dan.id, "dan-3"))
        .await
        .unwrap();
    assert_eq!(s.remove_member(w.id, dan.id).await.unwrap(), Some(1));
    assert!(
        s.invitation_by_token(w.id, b"dan-3")
            .await
            .unwrap()
            .is_none()
    );
    // An invitation whose creator may no longer grant it (not a member, or only a member)
    // is neither shown nor accepted.
    s.create_invitation(w.id, &invite(dan.id, "dan-4"))
        .await
        .unwrap();
    s.add_member(w.id, dan.id, Role::Member).await.unwrap();
    s.create_invitation(w.id, &invite(dan.id, "dan-5"))
        .await
        .unwrap();
    for token in [&b"dan-4"[..], b"dan-5"] {
        assert!(s.invitation_by_token(w.id, token).await.unwrap().is_none());
        assert!(matches!(
            s.accept_invitation(w.id, token, eve.id).await,
            Err(StoreError::NotFound)
        ));
    }
    assert!(s.memberships_of(eve.id).await.unwrap().is_empty());
    // The owner's invitation still works.
    assert_eq!(
        s.accept_invitation(w.id, b"ann-1", eve.id).await.unwrap(),
        Role::Admin
    );
}

#[cfg(unix)]
#[tokio::test]
async fn sqlite_database_files_are_created_private_to_the_server_user() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let db = dir.join("parlo.db");
    let url = parlo::config::DatabaseUrl::new(format!("sqlite://{}?mode=rwc", db.display()));
    let s = Store::open_sqlite(&url).await.unwrap();
    user(&s, "ann@example.com").await;
    assert_eq!(mode(&dir), 0o700, "the directory");
    for file in ["parlo.db", "parlo.db-wal", "parlo.db-shm"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    s.close().await;
    // A database an older version left world-readable is tightened when opened.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let s = Store::open_sqlite(&url).await.unwrap();
    assert_eq!(mode(&db), 0o600);
    assert!(
        s.user_by_email(&Email::parse("ann@example.com").unwrap())
            .await
            .unwrap()
            .is_some(),
        "the data is still there"
    );
    s.close().await;
}

async fn workspace_owner_and_membership(backend: Backend) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    let ann = user(s, "Ann@Example.com").await;
    let w = workspace(s, "Acme", ann.id).await;
    assert_eq!(s.workspace(w.id).await.unwrap().unwrap().name, "Acme");
    let m = s.memberships_of(ann.id).await.unwrap();
    assert_eq!(
        m,
        vec![Membership {
            tenant_id: w.id,
            user_id: ann.id,
            role: Role::Owner
        }]
    );
    s.rename_workspace(w.id, &WorkspaceName::parse("Acme GmbH").unwrap())
        .await
        .unwrap();
    assert_eq!(s.workspace(w.id).await.unwrap().unwrap().name, "Acme GmbH");
    assert!(s.tenant_ids().await.unwrap().contains(&w.id));
    let members = s.members(w.id).await.unwrap();
    assert_eq!(members[0].email, "ann@example.com");
}

async fn duplicate_email_is_a_conflict(backend: Backend) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    user(s, "ann@example.com").await;
    let err = s
        .create_user(&Email::parse("ANN@example.com").unwrap(), "x")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

async fn members_roles_change_and_removal(backend: Backend) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    let ann = user(s, "ann@example.com").await;
    let cid = user(s, "cid@example.com").await;
    let w = workspace(s, "Acme", ann.id).await;
    s.add_member(w.id, cid.id, Role::Member).await.unwrap();
    assert!(matches!(
        s.add_member(w.id, cid.id, Role::Admin).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.set_member_role(w.id, cid.id, Role::Admin).await.unwrap(),
        Some(0)
    );
    assert_eq!(s.memberships_of(cid.id).await.unwrap()[0].role, Role::Admin);
    assert_eq!(s.remove_member(w.id, cid.id).await.unwrap(), Some(0));
    assert!(s.memberships_of(cid.id).await.unwrap().is_empty());
}

async fn login_sessions_by_hash_and_expiry(backend: Backend) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    let ann = user(s, "ann@example.com").await;
    let live = s
        .create_login_session(&NewLoginSession {
            user_id: ann.id,
            token_hash: vec![1; 32],
            mfa_verified: false,
            expires_at: Timestamp::now().plus_secs(3600),
        })
        .await
        .unwrap();
    s.create_login_session(&NewLoginSession {
        user_id: ann.id,
        token_hash: vec![2; 32],
        mfa_verified: true,
        expires_at: Timestamp::now().plus_secs(-1),
    })
    .await
    .unwrap();
    assert_eq!(
        s.login_session(&[1; 32]).await.unwrap().unwrap().id,
        live.id
    );
    assert!(
        s.login_session(&[2; 32]).await.unwrap().is_none(),
        "expired sessions are not returned"
    );
    s.mark_login_session_mfa(live.id).await.unwrap();
    assert!(
        s.login_session(&[1; 32])
            .await
            .unwrap()
            .unwrap()
            .mfa_verified
    );
    s.delete_login_session(&[1; 32]).await.unwrap();
    assert!(s.login_session(&[1; 32]).await.unwrap().is_none());
    assert_eq!(s.delete_user_sessions(ann.id).await.unwrap(), 1);
}

async fn totp_secret_round_trips(backend: Backend) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    let ann = user(s, "ann@example.com").await;
    let sealed = SealedSecret {
        ciphertext: vec![1, 2, 3],
        nonce: vec![4; 12],
        key_version: 2,
    };
    s.set_totp(ann.id, Some((&sealed, 1_000))).await.unwrap();
    assert_eq!(s.user(ann.id).await.unwrap().unwrap().totp, Some(sealed));
    // The step of the code that confirmed enrolment counts as used.
    assert!(!s.consume_totp_step(ann.id, 1_000).await.unwrap());
    assert!(s.consume_totp_step(ann.id, 1_001).await.unwrap());
    s.set_totp(ann.id, None).await.unwrap();
    assert_eq!(s.user(ann.id).await.unwrap().unwrap().totp, None);
}

async fn bots_are_created_updated_and_found_by_public_id(backend: Backend) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    let w = world(&ts.store).await;
    assert_eq!(
        Bot::tenant_of_public_id(&w.bot_a.public_id),
        Some(w.a.tenant)
    );
    let found = s
        .bot_by_public_id(w.a.tenant, &w.bot_a.public_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, w.bot_a);
    let mut changed = bot_settings("Renamed");
    changed.retention_days = 365;
    let updated = s
        .update_bot(w.a.tenant, w.bot_a.id, &changed)
        .await
        .unwrap();
    assert_eq!(updated.settings, changed);
    assert_eq!(s.bots(w.a.tenant).await.unwrap(), vec![updated]);
}

async fn tenants_cannot_reach_each_others_rows(backend: Backend) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    let w = world(&ts.store).await;
    // Every read, update and delete with tenant A's scope and tenant B's ids misses.
    assert!(s.bot(w.a.tenant, w.bot_b.id).await.unwrap().is_none());
    assert!(
        s.bot_by_public_id(w.a.tenant, &w.bot_b.public_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        s.update_bot(w.a.tenant, w.bot_b.id, &bot_settings("x"))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(!s.delete_bot(w.a.tenant, w.bot_b.id).await.unwrap());
    assert!(
        s.conversation(w.a.tenant, w.conv_b.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(chat_rows(s, w.a.tenant, w.conv_b.id).await, (0, 0));
    assert!(
        !s.delete_conversation(w.a.tenant, w.conv_b.id)
            .await
            .unwrap()
    );
    let err = s
        .append_message(
            w.a.tenant,
            &NewMessage {
                conversation_id: w.conv_b.id,
                role: MessageRole::User,
                content: "smuggled".into(),
                status: MessageStatus::Complete,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let b_msgs = s.messages(w.b.tenant, w.conv_b.id).await.unwrap();
    assert!(matches!(
        s.finish_message(
            w.a.tenant,
            b_msgs[1].id,
            &FinishedMessage {
                content: "overwritten".into(),
                status: MessageStatus::Complete,
                usage: TokenUsage::default(),
            }
        )
        .await,
        Err(StoreError::NotFound)
    ));
    assert!(
        s.conversations(
            w.a.tenant,
            &ConversationQuery {
                bot_id: Some(w.bot_b.id),
                before: None,
                limit: 50
            }
        )
        .await
        .unwrap()
        .is_empty()
    );
    assert_eq!(s.bots(w.a.tenant).await.unwrap().len(), 1);
    assert_eq!(s.audit_log(w.a.tenant, 10).await.unwrap().len(), 1);
    assert!(
        s.members(w.a.tenant)
            .await
            .unwrap()
            .iter()
            .all(|m| m.email == "ann@a.example")
    );
    // And tenant B's data is untouched.
    assert_eq!(
        s.messages(w.b.tenant, w.conv_b.id).await.unwrap()[1].content,
        "hi"
    );
    assert!(s.bot(w.b.tenant, w.bot_b.id).await.unwrap().is_some());
}

async fn messages_record_status_and_usage(backend: Backend) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    let w = world(&ts.store).await;
    let pending = s
        .append_message(
            w.a.tenant,
            &NewMessage {
                conversation_id: w.conv_a.id,
                role: MessageRole::Assistant,
                content: String::new(),
                status: MessageStatus::Pending,
            },
        )
        .await
        .unwrap();
    assert_eq!(pending.completed_at, None);
    s.finish_message(
        w.a.tenant,
        pending.id,
        &FinishedMessage {
            content: "partial ans".into(),
            status: MessageStatus::Interrupted,
            usage: TokenUsage {
                prompt_tokens: Some(12),
                completion_tokens: Some(3),
            },
        },
    )
    .await
    .unwrap();
    let msgs = s.messages(w.a.tenant, w.conv_a.id).await.unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(
        msgs.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        ["hello", "hi", "partial ans"]
    );
    let last = &msgs[2];
    assert_eq!(last.status, MessageStatus::Interrupted);
    assert_eq!(
        (last.prompt_tokens, last.completion_tokens),
        (Some(12), Some(3))
    );
    assert!(last.completed_at.is_some());
    let conv = s
        .conversation(w.a.tenant, w.conv_a.id)
        .await
        .unwrap()
        .unwrap();
    assert!(conv.last_activity_at >= conv.created_at);
}

async fn provider_keys_upsert_and_delete(backend: Backend) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    let w = world(&ts.store).await;
    let mut k = s
        .provider_key(w.a.tenant, Provider::Mistral)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(k.last_four, "wxyz");
    k.last_four = "abcd".into();
    k.sealed.key_version = 2;
    s.put_provider_key(w.a.tenant, &k).await.unwrap();
    let again = s
        .provider_key(w.a.tenant, Provider::Mistral)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.last_four.as_str(), again.sealed.key_version),
        ("abcd", 2)
    );
    assert!(
        s.delete_provider_key(w.a.tenant, Provider::Mistral)
            .await
            .unwrap()
    );
    assert!(
        s.provider_key(w.a.tenant, Provider::Mistral)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.provider_key(w.b.tenant, Provider::Mistral)
            .await
            .unwrap()
            .is_some()
    );
}

async fn retention_deletes_only_old_conversations_of_that_bot(backend: Backend) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    let w = world(&ts.store).await;
    let future = Timestamp::now().plus_secs(60);
    assert_eq!(
        s.delete_conversations_before(w.a.tenant, w.bot_a.id, Timestamp(0))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.delete_conversations_before(w.a.tenant, w.bot_b.id, future)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.delete_conversations_before(w.a.tenant, w.bot_a.id, future)
            .await
            .unwrap(),
        1
    );
    assert_eq!(chat_rows(s, w.a.tenant, w.conv_a.id).await, (0, 0));
    assert_eq!(s.messages(w.b.tenant, w.conv_b.id).await.unwrap().len(), 2);
    assert_eq!(s.wipe_conversations(w.b.tenant, None).await.unwrap(), 1);
}

async fn deleting_a_workspace_deletes_all_its_data(backend: Backend) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    let w = world(&ts.store).await;
    assert!(s.delete_workspace(w.a.tenant).await.unwrap());
    assert!(s.workspace(w.a.tenant).await.unwrap().is_none());
    assert!(s.bots(w.a.tenant).await.unwrap().is_empty());
    assert!(
        s.messages(w.a.tenant, w.conv_a.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.provider_key(w.a.tenant, Provider::Mistral)
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.audit_log(w.a.tenant, 10).await.unwrap().is_empty());
    assert!(!s.tenant_ids().await.unwrap().contains(&w.a.tenant));
    // The other tenant keeps everything.
    assert_eq!(s.bots(w.b.tenant).await.unwrap().len(), 1);
    assert_eq!(s.audit_log(w.b.tenant, 10).await.unwrap().len(), 1);
    assert_eq!(s.messages(w.b.tenant, w.conv_b.id).await.unwrap().len(), 2);
}

async fn conversations_page_newest_first(backend: Backend) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    let w = world(&ts.store).await;
    let second = s
        .create_conversation(
            w.a.tenant,
            &NewConversation {
                bot_id: w.bot_a.id,
                origin: "https://shop.example".into(),
                resume_hash: vec![2; 32],
            },
        )
        .await
        .unwrap();
    let page = s
        .conversations(
            w.a.tenant,
            &ConversationQuery {
                bot_id: None,
                before: None,
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    let all = s
        .conversations(
            w.a.tenant,
            &ConversationQuery {
                bot_id: Some(w.bot_a.id),
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[0].last_activity_at >= all[1].last_activity_at);
    assert!(all.iter().any(|c| c.id == second.id));
}

async fn a_turn_stores_question_and_pending_answer_and_reads_everything_in_one_go(
    backend: Backend,
) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    let w = world(&ts.store).await;
    let t = started(
        s.begin_turn(w.a.tenant, &turn(w.bot_a.id, w.conv_a.id, "Do you ship?"))
            .await
            .unwrap(),
    );
    assert_eq!(t.bot.id, w.bot_a.id);
    assert_eq!(t.bot.settings.system_prompt, "You are helpful.");
    assert_eq!(t.key.as_ref().map(|k| k.last_four.as_str()), Some("wxyz"));
    assert_eq!(t.key.as_ref().unwrap().sealed.ciphertext, vec![5; 48]);
    // Context: the earlier exchange, then the new question; the pending answer is not in it.
    let ctx: Vec<_> = t
        .context
        .iter()
        .map(|m| (m.role, m.content.as_str()))
        .collect();
    assert_eq!(
        ctx,
        vec![
            (MessageRole::User, "hello"),
            (MessageRole::Assistant, "hi"),
            (MessageRole::User, "Do you ship?"),
        ]
    );
    assert_eq!(t.context.last().unwrap().id, t.question);
    // Both rows are stored: the question complete, the answer pending and empty.
    let stored = s.messages(w.a.tenant, w.conv_a.id).await.unwrap();
    let last_two: Vec<_> = stored[stored.len() - 2..]
        .iter()
        .map(|m| (m.id, m.role, m.status, m.content.as_str()))
        .collect();
    assert_eq!(
        last_two,
        vec![
            (
                t.question,
                MessageRole::User,
                MessageStatus::Complete,
                "Do you ship?"
            ),
            (t.answer, MessageRole::Assistant, MessageStatus::Pending, ""),
        ]
    );
    // A tenant without a stored key gets none.
    let solo = NewTenant::owned_by("solo@example.com")
        .workspace("Solo")
        .bot(bot_input("Solo"))
        .create(&ts.store)
        .await;
    let c = s
        .create_conversation(
            solo.tenant,
            &NewConversation {
                bot_id: solo.bot.id,
                origin: "https://shop.example".into(),
                resume_hash: vec![2; 32],
            },
        )
        .await
        .unwrap();
    let t = started(
        s.begin_turn(solo.tenant, &turn(solo.bot.id, c.id, "hi"))
            .await
            .unwrap(),
    );
    assert!(t.key.is_none());
    assert_eq!(t.context.len(), 1);
}

async fn a_turn_reads_only_the_latest_usable_context(backend: Backend) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    let w = world(&ts.store).await;
    for (status, content) in [
        (MessageStatus::Failed, "failed answer"),
        (MessageStatus::Interrupted, "partial answer"),
        (MessageStatus::Complete, ""),
    ] {
        s.append_message(
            w.a.tenant,
            &NewMessage {
                conversation_id: w.conv_a.id,
                role: MessageRole::Assistant,
                content: content.into(),
                status,
            },
        )
        .await
        .unwrap();
    }
    let mut t = turn(w.bot_a.id, w.conv_a.id, "and now?");
    t.context = 3;
    let got = started(s.begin_turn(w.a.tenant, &t).await.unwrap());
    let ctx: Vec<_> = got.context.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        ctx,
        vec!["hi", "partial answer", "and now?"],
        "failed, empty and pending messages are not context"
    );
}

async fn a_refused_turn_stores_nothing(backend: Backend) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    let w = world(&ts.store).await;
    let count = |t, c| async move { s.messages(t, c).await.unwrap().len() };
    // Another tenant's bot and conversation are invisible, whatever ids are asked for.
    assert!(matches!(
        s.begin_turn(w.a.tenant, &turn(w.bot_b.id, w.conv_b.id, "x"))
            .await
            .unwrap(),
        TurnStart::NoBot
    ));
    assert!(matches!(
        s.begin_turn(w.a.tenant, &turn(w.bot_a.id, w.conv_b.id, "x"))
            .await
            .unwrap(),
        TurnStart::NoConversation
    ));
    assert_eq!(
        count(w.b.tenant, w.conv_b.id).await,
        2,
        "tenant b's conversation is untouched"
    );
    s.set_suspended(w.a.tenant, Some(Timestamp::now()))
        .await
        .unwrap();
    assert!(matches!(
        s.begin_turn(w.a.tenant, &turn(w.bot_a.id, w.conv_a.id, "x"))
            .await
            .unwrap(),
        TurnStart::Suspended
    ));
    assert_eq!(
        count(w.a.tenant, w.conv_a.id).await,
        2,
        "a suspended workspace stores nothing"
    );
    s.set_suspended(w.a.tenant, None).await.unwrap();
    let other = s
        .create_bot(w.a.tenant, &bot_settings("Acme other"))
        .await
        .unwrap();
    assert!(s.delete_bot(w.a.tenant, other.id).await.unwrap());
    assert!(matches!(
        s.begin_turn(w.a.tenant, &turn(other.id, w.conv_a.id, "x"))
            .await
            .unwrap(),
        TurnStart::NoBot
    ));
    assert_eq!(
        count(w.a.tenant, w.conv_a.id).await,
        2,
        "a deleted bot stores nothing"
    );
    assert!(
        s.delete_conversation(w.a.tenant, w.conv_a.id)
            .await
            .unwrap()
    );
    assert!(matches!(
        s.begin_turn(w.a.tenant, &turn(w.bot_a.id, w.conv_a.id, "x"))
            .await
            .unwrap(),
        TurnStart::NoConversation
    ));
    assert_eq!(count(w.a.tenant, w.conv_a.id).await, 0);
}

async fn rate_limit_counters_are_hit_together_and_counted_apart(backend: Backend) {
    let ts = test_store(backend).await;
    let s = &ts.store;
    let hit = |k: u8| RateLimitHit {
        key_hash: vec![k; 32],
        window_start: Timestamp(60_000),
        expires_at: Timestamp(120_000),
    };
    assert_eq!(
        s.hit_rate_limits(&[hit(1), hit(2)]).await.unwrap(),
        vec![1, 1]
    );
    assert_eq!(
        s.hit_rate_limits(&[hit(2), hit(1)]).await.unwrap(),
        vec![2, 2]
    );
    assert_eq!(
        s.hit_rate_limits(&[hit(3), hit(1)]).await.unwrap(),
        vec![1, 3]
    );
    assert_eq!(s.hit_rate_limits(&[]).await.unwrap(), Vec::<i64>::new());
}
