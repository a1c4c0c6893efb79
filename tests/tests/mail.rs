//! E-mail over a real SMTP conversation (the test SMTP server of `parlo_tests::smtp`, over
//! TCP), on both backends: every account mail arrives at the right recipient with a link
//! that works when followed; sign-up does not tell whether an address has an account;
//! reset links are single-use and expire; the outbox keeps mail through an SMTP outage and
//! gives up on a refused recipient; an invitation is bound to its address.

use std::time::{Duration, Instant};

use parlo::model::{Email, OutboxStatus, Timestamp, TokenPurpose};
use parlo_tests::browser::free_port;
use parlo_tests::fixture::{PASSWORD, SiteClient, field, location};
use parlo_tests::smtp::SmtpServer;
use parlo_tests::{Backend, TestApp, both_backends, spawn_app_with_smtp};

both_backends!(
    signup_mails_a_working_confirmation_link,
    signup_answers_the_same_for_new_and_existing_addresses,
    password_reset_is_single_use_ends_sessions_and_keeps_mfa,
    reset_links_expire_and_tampered_ones_do_not_work,
    outbox_keeps_mail_through_an_smtp_outage,
    a_refused_recipient_is_given_up_not_retried,
);

/// The app at a public URL equal to its address (so links in mail can be followed), with
/// mail going to `smtp`.
async fn app_with(backend: Backend, smtp: &SmtpServer) -> TestApp {
    let port = free_port();
    spawn_app_with_smtp(backend, smtp, |s| {
        s.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
        s.public_url = Some(format!("http://127.0.0.1:{port}").parse().unwrap());
    })
    .await
}

async fn signup_form(v: &SiteClient, email: &str, password: &str) -> reqwest::Response {
    let csrf = v.csrf("/signup").await;
    v.post(
        "/signup",
        &csrf,
        &[
            ("email", email),
            ("password", password),
            ("workspace", "Acme"),
        ],
    )
    .await
}

async fn signup_mails_a_working_confirmation_link(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = app_with(backend, &smtp).await;
    let v = SiteClient::new(&app);
    let r = signup_form(&v, "ann@a.example", PASSWORD).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/signup/sent");
    // An address the model takes but SMTP cannot carry is refused before anything is stored.
    let r = signup_form(&v, "\"odd\"local@a.example", PASSWORD).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("cannot receive mail"));
    let r = signup_form(&v, "not an address", PASSWORD).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("valid e-mail address"));
    // Not signed in before the address is confirmed.
    assert_eq!(location(&v.get("/app").await), "/login");
    let mail = app.mailbox.nth("ann@a.example", 1).await;
    assert_eq!(mail.rcpt_to, vec!["ann@a.example".to_owned()]);
    assert_eq!(mail.subject, "Confirm your e-mail address");
    assert!(
        mail.headers.contains("multipart/alternative"),
        "{}",
        mail.raw
    );
    assert!(mail.html.contains("Confirm the address"), "{}", mail.html);
    // The link is absolute, on the public URL, and works.
    assert!(
        mail.link("/verify/").starts_with(&app.base),
        "{}",
        mail.text
    );
    // An unconfirmed account cannot log in; a fresh link is mailed instead.
    let r = v.login("ann@a.example", PASSWORD).await;
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Confirm your e-mail address first")
    );
    let to = v.confirm_address("ann@a.example", 2).await;
    assert!(
        to.starts_with("/w/") && to.ends_with("?notice=signed_up"),
        "{to}"
    );
    let (status, _) = v.page(&to).await;
    assert_eq!(status, 200);
    // The first link stopped working when the second was sent; the second works once.
    let (status, _) = v.page(&mail.link_path("/verify/")).await;
    assert_eq!(status, 400);
    let user = app
        .store()
        .user_by_email(&Email::parse("ann@a.example").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(user.email_verified);
    // The SMTP conversation was a real one.
    let commands = smtp.commands();
    assert!(
        commands.iter().any(|c| c.starts_with("EHLO")),
        "{commands:?}"
    );
    assert!(
        commands.iter().any(|c| c == "RCPT TO:<ann@a.example>"),
        "{commands:?}"
    );
    app.stop().await;
}

async fn signup_answers_the_same_for_new_and_existing_addresses(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = app_with(backend, &smtp).await;
    let owner = SiteClient::new(&app);
    owner.sign_up("bob@b.example", "Bob").await;
    // Another visitor tries both: a new address and Bob's (with another password).
    let answer = async |email: &str| {
        let v = SiteClient::new(&app);
        let started = Instant::now();
        let r = signup_form(&v, email, "another long password").await;
        let took = started.elapsed();
        let status = r.status();
        let to = location(&r);
        let (page_status, page) = v.page(&to).await;
        (status, to, page_status, page, took)
    };
    let (s1, to1, ps1, page1, t1) = answer("new@b.example").await;
    let (s2, to2, ps2, page2, t2) = answer("bob@b.example").await;
    assert_eq!((s1, &to1, ps1), (s2, &to2, ps2));
    // The pages differ only in their CSRF token.
    let strip = |p: &str| {
        let t = field(p, "csrf").unwrap_or_default();
        p.replace(&t, "")
    };
    assert_eq!(strip(&page1), strip(&page2));
    // Both did the password hashing: neither answer is several times faster.
    let (fast, slow) = if t1 < t2 { (t1, t2) } else { (t2, t1) };
    assert!(
        slow < fast * 5 + Duration::from_millis(500),
        "new {t1:?} vs existing {t2:?}"
    );
    // The owner learns of the attempt; the new address gets its confirmation link.
    let attempt = app.mailbox.nth("bob@b.example", 2).await;
    assert_eq!(
        attempt.subject,
        "Someone tried to sign up with your address"
    );
    assert!(attempt.link("/password/forgot").starts_with(&app.base));
    let confirm = app.mailbox.nth("new@b.example", 1).await;
    assert_eq!(confirm.subject, "Confirm your e-mail address");
    // Bob's password did not change.
    owner.logout().await;
    assert_eq!(owner.login("bob@b.example", PASSWORD).await.status(), 303);
    app.stop().await;
}

/// Asks for a reset link for `email` and returns the page's status and text.
async fn forgot(v: &SiteClient, email: &str) -> (u16, String) {
    let csrf = v.csrf("/password/forgot").await;
    let r = v.post("/password/forgot", &csrf, &[("email", email)]).await;
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    (status, body)
}

async fn set_password(v: &SiteClient, link_path: &str, password: &str) -> reqwest::Response {
    let (status, page) = v.page(link_path).await;
    assert_eq!(status, 200, "{page}");
    let token = field(&page, "token").unwrap();
    let csrf = field(&page, "csrf").unwrap();
    v.post(
        "/password/reset",
        &csrf,
        &[("token", &token), ("password", password)],
    )
    .await
}

async fn password_reset_is_single_use_ends_sessions_and_keeps_mfa(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = app_with(backend, &smtp).await;
    let owner = SiteClient::new(&app);
    owner.sign_up("cy@c.example", "Cy").await;
    let secret = parlo_tests::fixture::enable_totp(&owner).await;
    // Known and unknown addresses get the same answer.
    let v = SiteClient::new(&app);
    let (s_known, known) = forgot(&v, "cy@c.example").await;
    let (s_unknown, unknown) = forgot(&v, "nobody@c.example").await;
    assert_eq!(s_known, 200);
    assert_eq!(s_known, s_unknown);
    let strip = |p: &str| p.replace(&field(p, "csrf").unwrap_or_default(), "");
    assert_eq!(strip(&known), strip(&unknown));
    // Cy's mails so far: confirmation, MFA enabled; now the reset link.
    let mail = app.mailbox.nth("cy@c.example", 3).await;
    assert_eq!(mail.subject, "Choose a new password");
    assert!(mail.link("/password/reset/").starts_with(&app.base));
    let path = mail.link_path("/password/reset/");
    // A refused password keeps the link usable.
    let r = set_password(&v, &path, "short").await;
    assert_eq!(r.status(), 422);
    let r = set_password(&v, &path, "a brand new password").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login?notice=password_reset");
    // Single use.
    let (status, page) = v.page(&path).await;
    assert_eq!(status, 400, "{page}");
    // Every session ended: the owner's browser is logged out.
    assert_eq!(location(&owner.get("/account").await), "/login");
    // The old password no longer works; the new one does, and TOTP is still asked for.
    assert_eq!(v.login("cy@c.example", PASSWORD).await.status(), 401);
    let r = v.login("cy@c.example", "a brand new password").await;
    assert_eq!(location(&r), "/login/mfa");
    assert_eq!(location(&v.get("/app").await), "/login/mfa");
    parlo_tests::fixture::submit_totp(&v, &secret).await;
    assert_eq!(v.page("/account").await.0, 200);
    // Cy was told.
    let notice = app.mailbox.nth("cy@c.example", 4).await;
    assert_eq!(notice.subject, "Your password was reset");
    // Nobody got mail for the unknown address.
    assert_eq!(app.mailbox.count("nobody@c.example"), 0);
    app.stop().await;
}

async fn reset_links_expire_and_tampered_ones_do_not_work(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = app_with(backend, &smtp).await;
    let owner = SiteClient::new(&app);
    owner.sign_up("dee@d.example", "Dee").await;
    let user = app
        .store()
        .user_by_email(&Email::parse("dee@d.example").unwrap())
        .await
        .unwrap()
        .unwrap();
    let v = SiteClient::new(&app);
    forgot(&v, "dee@d.example").await;
    let mail = app.mailbox.nth("dee@d.example", 2).await;
    let path = mail.link_path("/password/reset/");
    // One character changed: not a valid link.
    let mut tampered = path.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(v.page(&tampered).await.0, 400);
    // A token past its expiry does not work (stored exactly as the site stores one).
    let token = "expired-token-0123456789abcdef0123456789abcdef";
    app.store()
        .create_account_token(
            user.id,
            TokenPurpose::Reset,
            &parlo::crypto::sha256(token.as_bytes()),
            None,
            Timestamp(Timestamp::now().0 - 1),
        )
        .await
        .unwrap();
    assert_eq!(v.page(&format!("/password/reset/{token}")).await.0, 400);
    let csrf = v.csrf("/password/forgot").await;
    let r = v
        .post(
            "/password/reset",
            &csrf,
            &[("token", token), ("password", "a brand new password")],
        )
        .await;
    assert_eq!(r.status(), 400);
    // The mailed link was replaced by the newer (expired) one: only the newest link counts.
    assert_eq!(v.page(&path).await.0, 400);
    owner.logout().await;
    assert_eq!(owner.login("dee@d.example", PASSWORD).await.status(), 303);
    app.stop().await;
}

async fn outbox_keeps_mail_through_an_smtp_outage(backend: Backend) {
    let smtp = SmtpServer::stopped().await;
    let app = app_with(backend, &smtp).await;
    let v = SiteClient::new(&app);
    let r = signup_form(&v, "eve@e.example", PASSWORD).await;
    assert_eq!(r.status(), 303, "sign-up does not wait for the mail server");
    // The attempts fail and are retried with backoff; the mail stays queued.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let entries = app.store().outbox_entries(10).await.unwrap();
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(e.status, OutboxStatus::Pending);
        if e.attempts >= 2 {
            assert!(e.last_error.is_some());
            break;
        }
        assert!(Instant::now() < deadline, "no retry: {e:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(smtp.received().is_empty());
    smtp.resume().await;
    let mail = app.mailbox.nth("eve@e.example", 1).await;
    assert_eq!(mail.subject, "Confirm your e-mail address");
    let to = v.confirm_address("eve@e.example", 1).await;
    assert!(to.starts_with("/w/"), "{to}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = app.store().outbox_summary().await.unwrap();
        if s.sent == 1 && s.pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Sent messages keep no content.
    let raw = parlo_tests::lifecycle::RawDb::of(&app.db).await;
    assert_eq!(
        raw.count_sql("SELECT COUNT(*) FROM mail_outbox WHERE ciphertext IS NOT NULL")
            .await,
        0
    );
    raw.close().await;
    // Exactly one delivery.
    assert_eq!(app.mailbox.count("eve@e.example"), 1);
    app.stop().await;
}

async fn a_refused_recipient_is_given_up_not_retried(backend: Backend) {
    let smtp = SmtpServer::start().await;
    smtp.refuse("gone@g.example");
    let app = app_with(backend, &smtp).await;
    let v = SiteClient::new(&app);
    let r = signup_form(&v, "gone@g.example", PASSWORD).await;
    assert_eq!(r.status(), 303);
    let deadline = Instant::now() + Duration::from_secs(30);
    let e = loop {
        let entries = app.store().outbox_entries(10).await.unwrap();
        if entries[0].status == OutboxStatus::Failed {
            break entries[0].clone();
        }
        assert!(Instant::now() < deadline, "{entries:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(e.attempts, 1, "a permanent refusal is not retried");
    assert!(e.last_error.as_deref().unwrap().contains("550"), "{e:?}");
    assert!(smtp.received().is_empty());
    app.stop().await;
}

both_backends!(
    an_invitation_is_mailed_and_only_its_confirmed_address_can_accept_it,
    security_notices_and_the_email_change_reach_the_right_inboxes,
    sessions_are_listed_coarsely_and_others_can_be_ended,
    operator_notice_reaches_confirmed_owners_and_admins_and_is_audited,
);

async fn invite(owner: &SiteClient, t: parlo::model::TenantId, email: &str) -> String {
    let csrf = owner.csrf(&format!("/w/{t}/members")).await;
    let r = owner
        .post(
            &format!("/w/{t}/invitations"),
            &csrf,
            &[("role", "member"), ("email", email)],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    owner.mailbox.nth(email, 1).await.link_path("/invite/")
}

async fn accept(v: &SiteClient, path: &str) -> reqwest::Response {
    let csrf = v.csrf(path).await;
    v.post(path, &csrf, &[]).await
}

async fn an_invitation_is_mailed_and_only_its_confirmed_address_can_accept_it(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = app_with(backend, &smtp).await;
    let owner = SiteClient::new(&app);
    let t = owner.sign_up("olga@o.example", "Olga").await;
    let path = invite(&owner, t, "pia@p.example").await;
    let mail = app.mailbox.nth("pia@p.example", 1).await;
    assert_eq!(mail.rcpt_to, vec!["pia@p.example".to_owned()]);
    assert!(mail.text.contains("\"Olga\""), "{}", mail.text);
    // Someone else with the link (a confirmed account of another address) cannot join.
    let mallory = SiteClient::new(&app);
    mallory.sign_up("mallory@m.example", "Mallory").await;
    let r = accept(&mallory, &path).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("another e-mail address"));
    // An unconfirmed account of the invited address cannot join either.
    let pia = SiteClient::new(&app);
    let csrf = pia.csrf("/signup").await;
    let r = pia
        .post(
            "/signup",
            &csrf,
            &[
                ("email", "pia@p.example"),
                ("password", PASSWORD),
                ("workspace", "Pia"),
            ],
        )
        .await;
    assert_eq!(location(&r), "/signup/sent");
    let members = app.store().members(t).await.unwrap();
    assert_eq!(members.len(), 1, "only Olga: {members:?}");
    // Once Pia confirms her address, she can.
    pia.confirm_address("pia@p.example", 2).await;
    let r = accept(&pia, &path).await;
    assert_eq!(location(&r), format!("/w/{t}?notice=joined"));
    let members = app.store().members(t).await.unwrap();
    assert!(members.iter().any(|m| m.email == "pia@p.example"));
    assert!(!members.iter().any(|m| m.email == "mallory@m.example"));
    // A malformed address is refused with a clear error and nothing is sent.
    let csrf = owner.csrf(&format!("/w/{t}/members")).await;
    let r = owner
        .post(
            &format!("/w/{t}/invitations"),
            &csrf,
            &[("role", "member"), ("email", "not an address")],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("valid e-mail address"));
    app.stop().await;
}

/// The mails to `to` so far, by subject.
fn subjects(app: &TestApp, to: &str) -> Vec<String> {
    app.mailbox.all(to).into_iter().map(|m| m.subject).collect()
}

async fn security_notices_and_the_email_change_reach_the_right_inboxes(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = app_with(backend, &smtp).await;
    let v = SiteClient::new(&app);
    v.sign_up("quinn@q.example", "Quinn").await;
    // German mail from now on.
    let csrf = v.csrf("/account").await;
    let r = v
        .post("/account/language", &csrf, &[("language", "de")])
        .await;
    assert_eq!(location(&r), "/account?notice=language_saved");
    // Password change.
    let csrf = v.csrf("/account").await;
    let r = v
        .post(
            "/account/password",
            &csrf,
            &[("current", PASSWORD), ("new", "another long password")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let m = app.mailbox.nth("quinn@q.example", 2).await;
    assert_eq!(m.subject, "Ihr Passwort wurde geändert");
    assert!(m.headers.contains("Content-Language: de"), "{}", m.headers);
    // MFA on, a recovery code used at login, MFA off.
    let csrf = v.csrf("/account").await;
    v.post("/account/language", &csrf, &[("language", "en")])
        .await;
    let (_, page) = v.page("/account/mfa").await;
    let at = page.find("id=\"totp-secret\"").unwrap();
    let start = at + page[at..].find('>').unwrap() + 1;
    let secret = page[start..start + page[start..].find('<').unwrap()].to_owned();
    let csrf = field(&page, "csrf").unwrap();
    let sealed = field(&page, "sealed").unwrap();
    let body = v
        .post(
            "/account/mfa",
            &csrf,
            &[
                ("sealed", &sealed),
                ("code", &parlo_tests::fixture::totp_code(&secret)),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    let recovery = body
        .split("<code>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    v.logout().await;
    v.login("quinn@q.example", "another long password").await;
    let csrf = v.csrf("/login/mfa").await;
    let r = v.post("/login/mfa", &csrf, &[("code", &recovery)]).await;
    assert_eq!(r.status(), 303);
    let csrf = v.csrf("/account").await;
    let r = v
        .post(
            "/account/mfa/disable",
            &csrf,
            &[("password", "another long password")],
        )
        .await;
    assert_eq!(r.status(), 303);
    app.mailbox.wait_for_n("quinn@q.example", 5).await;
    assert_eq!(
        subjects(&app, "quinn@q.example")[2..],
        [
            "Two-factor authentication is on",
            "A recovery code was used (9 left)",
            "Two-factor authentication was turned off",
        ]
    );
    // E-mail change: confirmed from the new address, told to the old one.
    let csrf = v.csrf("/account").await;
    let r = v
        .post(
            "/account/email",
            &csrf,
            &[
                ("email", "quinn@new.example"),
                ("password", "another long password"),
            ],
        )
        .await;
    assert_eq!(location(&r), "/account?notice=email_change_sent");
    let confirm = app.mailbox.nth("quinn@new.example", 1).await;
    assert_eq!(confirm.subject, "Confirm your new e-mail address");
    let path = confirm.link_path("/account/email/confirm/");
    assert!(
        confirm
            .link("/account/email/confirm/")
            .starts_with(&app.base)
    );
    let (status, page) = v.page(&path).await;
    assert_eq!(status, 200, "{page}");
    let r = v
        .post(
            "/account/email/confirm",
            &field(&page, "csrf").unwrap(),
            &[("token", &field(&page, "token").unwrap())],
        )
        .await;
    assert_eq!(location(&r), "/account?notice=email_changed");
    let told = app.mailbox.nth("quinn@q.example", 6).await;
    assert_eq!(told.subject, "Your e-mail address was changed");
    assert!(told.text.contains("quinn@new.example"));
    assert_eq!(v.page(&path).await.0, 400, "the link works once");
    v.logout().await;
    assert_eq!(
        v.login("quinn@new.example", "another long password")
            .await
            .status(),
        303
    );
    // Closing the account tells what went with it, at the (new) address.
    let csrf = v.csrf("/account").await;
    let r = v
        .post(
            "/account/delete",
            &csrf,
            &[("password", "another long password")],
        )
        .await;
    assert_eq!(location(&r), "/login");
    let closed = app.mailbox.nth("quinn@new.example", 2).await;
    assert_eq!(closed.subject, "Your Parlo account was closed");
    assert!(closed.text.contains("Quinn"), "{}", closed.text);
    app.stop().await;
}

async fn sessions_are_listed_coarsely_and_others_can_be_ended(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = app_with(backend, &smtp).await;
    let v = SiteClient::new(&app);
    v.sign_up("rae@r.example", "Rae").await;
    let other = SiteClient::new(&app);
    let third = SiteClient::new(&app);
    for c in [&other, &third] {
        assert_eq!(c.login("rae@r.example", PASSWORD).await.status(), 303);
        assert_eq!(c.page("/app").await.0, 200);
    }
    let (_, page) = v.page("/account").await;
    assert_eq!(page.matches("(this session)").count(), 1, "{page}");
    assert_eq!(page.matches("/end\"").count(), 2, "two others: {page}");
    // reqwest sends no browser User-Agent: the description stays coarse.
    assert!(
        page.contains("Unknown client") || page.contains("Other client"),
        "{page}"
    );
    // End one.
    let id = page
        .split("action=\"/account/sessions/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let csrf = field(&page, "csrf").unwrap();
    let r = v
        .post(&format!("/account/sessions/{id}/end"), &csrf, &[])
        .await;
    assert_eq!(location(&r), "/account?notice=session_ended");
    let still = [other.page("/app").await.0, third.page("/app").await.0];
    assert_eq!(still.iter().filter(|s| **s == 200).count(), 1, "{still:?}");
    // Another user's session id is not found.
    let r = v
        .post(
            &format!("/account/sessions/{}/end", parlo::model::SessionId::new()),
            &csrf,
            &[],
        )
        .await;
    assert_eq!(r.status(), 404);
    // End all others: only this one is left.
    let r = v.post("/account/sessions/end-others", &csrf, &[]).await;
    assert_eq!(location(&r), "/account?notice=sessions_ended");
    assert_eq!(location(&other.get("/app").await), "/login");
    assert_eq!(location(&third.get("/app").await), "/login");
    assert_eq!(v.page("/app").await.0, 200);
    app.stop().await;
}

async fn operator_notice_reaches_confirmed_owners_and_admins_and_is_audited(backend: Backend) {
    use parlo::lifecycle::admin::Operator;
    use parlo::model::Role;
    let smtp = SmtpServer::start().await;
    let app = app_with(backend, &smtp).await;
    let owner = SiteClient::new(&app);
    let t = owner.sign_up("sam@s.example", "Sam").await;
    let admin = SiteClient::new(&app);
    admin.sign_up("ada@s.example", "Ada").await;
    let store = app.store();
    let ada = store
        .user_by_email(&Email::parse("ada@s.example").unwrap())
        .await
        .unwrap()
        .unwrap();
    store.add_member(t, ada.id, Role::Admin).await.unwrap();
    let member = parlo_tests::fixture::NewTenant::owned_by("max@s.example")
        .workspace("Max")
        .create(store)
        .await;
    store
        .add_member(t, member.user, Role::Member)
        .await
        .unwrap();
    // An unconfirmed admin gets no workspace notice.
    let ghost = store
        .create_user(&Email::parse("ghost@s.example").unwrap(), "$argon2id$x")
        .await
        .unwrap();
    store.add_member(t, ghost.id, Role::Admin).await.unwrap();
    // A subject with a line break is refused before anything is recorded.
    assert!(parlo::mail::Mail::notice("Hi\r\nBcc: x@y.example", "Body").is_err());
    let mail = parlo::mail::Mail::notice(
        "Security incident on 2026-11-27",
        "We found a problem.\n\nHere is what happened.",
    )
    .unwrap();
    let op = Operator::new(store.clone(), "ops", None);
    let progress = std::sync::Mutex::new(Vec::new());
    let (report, entry) = op
        .notify(&app.state.mailer, Some(vec![t]), &mail, |d, n| {
            progress.lock().unwrap().push((d, n))
        })
        .await
        .unwrap();
    assert_eq!(report.recipients, 2);
    assert_eq!(report.unverified_skipped, 1);
    assert_eq!(*progress.lock().unwrap(), vec![(1, 1)]);
    assert_eq!(entry.action, "notify");
    assert!(
        entry.details.contains("Security incident"),
        "{}",
        entry.details
    );
    for to in ["sam@s.example", "ada@s.example"] {
        let m = app.mailbox.wait_for_n(to, 2).await.pop().unwrap();
        assert_eq!(m.subject, "Security incident on 2026-11-27");
        assert!(m.text.contains("Here is what happened."));
    }
    assert!(subjects(&app, "max@s.example").is_empty());
    assert!(subjects(&app, "ghost@s.example").is_empty());
    let log = store.operator_audit().await.unwrap();
    assert!(log.iter().any(|e| e.action == "notify" && e.actor == "ops"));
    app.stop().await;
}

both_backends!(operator_account_deletion_mails_what_was_deleted);

async fn operator_account_deletion_mails_what_was_deleted(backend: Backend) {
    use parlo::lifecycle::admin::Operator;
    let smtp = SmtpServer::start().await;
    let app = app_with(backend, &smtp).await;
    let v = SiteClient::new(&app);
    v.sign_up("una@u.example", "Una's Shop").await;
    let op = Operator::new(app.store().clone(), "ops", None);
    let (erased, entry) = op
        .delete_account_and_tell(
            &app.state.mailer,
            &Email::parse("una@u.example").unwrap(),
            Some("asked by mail"),
        )
        .await
        .unwrap();
    assert_eq!(erased.workspaces_deleted.len(), 1);
    assert_eq!(entry.action, "account.delete");
    let m = app.mailbox.nth("una@u.example", 2).await;
    assert_eq!(m.subject, "Your Parlo account was closed");
    assert!(m.text.contains("Una's Shop"), "{}", m.text);
    assert!(m.text.contains("Sessions ended: 1"), "{}", m.text);
    app.stop().await;
}
