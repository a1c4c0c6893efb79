//! Signing in and out: login limits per account, logout ending the session on the server,
//! TOTP with replay protection and recovery codes, invitations through the second factor,
//! session cookie flags.

use parlo::crypto;
use parlo::model::*;
use parlo_tests::browser::spawn_app_at_public_url;
use parlo_tests::fixture::{PASSWORD, SiteClient, field, location, totp_code, totp_in};
use parlo_tests::{Backend, TestApp, both_backends, spawn_app_with};
use reqwest::header::SET_COOKIE;

use super::world::*;

both_backends!(
    login_is_rate_limited_per_account,
    logout_ends_the_session_on_the_server,
    totp_login_flow_with_replay_and_recovery_codes,
    failed_logins_from_one_network_do_not_lock_the_user_out_from_another,
    the_totp_code_that_confirmed_enrolment_cannot_log_in,
    recovery_codes_are_stored_keyed_and_unkeyed_ones_keep_working
);

/// A login through a trusted proxy that says the browser is at `ip` (a fresh browser: it
/// fetches the form for its CSRF token first).
async fn login_from(app: &TestApp, ip: &str, email: &str, password: &str) -> reqwest::Response {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", ip.parse().unwrap());
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap();
    let page = http
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = field(&page, "csrf").unwrap();
    http.post(app.url("/login"))
        .header("origin", &app.base)
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

async fn failed_logins_from_one_network_do_not_lock_the_user_out_from_another(backend: Backend) {
    let app = spawn_app_at_public_url(backend, |s| {
        s.trusted_proxies = Some(vec!["127.0.0.1/32".parse().unwrap()]);
    })
    .await;
    let v = SiteClient::new(&app);
    v.sign_up("dana@d.example", "Dana").await;
    v.logout().await;
    // An attacker on network A guesses ten times.
    for i in 0..10 {
        let r = login_from(&app, "198.51.100.7", "dana@d.example", "wrong password!").await;
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    // Network A (any address of its /24) is locked out, even with the right password...
    for ip in ["198.51.100.7", "198.51.100.201"] {
        let r = login_from(&app, ip, "dana@d.example", PASSWORD).await;
        assert_eq!(r.status(), 429, "{ip}");
        assert!(r.headers().get("retry-after").is_some());
    }
    // ...while Dana, on network B, logs in (IPv4 and IPv6 alike).
    let r = login_from(&app, "203.0.113.5", "dana@d.example", PASSWORD).await;
    assert_eq!(
        r.status(),
        303,
        "Dana is not locked out by someone elsewhere"
    );
    assert_eq!(location(&r), "/app");
    let r = login_from(&app, "2001:db8:1:2::5", "dana@d.example", PASSWORD).await;
    assert_eq!(r.status(), 303);
    app.stop().await;
}

/// Enrols TOTP for the signed-in `v`; the secret, the code that confirmed it and the
/// recovery codes shown.
async fn enrol_totp(v: &SiteClient) -> (String, String, Vec<String>) {
    let (_, page) = v.page("/account/mfa").await;
    let secret = text_of(&page, "totp-secret").to_owned();
    let sealed = field(&page, "sealed").unwrap();
    let csrf = field(&page, "csrf").unwrap();
    let confirming = totp_code(&secret);
    let r = v
        .post(
            "/account/mfa",
            &csrf,
            &[("sealed", &sealed), ("code", &confirming)],
        )
        .await;
    assert_eq!(r.status(), 200);
    (
        secret,
        confirming,
        recovery_codes_in(&r.text().await.unwrap()),
    )
}

/// The recovery codes a page shows.
fn recovery_codes_in(body: &str) -> Vec<String> {
    body.split("<code>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_owned())
        .collect()
}

async fn the_totp_code_that_confirmed_enrolment_cannot_log_in(backend: Backend) {
    let app = spawn_app_at_public_url(backend, |_| {}).await;
    let v = SiteClient::new(&app);
    v.sign_up("gus@g.example", "Gus").await;
    let (_, confirming, _) = enrol_totp(&v).await;
    // Someone who watched the enrolment (shoulder, screen share) replays the code at once.
    v.logout().await;
    let r = v.login("gus@g.example", PASSWORD).await;
    assert_eq!(location(&r), "/login/mfa");
    let csrf = v.csrf("/login/mfa").await;
    let r = v.post("/login/mfa", &csrf, &[("code", &confirming)]).await;
    assert_eq!(r.status(), 401, "the enrolment code was replayed");
    assert_eq!(v.get("/app").await.status(), 303, "still half-way");
    app.stop().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What versions before keyed recovery codes stored for a code: hex SHA-256.
fn unkeyed_entry(code: &str) -> String {
    let norm: String = code.chars().filter(|c| *c != '-').collect();
    hex(&crypto::sha256(
        format!("parlo:recovery:v1:{norm}").as_bytes(),
    ))
}

async fn recovery_codes_are_stored_keyed_and_unkeyed_ones_keep_working(backend: Backend) {
    let app = spawn_app_at_public_url(backend, |_| {}).await;
    let v = SiteClient::new(&app);
    v.sign_up("gus@g.example", "Gus").await;
    let (_, _, recovery) = enrol_totp(&v).await;
    assert_eq!(recovery.len(), 10);
    let user = account(&app, "gus@g.example").await;
    // A copy of the database cannot test guesses: no entry is a plain hash of a code.
    let entries = app.store().recovery_code_entries(user.id).await.unwrap();
    assert_eq!(entries.len(), 10);
    for code in &recovery {
        assert!(
            !entries.contains(&unkeyed_entry(code)),
            "{code} stored unkeyed"
        );
    }
    assert!(entries.iter().all(|e| e.starts_with("k1:")), "{entries:?}");

    // Codes an older version stored unkeyed keep working, and are keyed at the next login.
    let old = ["abcde-fghjk", "mnpqr-stuvw"];
    let unkeyed: Vec<String> = old.iter().map(|c| unkeyed_entry(c)).collect();
    app.store()
        .set_recovery_codes(user.id, &unkeyed)
        .await
        .unwrap();
    v.logout().await;
    v.login("gus@g.example", PASSWORD).await;
    let entries = app.store().recovery_code_entries(user.id).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert!(
        entries
            .iter()
            .all(|e| e.starts_with("k1:") && !unkeyed.contains(e)),
        "{entries:?}"
    );
    let csrf = v.csrf("/login/mfa").await;
    let r = v
        .post("/login/mfa", &csrf, &[("code", "ABCDE FGHJK")])
        .await;
    assert_eq!(location(&r), "/app");
    v.logout().await;
    v.login("gus@g.example", PASSWORD).await;
    let csrf = v.csrf("/login/mfa").await;
    let r = v.post("/login/mfa", &csrf, &[("code", old[0])]).await;
    assert_eq!(r.status(), 401, "used once");
    let r = v.post("/login/mfa", &csrf, &[("code", old[1])]).await;
    assert_eq!(location(&r), "/app");
    assert_eq!(app.store().recovery_codes_left(user.id).await.unwrap(), 0);
    app.stop().await;
}

#[tokio::test]
async fn the_page_showing_the_totp_secret_is_never_cached() {
    let app = spawn_app_at_public_url(Backend::Sqlite, |_| {}).await;
    let v = SiteClient::new(&app);
    v.sign_up("gus@g.example", "Gus").await;
    let r = v.get("/account/mfa").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let page = r.text().await.unwrap();
    // The same page again after a wrong code (it shows the secret again).
    let r = v
        .post(
            "/account/mfa",
            &field(&page, "csrf").unwrap(),
            &[
                ("sealed", &field(&page, "sealed").unwrap()),
                ("code", "000000"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.headers()["cache-control"], "no-store");
    // And the recovery codes page after a right one.
    let secret = text_of(&page, "totp-secret").to_owned();
    let r = v
        .post(
            "/account/mfa",
            &field(&page, "csrf").unwrap(),
            &[
                ("sealed", &field(&page, "sealed").unwrap()),
                ("code", &totp_code(&secret)),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    app.stop().await;
}

async fn login_is_rate_limited_per_account(backend: Backend) {
    let app = spawn_app_at_public_url(backend, |_| {}).await;
    let v = SiteClient::new(&app);
    v.sign_up("dana@d.example", "Dana").await;
    v.logout().await;
    for i in 0..10 {
        let r = v.login("dana@d.example", "wrong password!").await;
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    // Now even the right password is refused for a while, with Retry-After.
    let r = v.login("Dana@D.example", PASSWORD).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    // Another visitor on another account is not affected by Dana's limit.
    let other = SiteClient::new(&app);
    other.sign_up("erin@e.example", "Erin").await;
    other.logout().await;
    assert_eq!(other.login("erin@e.example", PASSWORD).await.status(), 303);
    let t = app
        .store()
        .memberships_of(
            app.store()
                .user_by_email(&Email::parse("dana@d.example").unwrap())
                .await
                .unwrap()
                .unwrap()
                .id,
        )
        .await
        .unwrap()[0]
        .tenant_id;
    let audit = app.store().audit_log(t, 100).await.unwrap();
    assert_eq!(
        audit.iter().filter(|e| e.action == "login.failure").count(),
        10
    );
    assert!(
        audit.iter().all(|e| !e.details.contains("wrong password")),
        "no password in the audit log"
    );
    app.stop().await;
}

async fn logout_ends_the_session_on_the_server(backend: Backend) {
    let app = spawn_app_at_public_url(backend, |_| {}).await;
    let v = SiteClient::new(&app);
    let t = v.sign_up("fay@f.example", "Fay").await;
    v.logout().await;
    // Log in and keep the cookie, as an attacker who copied it would.
    let r = v.login("fay@f.example", PASSWORD).await;
    assert_eq!(r.status(), 303);
    let jar_cookie = r.headers().get_all(SET_COOKIE).iter().find_map(|h| {
        let s = h.to_str().unwrap();
        s.strip_prefix("parlo_session=")
            .map(|rest| rest.split(';').next().unwrap().to_owned())
    });
    let cookie = jar_cookie.expect("login sets the session cookie");
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let with_cookie = || {
        raw.get(app.url(&format!("/w/{t}")))
            .header("cookie", format!("parlo_session={cookie}"))
    };
    assert_eq!(with_cookie().send().await.unwrap().status(), 200);
    assert!(
        app.store()
            .login_session(&crypto::sha256(cookie.as_bytes()))
            .await
            .unwrap()
            .is_some()
    );
    v.logout().await;
    let r = with_cookie().send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login");
    assert!(
        app.store()
            .login_session(&crypto::sha256(cookie.as_bytes()))
            .await
            .unwrap()
            .is_none()
    );
    app.stop().await;
}

async fn totp_login_flow_with_replay_and_recovery_codes(backend: Backend) {
    let app = spawn_app_at_public_url(backend, |_| {}).await;
    let v = SiteClient::new(&app);
    v.sign_up("gus@g.example", "Gus").await;
    let (_, page) = v.page("/account/mfa").await;
    let secret = text_of(&page, "totp-secret").to_owned();
    let sealed = field(&page, "sealed").unwrap();
    let csrf = field(&page, "csrf").unwrap();
    assert!(
        page.contains("<svg role=\"img\""),
        "the QR code is inline SVG"
    );
    let wrong = v
        .post(
            "/account/mfa",
            &csrf,
            &[("sealed", &sealed), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status(), 422);
    // A sealed secret is bound to its user: another account cannot enrol with it.
    let r = v
        .post(
            "/account/mfa",
            &csrf,
            &[("sealed", "AAAA"), ("code", &totp_code(&secret))],
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = v
        .post(
            "/account/mfa",
            &csrf,
            &[("sealed", &sealed), ("code", &totp_code(&secret))],
        )
        .await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("id=\"recovery-codes\""));
    let recovery = recovery_codes_in(&body);
    assert_eq!(recovery.len(), 10);
    let user = app
        .store()
        .user_by_email(&Email::parse("gus@g.example").unwrap())
        .await
        .unwrap()
        .unwrap();
    let stored = user.totp.expect("TOTP is on");
    assert!(
        !stored
            .ciphertext
            .windows(secret.len())
            .any(|w| w == secret.as_bytes()),
        "the secret is sealed"
    );

    v.logout().await;
    let r = v.login("gus@g.example", PASSWORD).await;
    assert_eq!(location(&r), "/login/mfa");
    // Half-way, nothing else opens.
    let r = v.get("/app").await;
    assert_eq!(
        (r.status().as_u16(), location(&r)),
        (303, "/login/mfa".to_owned())
    );
    let csrf = v.csrf("/login/mfa").await;
    assert_eq!(
        v.post("/login/mfa", &csrf, &[("code", "123456")])
            .await
            .status(),
        401
    );
    // The enrolment used the current step; the next step's code (accepted: one step of
    // clock skew) is a fresh one.
    let now_code = totp_in(&secret, 1);
    let r = v.post("/login/mfa", &csrf, &[("code", &now_code)]).await;
    assert_eq!(location(&r), "/app");
    assert_eq!(v.get("/app").await.status(), 200);

    // The same code cannot log in twice; a recovery code can, once.
    v.logout().await;
    v.login("gus@g.example", PASSWORD).await;
    let csrf = v.csrf("/login/mfa").await;
    assert_eq!(
        v.post("/login/mfa", &csrf, &[("code", &now_code)])
            .await
            .status(),
        401,
        "replayed TOTP code"
    );
    let r = v
        .post(
            "/login/mfa",
            &csrf,
            &[("code", &recovery[0].to_uppercase())],
        )
        .await;
    assert_eq!(location(&r), "/app");
    v.logout().await;
    v.login("gus@g.example", PASSWORD).await;
    let csrf = v.csrf("/login/mfa").await;
    assert_eq!(
        v.post("/login/mfa", &csrf, &[("code", &recovery[0])])
            .await
            .status(),
        401,
        "used recovery code"
    );
    assert_eq!(app.store().recovery_codes_left(user.id).await.unwrap(), 9);
    let t = app.store().memberships_of(user.id).await.unwrap()[0].tenant_id;
    let actions: Vec<String> = app
        .store()
        .audit_log(t, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(
        actions.contains(&"mfa.enable".to_owned()) && actions.contains(&"login.success".to_owned()),
        "{actions:?}"
    );

    // Accepting an invitation by logging in keeps the invitation through the second factor.
    let hal = SiteClient::new(&app);
    let th = hal.sign_up("hal@h.example", "Hal").await;
    let csrf = hal.csrf(&format!("/w/{th}/members")).await;
    let body = hal
        .post(
            &format!("/w/{th}/invitations"),
            &csrf,
            &[("role", "member"), ("email", "gus@g.example")],
        )
        .await
        .text()
        .await
        .unwrap();
    let token = text_of(&body, "invite-link")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    v.logout().await;
    let csrf = v.csrf(&format!("/login?invite={token}")).await;
    let r = v
        .post(
            "/login",
            &csrf,
            &[
                ("email", "gus@g.example"),
                ("password", PASSWORD),
                ("invite", &token),
            ],
        )
        .await;
    assert_eq!(location(&r), format!("/login/mfa?invite={token}"));
    let (_, page) = v.page(&location(&r)).await;
    assert_eq!(field(&page, "invite").as_deref(), Some(token.as_str()));
    let csrf = field(&page, "csrf").unwrap();
    let r = v
        .post(
            "/login/mfa",
            &csrf,
            &[("code", &recovery[1]), ("invite", &token)],
        )
        .await;
    assert_eq!(location(&r), format!("/invite/{token}"));
    assert_eq!(
        v.get(&format!("/invite/{token}")).await.status(),
        200,
        "the invitation opens for the now logged-in user"
    );
    app.stop().await;
}

#[tokio::test]
async fn session_cookies_carry_the_right_flags() {
    // https public URL: __Host- prefix and Secure. (The test talks plain HTTP to the server
    // behind it, like a TLS-terminating proxy would, and handles cookies by hand.)
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.public_url = Some("https://chat.example.test".parse().unwrap())
    })
    .await;
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = raw.get(app.url("/signup")).send().await.unwrap();
    let pre = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(pre.starts_with("__Host-parlo_presession="), "{pre}");
    let pre_value = pre.split(';').next().unwrap().to_owned();
    let csrf = field(&r.text().await.unwrap(), "csrf").unwrap();
    let r = raw
        .post(app.url("/signup"))
        .header("cookie", &pre_value)
        .header("origin", "https://chat.example.test")
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "hal@h.example"),
            ("password", PASSWORD),
            ("workspace", "Hal"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers().get(SET_COOKIE).is_none(), "not signed in yet");
    // Confirming the address from the mailed link signs in.
    let mail = app.mailbox.nth("hal@h.example", 1).await;
    let page = raw
        .get(app.url(&mail.link_path("/verify/")))
        .header("cookie", &pre_value)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (token, csrf) = (
        field(&page, "token").unwrap(),
        field(&page, "csrf").unwrap(),
    );
    let r = raw
        .post(app.url("/verify"))
        .header("cookie", &pre_value)
        .header("origin", "https://chat.example.test")
        .form(&[("csrf", csrf.as_str()), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-parlo_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(
            cookie.split("; ").any(|p| p == flag),
            "{flag} missing: {cookie}"
        );
    }
    assert!(
        !cookie.contains("Domain"),
        "a __Host- cookie has no Domain: {cookie}"
    );
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    assert!(value.len() >= 43, "256 random bits");
    // Only the hash is stored.
    assert!(
        app.store()
            .login_session(value.as_bytes())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        app.store()
            .login_session(&crypto::sha256(value.as_bytes()))
            .await
            .unwrap()
            .is_some()
    );
    app.stop().await;

    // http public URL: no prefix, no Secure (a browser would drop a Secure cookie on http).
    let app = spawn_app_at_public_url(Backend::Sqlite, |_| {}).await;
    let v = SiteClient::new(&app);
    v.sign_up("ida@i.example", "Ida").await;
    v.logout().await;
    let r = v.login("ida@i.example", PASSWORD).await;
    let cookie = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("parlo_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
    app.stop().await;
}
