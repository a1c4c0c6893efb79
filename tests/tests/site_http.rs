//! The customer site over HTTP, as a browser without JavaScript would use it, on both
//! backends: tenant isolation of every workspace route (one table), roles, CSRF, session
//! cookies, login limits, logout, TOTP, invitations, keys, embed snippets, trust pages.

use parlo::crypto;
use parlo::model::*;
use parlo::storage::*;
use parlo_tests::browser::spawn_app_at_public_url;
use parlo_tests::fake_mistral::FakeMistral;
use parlo_tests::{Backend, TestApp, both_backends, spawn_app_with};
use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};

const PASSWORD: &str = "correct horse battery staple";

/// One person's browser: its own cookie jar, sends `Origin` like a browser posting a form.
struct Visitor {
    http: reqwest::Client,
    base: String,
}

impl Visitor {
    fn new(app: &TestApp) -> Visitor {
        Visitor {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base.clone(),
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn page(&self, path: &str) -> (StatusCode, String) {
        let r = self.get(path).await;
        (r.status(), r.text().await.unwrap())
    }

    /// The CSRF token of the forms on `path`.
    async fn csrf(&self, path: &str) -> String {
        let (status, body) = self.page(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        field(&body, "csrf").unwrap_or_else(|| panic!("no csrf field on {path}"))
    }

    async fn post_raw(
        &self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.http.post(format!("{}{path}", self.base)).form(form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send().await.unwrap()
    }

    /// A form post with this session's CSRF token (taken from `/account` or the given page).
    async fn post(&self, path: &str, csrf: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut fields = vec![("csrf", csrf)];
        fields.extend_from_slice(form);
        self.post_raw(path, &fields, Some(&self.base)).await
    }

    async fn signup(&self, email: &str, workspace: &str) -> TenantId {
        let csrf = self.csrf("/signup").await;
        let r = self
            .post(
                "/signup",
                &csrf,
                &[
                    ("email", email),
                    ("password", PASSWORD),
                    ("workspace", workspace),
                ],
            )
            .await;
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        tenant_in(&location(&r))
    }

    async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        let csrf = self.csrf("/login").await;
        self.post("/login", &csrf, &[("email", email), ("password", password)])
            .await
    }

    async fn logout(&self) {
        let csrf = self.csrf_any().await;
        let r = self.post("/logout", &csrf, &[]).await;
        assert_eq!(r.status(), 303);
    }

    /// A CSRF token of the current session, from whichever page it may open.
    async fn csrf_any(&self) -> String {
        for path in ["/account", "/login/mfa", "/login"] {
            let (status, body) = self.page(path).await;
            if status == 200
                && let Some(t) = field(&body, "csrf")
            {
                return t;
            }
        }
        panic!("no page with a CSRF token")
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers()[LOCATION].to_str().unwrap().to_owned()
}

fn tenant_in(path: &str) -> TenantId {
    path.strip_prefix("/w/")
        .and_then(|p| p.split(['/', '?']).next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no workspace in {path}"))
}

/// The value of the `<input name="…" value="…">` in a page.
fn field(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("name=\"{name}\" value=\""))? + name.len() + 15;
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

fn text_of<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let start = at + html[at..].find('>').unwrap() + 1;
    let end = start + html[start..].find('<').unwrap();
    &html[start..end]
}

async fn new_bot(store: &Store, t: TenantId, name: &str) -> Bot {
    let settings = BotSettings::parse(&BotInput {
        name: name.into(),
        allowed_origins: "https://shop.example".into(),
        ..BotInput::default()
    })
    .unwrap();
    store.create_bot(t, &settings).await.unwrap()
}

async fn new_conversation(store: &Store, t: TenantId, bot: BotId, text: &str) -> Conversation {
    let c = store
        .create_conversation(
            t,
            &NewConversation {
                bot_id: bot,
                origin: "https://shop.example".into(),
                resume_hash: vec![7; 32],
            },
        )
        .await
        .unwrap();
    for (role, content) in [
        (MessageRole::User, "What does it cost?"),
        (MessageRole::Assistant, text),
    ] {
        store
            .append_message(
                t,
                &NewMessage {
                    conversation_id: c.id,
                    role,
                    content: content.into(),
                    status: MessageStatus::Complete,
                },
            )
            .await
            .unwrap();
    }
    c
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Needs {
    Member,
    Manager,
    Owner,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Method {
    Get,
    Post,
}

/// Every route of a workspace, with the role it needs. `site_routes_are_all_in_the_table`
/// fails when a `/w/{t}/…` route is added to the code but not here.
const WORKSPACE_ROUTES: &[(Method, &str, Needs)] = &[
    (Method::Get, "/w/{t}", Needs::Member),
    (Method::Post, "/w/{t}/bots", Needs::Manager),
    (Method::Get, "/w/{t}/bots/new", Needs::Manager),
    (Method::Get, "/w/{t}/bots/{bot}", Needs::Member),
    (Method::Post, "/w/{t}/bots/{bot}", Needs::Manager),
    (Method::Post, "/w/{t}/bots/{bot}/delete", Needs::Manager),
    (Method::Get, "/w/{t}/bots/{bot}/embed", Needs::Member),
    (Method::Get, "/w/{t}/bots/{bot}/preview", Needs::Member),
    (Method::Get, "/w/{t}/keys", Needs::Member),
    (Method::Post, "/w/{t}/keys", Needs::Manager),
    (Method::Post, "/w/{t}/keys/delete", Needs::Manager),
    (Method::Get, "/w/{t}/members", Needs::Member),
    (Method::Post, "/w/{t}/invitations", Needs::Manager),
    (
        Method::Post,
        "/w/{t}/invitations/{id}/revoke",
        Needs::Manager,
    ),
    (Method::Post, "/w/{t}/members/{user}/role", Needs::Manager),
    (Method::Post, "/w/{t}/members/{user}/remove", Needs::Manager),
    (Method::Get, "/w/{t}/logs", Needs::Member),
    (Method::Post, "/w/{t}/logs/wipe", Needs::Manager),
    (Method::Get, "/w/{t}/logs/{conversation}", Needs::Member),
    (Method::Get, "/w/{t}/settings", Needs::Member),
    (Method::Post, "/w/{t}/settings/name", Needs::Manager),
    (Method::Get, "/w/{t}/export", Needs::Manager),
    (Method::Get, "/w/{t}/audit", Needs::Manager),
    (Method::Post, "/w/{t}/delete", Needs::Owner),
];

/// Form fields that would make each action succeed, so a refusal is the role check's doing.
fn valid_form(path: &str) -> Vec<(&'static str, String)> {
    let f = |v: &[(&'static str, &str)]| v.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    if path.ends_with("/bots") || path.contains("/bots/") && !path.ends_with("/delete") {
        f(&[
            ("name", "Renamed"),
            ("model", "mistral-small-latest"),
            ("retention_days", "30"),
        ])
    } else if path.ends_with("/keys") {
        f(&[("api_key", "sk-attacker-key-0000")])
    } else if path.ends_with("/invitations") || path.ends_with("/role") {
        f(&[("role", "admin")])
    } else if path.ends_with("/wipe") {
        f(&[("confirm", "yes")])
    } else if path.ends_with("/settings/name") {
        f(&[("name", "Pwned")])
    } else {
        f(&[("confirm", "ignored")])
    }
}

/// A workspace with one of everything, and the ids its routes take.
struct Fixture {
    t: TenantId,
    bot: Bot,
    conversation: ConversationId,
    invitation: InvitationId,
    other_user: UserId,
}

impl Fixture {
    fn path(&self, template: &str) -> String {
        template
            .replace("{t}", &self.t.to_string())
            .replace("{bot}", &self.bot.id.to_string())
            .replace("{conversation}", &self.conversation.to_string())
            .replace("{id}", &self.invitation.to_string())
            .replace("{user}", &self.other_user.to_string())
    }
}

async fn fixture(app: &TestApp, t: TenantId, other_user: UserId) -> Fixture {
    let store = app.store();
    let bot = new_bot(store, t, "Helper").await;
    let conversation = new_conversation(store, t, bot.id, "It costs **9 €**.")
        .await
        .id;
    let invitation = store
        .create_invitation(
            t,
            &NewInvitation {
                token_hash: crypto::sha256(t.to_string().as_bytes()),
                role: Role::Member,
                created_by: None,
                expires_at: Timestamp::now().plus_secs(3600),
            },
        )
        .await
        .unwrap()
        .id;
    Fixture {
        t,
        bot,
        conversation,
        invitation,
        other_user,
    }
}

async fn request(v: &Visitor, csrf: &str, method: Method, path: &str) -> reqwest::Response {
    match method {
        Method::Get => v.get(path).await,
        Method::Post => {
            let form = valid_form(path);
            let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            v.post(path, csrf, &fields).await
        }
    }
}

/// Alice (owner of A), Bob (owner of B) and Carol (member of A, joined by invitation).
struct World {
    app: TestApp,
    mistral: FakeMistral,
    alice: Visitor,
    bob: Visitor,
    carol: Visitor,
    a: Fixture,
    b: Fixture,
}

async fn world(backend: Backend) -> World {
    let mistral = FakeMistral::start().await;
    let upstream = mistral.base_url.clone();
    let app = spawn_app_at_public_url(backend, |s| s.mistral_base_url = Some(upstream)).await;
    let (alice, bob, carol) = (Visitor::new(&app), Visitor::new(&app), Visitor::new(&app));
    let ta = alice.signup("alice@a.example", "Acme").await;
    let tb = bob.signup("bob@b.example", "Bolt").await;

    // Carol joins A through an invitation link made on the members page.
    let csrf = alice.csrf(&format!("/w/{ta}/members")).await;
    let r = alice
        .post(
            &format!("/w/{ta}/invitations"),
            &csrf,
            &[("role", "member")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let link = text_of(&body, "invite-link").to_owned();
    let token = link.rsplit('/').next().unwrap().to_owned();
    assert!(token.starts_with("inv_"), "{link}");
    let csrf = carol.csrf(&format!("/signup?invite={token}")).await;
    let r = carol
        .post(
            "/signup",
            &csrf,
            &[
                ("email", "carol@a.example"),
                ("password", PASSWORD),
                ("invite", &token),
            ],
        )
        .await;
    assert_eq!(location(&r), format!("/w/{ta}?notice=joined"));
    // The link works once.
    assert_eq!(carol.get(&format!("/invite/{token}")).await.status(), 404);

    let alice_id = app
        .store()
        .user_by_email(&Email::parse("alice@a.example").unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let bob_id = app
        .store()
        .user_by_email(&Email::parse("bob@b.example").unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let a = fixture(&app, ta, alice_id).await;
    let b = fixture(&app, tb, bob_id).await;
    World {
        app,
        mistral,
        alice,
        bob,
        carol,
        a,
        b,
    }
}

async fn b_is_intact(w: &World) {
    let store = w.app.store();
    let bot = store
        .bot(w.b.t, w.b.bot.id)
        .await
        .unwrap()
        .expect("B's bot is still there");
    assert_eq!(bot.settings.name, "Helper");
    assert!(
        store
            .conversation(w.b.t, w.b.conversation)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .provider_key(w.b.t, Provider::Mistral)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.workspace(w.b.t).await.unwrap().unwrap().name, "Bolt");
    assert_eq!(store.members(w.b.t).await.unwrap().len(), 1);
}

both_backends! {
    every_workspace_route_is_404_to_members_of_other_workspaces => |backend| async move {
        let w = world(backend).await;
        for (who, v) in [("alice (owner of A)", &w.alice), ("carol (member of A)", &w.carol)] {
            let csrf = v.csrf("/account").await;
            for (method, template, _) in WORKSPACE_ROUTES {
                let path = w.b.path(template);
                let r = request(v, &csrf, *method, &path).await;
                assert_eq!(r.status(), 404, "{who}: {method:?} {path}");
                let body = r.text().await.unwrap();
                assert!(!body.contains("Bolt") && !body.contains("Helper"), "{who}: {path} leaks: {body}");
            }
        }
        b_is_intact(&w).await;
        // The same routes work for B's owner (so the 404s above are not just broken routes).
        let csrf = w.bob.csrf("/account").await;
        for (method, template, _) in WORKSPACE_ROUTES.iter().filter(|r| r.0 == Method::Get) {
            let r = request(&w.bob, &csrf, *method, &w.b.path(template)).await;
            assert_eq!(r.status(), 200, "bob: {template}");
        }
        w.app.stop().await;
    };

    members_cannot_manage_and_get_403_in_their_own_workspace => |backend| async move {
        let w = world(backend).await;
        let csrf = w.carol.csrf("/account").await;
        for (method, template, needs) in WORKSPACE_ROUTES {
            let path = w.a.path(template);
            let r = request(&w.carol, &csrf, *method, &path).await;
            let expected = if *needs == Needs::Member { 200 } else { 403 };
            assert_eq!(r.status(), expected, "carol: {method:?} {path}");
        }
        let store = w.app.store();
        assert!(store.provider_key(w.a.t, Provider::Mistral).await.unwrap().is_none(), "a member set the key");
        assert_eq!(store.members(w.a.t).await.unwrap().iter().find(|m| m.email == "alice@a.example").unwrap().role, Role::Owner);
        assert!(store.workspace(w.a.t).await.unwrap().is_some());
        assert!(store.bot(w.a.t, w.a.bot.id).await.unwrap().is_some());
        let audit = store.audit_log(w.a.t, 500).await.unwrap();
        assert!(audit.iter().filter(|e| e.action == "permission.denied").count() >= 10, "refusals are audited");
        w.app.stop().await;
    };

    posts_without_a_valid_csrf_token_or_from_another_origin_are_refused => |backend| async move {
        let w = world(backend).await;
        let path = format!("/w/{}/bots", w.a.t);
        let bot = [("name", "Sneaky"), ("retention_days", "30")];
        let csrf = w.alice.csrf("/account").await;
        let bob_csrf = w.bob.csrf("/account").await;
        let base = w.alice.base.clone();
        let forged = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let cases = [
            ("no token", None, base.as_str()),
            ("wrong token", Some(forged), base.as_str()),
            ("another session's token", Some(bob_csrf.as_str()), base.as_str()),
            ("valid token, foreign origin", Some(csrf.as_str()), "https://evil.example"),
            ("valid token, opaque origin", Some(csrf.as_str()), "null"),
        ];
        for (case, token, origin) in cases {
            let mut form = bot.to_vec();
            if let Some(t) = token {
                form.push(("csrf", t));
            }
            let r = w.alice.post_raw(&path, &form, Some(origin)).await;
            assert_eq!(r.status(), 403, "{case}");
        }
        assert_eq!(w.app.store().bots(w.a.t).await.unwrap().len(), 1, "no bot was created");
        // Logging in is protected too (login CSRF).
        let r = w.alice.post_raw("/login", &[("email", "alice@a.example"), ("password", PASSWORD)], None).await;
        assert_eq!(r.status(), 403);
        // The same request with the token and our origin works.
        let r = w.alice.post(&path, &csrf, &bot).await;
        assert_eq!(r.status(), 303);
        assert_eq!(w.app.store().bots(w.a.t).await.unwrap().len(), 2);
        w.app.stop().await;
    };

    login_is_rate_limited_per_account => |backend| async move {
        let app = spawn_app_at_public_url(backend, |_| {}).await;
        let v = Visitor::new(&app);
        v.signup("dana@d.example", "Dana").await;
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
        let other = Visitor::new(&app);
        other.signup("erin@e.example", "Erin").await;
        other.logout().await;
        assert_eq!(other.login("erin@e.example", PASSWORD).await.status(), 303);
        let t = app.store().memberships_of(app.store().user_by_email(&Email::parse("dana@d.example").unwrap()).await.unwrap().unwrap().id).await.unwrap()[0].tenant_id;
        let audit = app.store().audit_log(t, 100).await.unwrap();
        assert_eq!(audit.iter().filter(|e| e.action == "login.failure").count(), 10);
        assert!(audit.iter().all(|e| !e.details.contains("wrong password")), "no password in the audit log");
        app.stop().await;
    };

    logout_ends_the_session_on_the_server => |backend| async move {
        let app = spawn_app_at_public_url(backend, |_| {}).await;
        let v = Visitor::new(&app);
        let t = v.signup("fay@f.example", "Fay").await;
        v.logout().await;
        // Log in and keep the cookie, as an attacker who copied it would.
        let r = v.login("fay@f.example", PASSWORD).await;
        assert_eq!(r.status(), 303);
        let jar_cookie = r.headers().get_all(SET_COOKIE).iter().find_map(|h| {
            let s = h.to_str().unwrap();
            s.strip_prefix("parlo_session=").map(|rest| rest.split(';').next().unwrap().to_owned())
        });
        let cookie = jar_cookie.expect("login sets the session cookie");
        let raw = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let with_cookie = || raw.get(app.url(&format!("/w/{t}"))).header("cookie", format!("parlo_session={cookie}"));
        assert_eq!(with_cookie().send().await.unwrap().status(), 200);
        assert!(app.store().login_session(&crypto::sha256(cookie.as_bytes())).await.unwrap().is_some());
        v.logout().await;
        let r = with_cookie().send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(location(&r), "/login");
        assert!(app.store().login_session(&crypto::sha256(cookie.as_bytes())).await.unwrap().is_none());
        app.stop().await;
    };

    totp_login_flow_with_replay_and_recovery_codes => |backend| async move {
        let app = spawn_app_at_public_url(backend, |_| {}).await;
        let v = Visitor::new(&app);
        v.signup("gus@g.example", "Gus").await;
        let (_, page) = v.page("/account/mfa").await;
        let secret = text_of(&page, "totp-secret").to_owned();
        let sealed = field(&page, "sealed").unwrap();
        let csrf = field(&page, "csrf").unwrap();
        assert!(page.contains("<svg role=\"img\""), "the QR code is inline SVG");
        let wrong = v.post("/account/mfa", &csrf, &[("sealed", &sealed), ("code", "000000")]).await;
        assert_eq!(wrong.status(), 422);
        // A sealed secret is bound to its user: another account cannot enrol with it.
        let r = v.post("/account/mfa", &csrf, &[("sealed", "AAAA"), ("code", &code(&secret))]).await;
        assert_eq!(r.status(), 400);
        let r = v.post("/account/mfa", &csrf, &[("sealed", &sealed), ("code", &code(&secret))]).await;
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        assert!(body.contains("id=\"recovery-codes\""));
        let recovery: Vec<String> = body.split("<code>").skip(1).map(|s| s.split('<').next().unwrap().to_owned()).collect();
        assert_eq!(recovery.len(), 10);
        let user = app.store().user_by_email(&Email::parse("gus@g.example").unwrap()).await.unwrap().unwrap();
        let stored = user.totp.expect("TOTP is on");
        assert!(!stored.ciphertext.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret is sealed");

        v.logout().await;
        let r = v.login("gus@g.example", PASSWORD).await;
        assert_eq!(location(&r), "/login/mfa");
        // Half-way, nothing else opens.
        let r = v.get("/app").await;
        assert_eq!((r.status().as_u16(), location(&r)), (303, "/login/mfa".to_owned()));
        let csrf = v.csrf("/login/mfa").await;
        assert_eq!(v.post("/login/mfa", &csrf, &[("code", "123456")]).await.status(), 401);
        let now_code = code(&secret);
        let r = v.post("/login/mfa", &csrf, &[("code", &now_code)]).await;
        assert_eq!(location(&r), "/app");
        assert_eq!(v.get("/app").await.status(), 200);

        // The same code cannot log in twice; a recovery code can, once.
        v.logout().await;
        v.login("gus@g.example", PASSWORD).await;
        let csrf = v.csrf("/login/mfa").await;
        assert_eq!(v.post("/login/mfa", &csrf, &[("code", &now_code)]).await.status(), 401, "replayed TOTP code");
        let r = v.post("/login/mfa", &csrf, &[("code", &recovery[0].to_uppercase())]).await;
        assert_eq!(location(&r), "/app");
        v.logout().await;
        v.login("gus@g.example", PASSWORD).await;
        let csrf = v.csrf("/login/mfa").await;
        assert_eq!(v.post("/login/mfa", &csrf, &[("code", &recovery[0])]).await.status(), 401, "used recovery code");
        assert_eq!(app.store().recovery_codes_left(user.id).await.unwrap(), 9);
        let t = app.store().memberships_of(user.id).await.unwrap()[0].tenant_id;
        let actions: Vec<String> = app.store().audit_log(t, 100).await.unwrap().into_iter().map(|e| e.action).collect();
        assert!(actions.contains(&"mfa.enable".to_owned()) && actions.contains(&"login.success".to_owned()), "{actions:?}");

        // Accepting an invitation by logging in keeps the invitation through the second factor.
        let hal = Visitor::new(&app);
        let th = hal.signup("hal@h.example", "Hal").await;
        let csrf = hal.csrf(&format!("/w/{th}/members")).await;
        let body = hal.post(&format!("/w/{th}/invitations"), &csrf, &[("role", "member")]).await.text().await.unwrap();
        let token = text_of(&body, "invite-link").rsplit('/').next().unwrap().to_owned();
        v.logout().await;
        let csrf = v.csrf(&format!("/login?invite={token}")).await;
        let r = v.post("/login", &csrf, &[("email", "gus@g.example"), ("password", PASSWORD), ("invite", &token)]).await;
        assert_eq!(location(&r), format!("/login/mfa?invite={token}"));
        let (_, page) = v.page(&location(&r)).await;
        assert_eq!(field(&page, "invite").as_deref(), Some(token.as_str()));
        let csrf = field(&page, "csrf").unwrap();
        let r = v.post("/login/mfa", &csrf, &[("code", &recovery[1]), ("invite", &token)]).await;
        assert_eq!(location(&r), format!("/invite/{token}"));
        assert_eq!(v.get(&format!("/invite/{token}")).await.status(), 200, "the invitation opens for the now logged-in user");
        app.stop().await;
    };

    byok_key_is_checked_upstream_sealed_and_shown_only_as_last_four => |backend| async move {
        let w = world(backend).await;
        let key = "sk-live-0123456789abcdefWXYZ";
        let path = format!("/w/{}/keys", w.a.t);
        let csrf = w.alice.csrf(&path).await;
        // A key Mistral refuses is not stored.
        let r = w.alice.post(&path, &csrf, &[("api_key", "sk-typo-0000000000")]).await;
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("Mistral refused this key"));
        assert!(w.app.store().provider_key(w.a.t, Provider::Mistral).await.unwrap().is_none());
        w.mistral.accept_key(key);
        let r = w.alice.post(&path, &csrf, &[("api_key", key)]).await;
        assert_eq!(r.status(), 303);
        assert_eq!(location(&r), format!("/w/{}/keys?notice=key_saved", w.a.t));
        let checked = w.mistral.requests().into_iter().filter(|q| q.path.ends_with("/models")).count();
        assert_eq!(checked, 2, "both keys were checked with the upstream");
        let (_, page) = w.alice.page(&location(&r)).await;
        assert!(page.contains("WXYZ") && !page.contains("0123456789abcdef"), "{page}");
        let stored = w.app.store().provider_key(w.a.t, Provider::Mistral).await.unwrap().unwrap();
        assert_eq!(stored.last_four, "WXYZ");
        assert!(!stored.sealed.ciphertext.windows(8).any(|x| x == b"sk-live-"));
        let opened = crypto::open(&w.app.state.keys.master, crypto::Purpose::ProviderKey(w.a.t, Provider::Mistral), &stored.sealed).unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&opened), key);
        let audit = w.app.store().audit_log(w.a.t, 50).await.unwrap();
        let set = audit.iter().find(|e| e.action == "provider_key.set").expect("audited");
        assert!(!set.details.contains("0123456789"), "{}", set.details);
        // Delete.
        let r = w.alice.post(&format!("{path}/delete"), &csrf, &[]).await;
        assert_eq!(r.status(), 303);
        assert!(w.app.store().provider_key(w.a.t, Provider::Mistral).await.unwrap().is_none());
        w.app.stop().await;
    };

    wipe_export_and_delete_workspace => |backend| async move {
        let w = world(backend).await;
        let csrf = w.alice.csrf("/account").await;
        // Export holds everything but key material.
        let r = w.alice.get(&format!("/w/{}/export", w.a.t)).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-disposition"].to_str().unwrap().contains("attachment"));
        let export: serde_json::Value = r.json().await.unwrap();
        assert_eq!(export["workspace"]["name"], "Acme");
        assert_eq!(export["conversations"].as_array().unwrap().len(), 1);
        assert_eq!(export["conversations"][0]["messages"].as_array().unwrap().len(), 2);
        assert_eq!(export["members"].as_array().unwrap().len(), 2);
        // Wipe one bot's logs.
        let r = w.alice.post(&format!("/w/{}/logs/wipe", w.a.t), &csrf, &[("bot", &w.a.bot.id.to_string()), ("confirm", "yes")]).await;
        assert_eq!(r.status(), 303);
        assert!(w.app.store().conversation(w.a.t, w.a.conversation).await.unwrap().is_none());
        assert!(w.app.store().conversation(w.b.t, w.b.conversation).await.unwrap().is_some(), "B untouched");
        // Deleting needs the name typed.
        let del = format!("/w/{}/delete", w.a.t);
        assert_eq!(w.alice.post(&del, &csrf, &[("confirm", "acme")]).await.status(), 400);
        let r = w.alice.post(&del, &csrf, &[("confirm", "Acme")]).await;
        assert_eq!(location(&r), "/app?notice=workspace_deleted");
        assert!(w.app.store().workspace(w.a.t).await.unwrap().is_none());
        assert_eq!(w.alice.get(&format!("/w/{}", w.a.t)).await.status(), 404);
        b_is_intact(&w).await;
        w.app.stop().await;
    };
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
    let v = Visitor::new(&app);
    let csrf = v.csrf("/signup").await;
    let r = v
        .post(
            "/signup",
            &csrf,
            &[
                ("email", "ida@i.example"),
                ("password", PASSWORD),
                ("workspace", "Ida"),
            ],
        )
        .await;
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

#[test]
fn site_routes_are_all_in_the_table() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/src/site");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for chunk in text.split(".route(\"").skip(1) {
            let path = chunk.split('"').next().unwrap();
            if path.starts_with("/w/") {
                let methods = chunk.split(')').next().unwrap_or("").to_owned()
                    + chunk.split(".route(").next().unwrap_or("");
                for (m, name) in [(Method::Get, "get("), (Method::Post, "post(")] {
                    if chunk.split("\n").next().unwrap_or("").contains(name)
                        || methods.lines().next().unwrap_or("").contains(name)
                    {
                        found.push((m, path.to_owned()));
                    }
                }
            }
        }
    }
    assert!(found.len() >= 20, "the scan finds the routes: {found:?}");
    for (m, path) in &found {
        assert!(
            WORKSPACE_ROUTES
                .iter()
                .any(|(tm, tp, _)| tm == m && tp == path),
            "{m:?} {path} is not in WORKSPACE_ROUTES: add it so the authorisation tests cover it"
        );
    }
    assert_eq!(
        found.len(),
        WORKSPACE_ROUTES.len(),
        "the table lists a route the code does not have: {found:?}"
    );
}

#[tokio::test]
async fn embed_page_shows_rolling_and_pinned_snippets() {
    let dist = tempfile::tempdir().unwrap();
    let integrity = format!("sha384-{}", "Q".repeat(64));
    std::fs::write(
        dist.path().join("manifest.json"),
        serde_json::json!({
            "latest": "0.2.0",
            "versions": {
                "0.1.0": {"published_at": "2025-01-01T00:00:00Z", "files": {"widget.js": {"integrity": "sha384-old", "bytes": 10}}},
                "0.2.0": {"published_at": "2025-02-01T00:00:00Z", "files": {"widget.js": {"integrity": integrity, "bytes": 12}}},
                "0.10.0\"><script>": {"published_at": "x", "files": {"widget.js": {"integrity": integrity, "bytes": 1}}}
            }
        })
        .to_string(),
    )
    .unwrap();
    let dist_dir = dist.path().to_owned();
    let app = spawn_app_at_public_url(Backend::Sqlite, |s| s.dist_dir = Some(dist_dir)).await;
    let v = Visitor::new(&app);
    let t = v.signup("jo@j.example", "Jo").await;
    let bot = new_bot(app.store(), t, "Shop").await;
    let (status, page) = v.page(&format!("/w/{t}/bots/{}/embed", bot.id)).await;
    assert_eq!(status, 200);
    let origin = app.base.clone();
    let rolling = format!(
        "&lt;script src=&quot;{origin}/widget.js&quot; data-bot=&quot;{}&quot; async&gt;&lt;/script&gt;",
        bot.public_id
    );
    let unescape = |s: &str| {
        s.replace("&#34;", "&quot;")
            .replace("&#60;", "&lt;")
            .replace("&#62;", "&gt;")
    };
    let page = unescape(&page);
    assert!(page.contains(&rolling), "{page}");
    let pinned = format!(
        "&lt;script src=&quot;{origin}/widget/v0.2.0.js&quot; integrity=&quot;{integrity}&quot; crossorigin=&quot;anonymous&quot; data-bot=&quot;{}&quot; async&gt;&lt;/script&gt;",
        bot.public_id
    );
    assert!(page.contains(&pinned), "{page}");
    assert!(
        !page.contains("sha384-old"),
        "a malformed integrity is not offered"
    );
    assert!(
        !page.contains("<script>\""),
        "a hostile version name is not rendered"
    );
    assert!(
        page.contains(&format!("script-src {origin} &#39;wasm-unsafe-eval&#39;"))
            || page.contains(&format!("script-src {origin} 'wasm-unsafe-eval'"))
    );
    // The preview embeds the widget from this origin, with a CSP that lets it run WASM.
    let r = v.get(&format!("/w/{t}/bots/{}/preview", bot.id)).await;
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("'wasm-unsafe-eval'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let body = unescape(&r.text().await.unwrap());
    assert!(
        body.contains(&format!("data-bot=\"{}\"", bot.public_id)),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn trust_pages_come_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("subprocessors.toml");
    std::fs::write(
        &file,
        "[[subprocessor]]\nname = \"Mistral AI\"\npurpose = \"Language model inference\"\nlocation = \"EU (France)\"\nadded = 2025-01-15\n\n\
         [[subprocessor]]\nname = \"Old Host\"\npurpose = \"Hosting\"\nlocation = \"EU\"\nadded = 2024-03-01\nremoved = 2025-02-20\n",
    )
    .unwrap();
    let legal = dir.path().join("legal");
    std::fs::create_dir(&legal).unwrap();
    std::fs::write(legal.join("dpa.md"), "# Our DPA\n\nFor {{public_url}}.\n").unwrap();
    let (file2, legal2) = (file.clone(), legal.clone());
    let app = spawn_app_at_public_url(Backend::Sqlite, move |s| {
        s.subprocessors_file = Some(file2);
        s.security_contact = Some("mailto:security@example.com".into());
        s.legal_dir = Some(legal2);
        s.mistral_base_url = Some("https://api.mistral.ai".parse().unwrap());
    })
    .await;
    let v = Visitor::new(&app);
    let (status, page) = v.page("/trust").await;
    assert_eq!(status, 200);
    for needle in [
        "SQLite",
        "365 days",
        "api.mistral.ai",
        "European Union",
        "AES-256-GCM",
        "Operator-configured",
        "Mistral AI",
        "2025-02-20",
        "mailto:security@example.com",
    ] {
        assert!(page.contains(needle), "{needle} missing from /trust");
    }
    let json: serde_json::Value = v
        .get("/trust/subprocessors.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(json["subprocessors"][0]["name"], "Mistral AI");
    assert_eq!(json["subprocessors"][0]["added"], "2025-01-15");
    assert_eq!(json["subprocessors"][1]["removed"], "2025-02-20");
    assert_eq!(json["last_change"], "2025-02-20");
    let r = v.get("/.well-known/security.txt").await;
    assert_eq!(r.status(), 200);
    let txt = r.text().await.unwrap();
    assert!(
        txt.contains("Contact: mailto:security@example.com"),
        "{txt}"
    );
    assert!(
        txt.contains(&format!("Canonical: {}/.well-known/security.txt", app.base)),
        "{txt}"
    );
    let expires = txt
        .lines()
        .find_map(|l| l.strip_prefix("Expires: "))
        .unwrap();
    let year: i32 = expires[..4].parse().unwrap();
    assert!(year > 2025 && expires.ends_with('Z'), "{expires}");
    // Legal pages are for signed-in customers; the operator's DPA replaces the shipped one.
    assert_eq!(v.get("/settings/legal/dpa").await.status(), 303);
    v.signup("kim@k.example", "Kim").await;
    let (_, dpa) = v.page("/settings/legal/dpa").await;
    assert!(dpa.contains("Our DPA") && dpa.contains(&app.base), "{dpa}");
    let (_, toms) = v.page("/settings/legal/toms").await;
    assert!(
        toms.contains("Technical and organisational measures") && toms.contains("Mistral AI"),
        "{toms}"
    );
    app.stop().await;

    // Without a contact there is no security.txt rather than an invented one.
    let app = spawn_app_at_public_url(Backend::Sqlite, |_| {}).await;
    assert_eq!(
        Visitor::new(&app)
            .get("/.well-known/security.txt")
            .await
            .status(),
        404
    );
    app.stop().await;
}
