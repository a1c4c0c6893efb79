//! Signing in and out: login limits per account, logout ending the session on the server,
//! TOTP with replay protection and recovery codes, invitations through the second factor,
//! session cookie flags.

use parlo::crypto;
use parlo::model::*;
use parlo_tests::browser::spawn_app_at_public_url;
use parlo_tests::fixture::{PASSWORD, SiteClient, field, location};
use parlo_tests::{Backend, both_backends, spawn_app_with};
use reqwest::header::SET_COOKIE;

use super::world::*;

both_backends!(
    login_is_rate_limited_per_account,
    logout_ends_the_session_on_the_server,
    totp_login_flow_with_replay_and_recovery_codes
);

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
            &[("sealed", "AAAA"), ("code", &code(&secret))],
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = v
        .post(
            "/account/mfa",
            &csrf,
            &[("sealed", &sealed), ("code", &code(&secret))],
        )
        .await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("id=\"recovery-codes\""));
    let recovery: Vec<String> = body
        .split("<code>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_owned())
        .collect();
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
    let now_code = code(&secret);
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

fn code(secret_b32: &str) -> String {
    let raw = totp_rs::Secret::Encoded(secret_b32.to_owned())
        .to_bytes()
        .unwrap();
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, raw)
        .unwrap()
        .generate_current()
        .unwrap()
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
