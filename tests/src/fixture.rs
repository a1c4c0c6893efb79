//! The test data and clients every integration test starts from, so the "user → workspace →
//! bot → key" setup is written once:
//!
//! - [`NewTenant`] builds a [`Tenant`]: a user owning a workspace with one bot (allowed on an
//!   origin) and, when asked, the workspace's Mistral key sealed exactly as the site seals
//!   it. Through the store ([`NewTenant::create`]) or with a real sign-up through the site
//!   ([`NewTenant::sign_up`]), which also returns the owner's signed-in [`SiteClient`].
//! - [`SiteClient`] is one person's browser without JavaScript: its own cookie jar, the CSRF
//!   token of each form, `Origin` on every post.
//! - [`WidgetClient`] is the widget on a customer's page: it starts sessions with an
//!   `Origin`, and a [`WidgetSession`] sends messages and reads history with its Bearer token.
//!
//! The fixture only writes what a test could also have written by hand; it never reaches
//! around the store or the HTTP interface.

use parlo::crypto::{Purpose, seal};
use parlo::keyring::MasterKeys;
use parlo::model::{
    Bot, BotId, BotInput, BotSettings, Conversation, ConversationId, Email, Message, MessageRole,
    MessageStatus, NewAttachment, NewAuditEntry, NewConversation, NewMessage, Provider,
    ProviderKey, TenantId, Timestamp, UserId, WorkspaceName,
};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION};
use serde_json::{Value, json};

use crate::{TEST_MASTER_KEYS, TestApp};
use parlo::storage::Store;

/// The origin fixture bots are allowed on unless a test names another.
pub const SHOP: &str = "https://shop.example";

/// The password of every account the fixture signs up through the site.
pub const PASSWORD: &str = "correct horse battery staple";

/// The greeting of the fixture's bot: markdown and a formula, so widget tests can see both
/// rendered.
pub const GREETING: &str = "Hello! Ask me about **anything**, even $x^2$.";

/// A tenant to create: its owner, workspace, bot and (optionally) Mistral key.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub email: String,
    pub workspace: String,
    pub bot: BotInput,
    /// The plaintext Mistral key to seal and store, if any.
    pub key: Option<String>,
}

/// What [`NewTenant`] created.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub tenant: TenantId,
    pub user: UserId,
    pub bot: Bot,
    /// The stored (sealed) key, when one was asked for.
    pub key: Option<ProviderKey>,
}

impl NewTenant {
    /// A workspace "Test workspace" owned by `email`, with the bot "Helper" allowed on
    /// [`SHOP`], greeting with [`GREETING`], and no key.
    pub fn owned_by(email: &str) -> NewTenant {
        NewTenant {
            email: email.to_owned(),
            workspace: "Test workspace".to_owned(),
            bot: BotInput {
                name: "Helper".into(),
                greeting: GREETING.into(),
                system_prompt: "You are a test assistant.".into(),
                allowed_origins: SHOP.into(),
                ..BotInput::default()
            },
            key: None,
        }
    }

    pub fn workspace(mut self, name: &str) -> NewTenant {
        self.workspace = name.to_owned();
        self
    }

    /// The bot's allowed origins (one per line, as the bot form takes them).
    pub fn allowed_on(mut self, origins: &str) -> NewTenant {
        self.bot.allowed_origins = origins.to_owned();
        self
    }

    /// Replaces the bot's settings entirely.
    pub fn bot(mut self, bot: BotInput) -> NewTenant {
        self.bot = bot;
        self
    }

    /// Adjusts the bot's settings.
    pub fn bot_with(mut self, adjust: impl FnOnce(&mut BotInput)) -> NewTenant {
        adjust(&mut self.bot);
        self
    }

    /// Stores `key` as the workspace's Mistral key, sealed as the site does it.
    pub fn with_key(mut self, key: &str) -> NewTenant {
        self.key = Some(key.to_owned());
        self
    }

    /// Creates the tenant through the store. The owner's password hash is a placeholder: use
    /// [`NewTenant::sign_up`] for an owner who can sign in.
    pub async fn create(self, store: &Store) -> Tenant {
        let user = store
            .create_user(&Email::parse(&self.email).unwrap(), "$argon2id$test")
            .await
            .unwrap();
        store.mark_email_verified(user.id).await.unwrap();
        let workspace = store
            .create_workspace(&WorkspaceName::parse(&self.workspace).unwrap(), user.id)
            .await
            .unwrap();
        self.finish(store, workspace.id, user.id).await
    }

    /// Signs the owner up through the site (the sign-up form creates the user and the
    /// workspace), then adds the bot and key through the store. Returns the tenant and the
    /// owner's signed-in browser.
    pub async fn sign_up(self, app: &TestApp) -> (Tenant, SiteClient) {
        let site = SiteClient::new(app);
        let tenant = site.sign_up(&self.email, &self.workspace).await;
        let user = app
            .store()
            .user_by_email(&Email::parse(&self.email).unwrap())
            .await
            .unwrap()
            .expect("the signed-up user")
            .id;
        (self.finish(app.store(), tenant, user).await, site)
    }

    async fn finish(self, store: &Store, tenant: TenantId, user: UserId) -> Tenant {
        let settings = BotSettings::parse(&self.bot).expect("valid fixture bot settings");
        let bot = store.create_bot(tenant, &settings).await.unwrap();
        let key = match &self.key {
            Some(plaintext) => {
                let key = sealed_key(tenant, plaintext);
                store.put_provider_key(tenant, &key).await.unwrap();
                Some(key)
            }
            None => None,
        };
        Tenant {
            tenant,
            user,
            bot,
            key,
        }
    }
}

impl Tenant {
    /// The widget of this tenant's bot on a page of `origin`.
    pub fn widget(&self, app: &TestApp, origin: &str) -> WidgetClient {
        WidgetClient::new(app, origin, &self.bot.public_id)
    }
}

/// `key` sealed for `tenant` as the site seals a Mistral key, with the master keys every
/// spawned app uses ([`TEST_MASTER_KEYS`]), so the app can open it.
pub fn sealed_key(tenant: TenantId, key: &str) -> ProviderKey {
    let master = MasterKeys::parse(TEST_MASTER_KEYS).expect("test master keys");
    ProviderKey {
        provider: Provider::Mistral,
        sealed: seal(
            &master,
            Purpose::ProviderKey(tenant, Provider::Mistral),
            key.as_bytes(),
        ),
        last_four: key[key.len().saturating_sub(4)..].to_owned(),
        updated_at: Timestamp::now(),
    }
}

/// A conversation of `bot` as the widget leaves one, written through the store: started on
/// [`SHOP`] with a fresh resume hash, `messages` stored complete in this order.
pub async fn chat(
    store: &Store,
    tenant: TenantId,
    bot: BotId,
    messages: &[(MessageRole, &str)],
) -> (Conversation, Vec<Message>) {
    let conversation = store
        .create_conversation(
            tenant,
            &NewConversation {
                bot_id: bot,
                origin: SHOP.into(),
                resume_hash: ConversationId::new().0.as_bytes().to_vec(),
            },
        )
        .await
        .unwrap();
    let mut stored = Vec::new();
    for &(role, content) in messages {
        let message = NewMessage {
            conversation_id: conversation.id,
            role,
            content: content.into(),
            status: MessageStatus::Complete,
        };
        stored.push(store.append_message(tenant, &message).await.unwrap());
    }
    (conversation, stored)
}

/// The record of a file a visitor attached (`image/png` or `application/pdf` by its name),
/// written through the store.
pub async fn attachment(
    store: &Store,
    tenant: TenantId,
    conversation: ConversationId,
    message: Option<&Message>,
    file_name: &str,
) {
    let content_type = if file_name.ends_with(".png") {
        "image/png"
    } else {
        "application/pdf"
    };
    let attachment = NewAttachment {
        conversation_id: conversation,
        message_id: message.map(|m| m.id),
        file_name: file_name.into(),
        content_type: content_type.into(),
        size_bytes: 1234,
        sha256: vec![7; 32],
    };
    store.add_attachment(tenant, &attachment).await.unwrap();
}

/// An entry in the workspace's audit log, written through the store.
pub async fn audit_entry(
    store: &Store,
    tenant: TenantId,
    actor: Option<UserId>,
    action: &str,
    target: &str,
) {
    let entry = NewAuditEntry {
        actor,
        action: action.into(),
        target: target.into(),
        details: json!({}),
    };
    store.append_audit(tenant, &entry).await.unwrap();
}

/// One person's browser, as a browser without JavaScript would use the site: its own cookie
/// jar, no redirects followed, `Origin` sent on posts like a browser posting a form.
pub struct SiteClient {
    http: reqwest::Client,
    pub base: String,
    /// Where the app's mail to this person arrives.
    pub mailbox: crate::smtp::Mailbox,
}

impl SiteClient {
    pub fn new(app: &TestApp) -> SiteClient {
        SiteClient {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base.clone(),
            mailbox: app.mailbox.clone(),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// A page's status and HTML.
    pub async fn page(&self, path: &str) -> (StatusCode, String) {
        let r = self.get(path).await;
        (r.status(), r.text().await.unwrap())
    }

    /// The CSRF token of the forms on `path`.
    pub async fn csrf(&self, path: &str) -> String {
        let (status, body) = self.page(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        field(&body, "csrf").unwrap_or_else(|| panic!("no csrf field on {path}"))
    }

    /// A form post exactly as given: no CSRF token added, `Origin` only if given.
    pub async fn post_raw(
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

    /// A form post with `csrf` and the site's own origin.
    pub async fn post(&self, path: &str, csrf: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut fields = vec![("csrf", csrf)];
        fields.extend_from_slice(form);
        self.post_raw(path, &fields, Some(&self.base)).await
    }

    /// Signs up with [`PASSWORD`] and a new workspace; returns the workspace the site
    /// redirected to.
    pub async fn sign_up(&self, email: &str, workspace: &str) -> TenantId {
        let before = self.mail_count(email).await;
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
        assert_eq!(location(&r), "/signup/sent");
        let to = self.confirm_address(email, before + 1).await;
        tenant_in(&to)
    }

    /// How many mails to `address` arrived so far.
    pub async fn mail_count(&self, address: &str) -> usize {
        self.mailbox.count(address)
    }

    /// Follows the confirmation link of the `n`-th mail to `email` (opens the page, clicks
    /// the button); returns where the site sent the now signed-in browser.
    pub async fn confirm_address(&self, email: &str, n: usize) -> String {
        let mail = self.mailbox.nth(email, n).await;
        let (status, page) = self.page(&mail.link_path("/verify/")).await;
        assert_eq!(status, 200, "{page}");
        let action = page
            .split("action=\"")
            .nth(1)
            .and_then(|a| a.split('"').next())
            .unwrap()
            .replace("&#x3d;", "=")
            .replace("&amp;", "&");
        let token = field(&page, "token").expect("the token field");
        let csrf = field(&page, "csrf").expect("the csrf field");
        let r = self.post(&action, &csrf, &[("token", &token)]).await;
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        location(&r)
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        let csrf = self.csrf("/login").await;
        self.post("/login", &csrf, &[("email", email), ("password", password)])
            .await
    }

    pub async fn logout(&self) {
        let csrf = self.csrf_any().await;
        let r = self.post("/logout", &csrf, &[]).await;
        assert_eq!(r.status(), 303);
    }

    /// A CSRF token of the current session, from whichever page it may open.
    pub async fn csrf_any(&self) -> String {
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

/// The `Location` a response redirects to.
pub fn location(r: &reqwest::Response) -> String {
    r.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// The workspace in a `/w/{tenant}/…` path.
pub fn tenant_in(path: &str) -> TenantId {
    path.strip_prefix("/w/")
        .and_then(|p| p.split(['/', '?']).next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no workspace in {path}"))
}

/// The value of the `<input name="…" value="…">` in a page.
pub fn field(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("name=\"{name}\" value=\""))? + name.len() + 15;
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

/// The widget of one bot on a page of one origin, talking to the widget API.
#[derive(Clone)]
pub struct WidgetClient {
    http: reqwest::Client,
    base: String,
    pub origin: String,
    pub bot: String,
}

/// What the server answered to a session start, whatever it was.
#[derive(Debug)]
pub struct SessionReply {
    pub status: u16,
    pub body: Value,
    pub headers: HeaderMap,
}

/// A started widget session: the token the widget holds in memory, and what it is for.
pub struct WidgetSession {
    pub token: String,
    pub conversation: ConversationId,
    pub resume: String,
    /// The whole session-start answer (bot presentation, expiry, …).
    pub body: Value,
    client: WidgetClient,
}

impl WidgetClient {
    pub fn new(app: &TestApp, origin: &str, bot: &str) -> WidgetClient {
        WidgetClient {
            http: app.client.clone(),
            base: app.base.clone(),
            origin: origin.to_owned(),
            bot: bot.to_owned(),
        }
    }

    /// The same widget on a page of another origin.
    pub fn on(&self, origin: &str) -> WidgetClient {
        WidgetClient {
            origin: origin.to_owned(),
            ..self.clone()
        }
    }

    /// The same page asking for another bot id.
    pub fn for_bot(&self, bot: &str) -> WidgetClient {
        WidgetClient {
            bot: bot.to_owned(),
            ..self.clone()
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/widget/v1/{path}", self.base)
    }

    /// `POST /session` from this origin (with a resume secret, if given).
    pub async fn start_session(&self, resume: Option<&str>) -> SessionReply {
        let r = self
            .http
            .post(self.url("session"))
            .header("origin", &self.origin)
            .json(&json!({ "bot": self.bot, "resume": resume }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        SessionReply {
            status,
            body: r.json().await.unwrap_or(Value::Null),
            headers,
        }
    }

    /// A session that must start; panics with the server's answer otherwise.
    pub async fn session(&self) -> WidgetSession {
        self.resume(None).await
    }

    /// Like [`WidgetClient::session`], resuming with `resume` when given.
    pub async fn resume(&self, resume: Option<&str>) -> WidgetSession {
        let reply = self.start_session(resume).await;
        assert_eq!(reply.status, 200, "session start: {}", reply.body);
        let body = reply.body;
        WidgetSession {
            token: body["token"].as_str().unwrap().to_owned(),
            conversation: token_conversation(body["token"].as_str().unwrap()),
            resume: body["resume"].as_str().unwrap().to_owned(),
            body,
            client: self.clone(),
        }
    }
}

impl WidgetSession {
    /// A request to the widget API from the session's origin, with its Bearer token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .http
            .request(method, self.client.url(path))
            .header("origin", &self.client.origin)
            .bearer_auth(&self.token)
    }

    /// `POST /messages` with `content`: the answer streams back as server-sent events.
    pub async fn send(&self, content: &str) -> reqwest::Response {
        self.request(reqwest::Method::POST, "messages")
            .json(&json!({ "content": content }))
            .send()
            .await
            .unwrap()
    }

    /// `GET /messages`: the conversation's history.
    pub async fn history(&self) -> reqwest::Response {
        self.request(reqwest::Method::GET, "messages")
            .send()
            .await
            .unwrap()
    }

    /// `DELETE /conversation`: the end user clears the chat.
    pub async fn clear(&self) -> reqwest::Response {
        self.request(reqwest::Method::DELETE, "conversation")
            .send()
            .await
            .unwrap()
    }
}

/// The claims of a widget token, as JSON (the tests read them; the widget never does).
pub fn token_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token
        .split('.')
        .nth(2)
        .expect("a widget token has four parts");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// The conversation a widget token is for (a new one is stored with its first message, so
/// the session answer names only a resumed one).
pub fn token_conversation(token: &str) -> ConversationId {
    token_claims(token)["conv"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

impl WidgetSession {
    /// Stores the session's new conversation as its first message or upload would (through
    /// the same storage call), for tests that write messages into it directly.
    pub async fn store_conversation(&self, store: &Store) {
        let claims = token_claims(&self.token);
        let hash = claims["new"].as_str().expect("a new conversation");
        let start = parlo::model::NewConversation {
            bot_id: claims["bot"].as_str().unwrap().parse().unwrap(),
            origin: claims["origin"].as_str().unwrap().to_owned(),
            resume_hash: (0..hash.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hash[i..i + 2], 16).unwrap())
                .collect(),
        };
        let scope = parlo::model::WidgetScope {
            bot: start.bot_id,
            conversation: self.conversation,
        };
        let tenant: parlo::model::TenantId = claims["ws"].as_str().unwrap().parse().unwrap();
        let open = store
            .widget_scope_starting(tenant, scope, Some(&start))
            .await
            .unwrap();
        assert_eq!(open, parlo::model::Scoped::Open(()));
    }
}

/// The current TOTP code of a base32 secret.
pub fn totp_code(secret_b32: &str) -> String {
    totp_in(secret_b32, 0)
}

/// The TOTP code of a base32 secret `steps` 30-second steps from now (the server accepts one
/// step of clock skew, so the next step's code is how a test logs in right after the current
/// code was used, e.g. to confirm enrolment).
pub fn totp_in(secret_b32: &str, steps: u64) -> String {
    let raw = totp_rs::Secret::Encoded(secret_b32.to_owned())
        .to_bytes()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, raw)
        .unwrap()
        .generate(now + 30 * steps)
}

/// Turns on TOTP for the signed-in `site` through the account pages; returns the secret.
pub async fn enable_totp(site: &SiteClient) -> String {
    let (status, page) = site.page("/account/mfa").await;
    assert_eq!(status, 200, "{page}");
    let at = page.find("id=\"totp-secret\"").expect("the TOTP secret");
    let start = at + page[at..].find('>').unwrap() + 1;
    let secret = page[start..start + page[start..].find('<').unwrap()].to_owned();
    let sealed = field(&page, "sealed").unwrap();
    let csrf = field(&page, "csrf").unwrap();
    let r = site
        .post(
            "/account/mfa",
            &csrf,
            &[("sealed", &sealed), ("code", &totp_code(&secret))],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    secret
}

/// Answers the login's second-factor page with a TOTP code: the next step's, so a code used
/// a moment ago (to confirm enrolment) is not replayed.
pub async fn submit_totp(site: &SiteClient, secret_b32: &str) {
    let csrf = site.csrf("/login/mfa").await;
    let r = site
        .post("/login/mfa", &csrf, &[("code", &totp_in(secret_b32, 1))])
        .await;
    assert_eq!(r.status(), 303, "the TOTP code was refused");
}
