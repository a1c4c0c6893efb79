//! What the site tests share: two workspaces with one of everything, their owners and a
//! member signed in, and the table of every workspace route with the role it needs.

use parlo::crypto;
use parlo::model::*;
use parlo::storage::*;
use parlo_tests::browser::spawn_app_at_public_url;
use parlo_tests::fake_mistral::FakeMistral;
use parlo_tests::fixture::{self, NewTenant, PASSWORD, SiteClient, Tenant, location};
use parlo_tests::{Backend, TestApp};

pub fn text_of<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let start = at + html[at..].find('>').unwrap() + 1;
    let end = start + html[start..].find('<').unwrap();
    &html[start..end]
}

/// The account signed up with `email`.
pub async fn account(app: &TestApp, email: &str) -> User {
    app.store()
        .user_by_email(&Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no account {email}"))
}

pub async fn new_conversation(store: &Store, t: TenantId, bot: BotId, text: &str) -> Conversation {
    let messages = [
        (MessageRole::User, "What does it cost?"),
        (MessageRole::Assistant, text),
    ];
    fixture::chat(store, t, bot, &messages).await.0
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Needs {
    Member,
    Manager,
    Owner,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Method {
    Get,
    Post,
}

/// Every route of a workspace, with the role it needs. `site_routes_are_all_in_the_table`
/// fails when a `/w/{t}/…` route is added to the code but not here.
pub const WORKSPACE_ROUTES: &[(Method, &str, Needs)] = &[
    (Method::Get, "/w/{t}", Needs::Member),
    (Method::Post, "/w/{t}/bots", Needs::Manager),
    (Method::Get, "/w/{t}/bots/new", Needs::Manager),
    (Method::Get, "/w/{t}/bots/{bot}", Needs::Member),
    (Method::Post, "/w/{t}/bots/{bot}", Needs::Manager),
    (Method::Post, "/w/{t}/bots/{bot}/delete", Needs::Manager),
    (Method::Get, "/w/{t}/bots/{bot}/embed", Needs::Member),
    (Method::Get, "/w/{t}/bots/{bot}/preview", Needs::Member),
    (
        Method::Post,
        "/w/{t}/bots/{bot}/preview/session",
        Needs::Member,
    ),
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
pub fn valid_form(path: &str) -> Vec<(&'static str, String)> {
    let f = |v: &[(&'static str, &str)]| v.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    if path.ends_with("/bots") || path.contains("/bots/") && !path.ends_with("/delete") {
        f(&[
            ("name", "Renamed"),
            ("model", "mistral-small-latest"),
            ("retention_days", "30"),
        ])
    } else if path.ends_with("/keys") {
        f(&[("api_key", "sk-attacker-key-0000")])
    } else if path.ends_with("/invitations") {
        f(&[("role", "admin"), ("email", "mallory@m.example")])
    } else if path.ends_with("/role") {
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
pub struct RouteIds {
    pub t: TenantId,
    pub bot: Bot,
    pub conversation: ConversationId,
    pub invitation: InvitationId,
    pub other_user: UserId,
}

impl RouteIds {
    pub fn path(&self, template: &str) -> String {
        template
            .replace("{t}", &self.t.to_string())
            .replace("{bot}", &self.bot.id.to_string())
            .replace("{conversation}", &self.conversation.to_string())
            .replace("{id}", &self.invitation.to_string())
            .replace("{user}", &self.other_user.to_string())
    }
}

/// The fixture tenant's bot, plus a conversation and an invitation; `{user}` is the owner.
pub async fn route_ids(app: &TestApp, tenant: &Tenant) -> RouteIds {
    let store = app.store();
    let (t, bot, other_user) = (tenant.tenant, tenant.bot.clone(), tenant.user);
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
                email: None,
            },
        )
        .await
        .unwrap()
        .id;
    RouteIds {
        t,
        bot,
        conversation,
        invitation,
        other_user,
    }
}

pub async fn request(v: &SiteClient, csrf: &str, method: Method, path: &str) -> reqwest::Response {
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
pub struct World {
    pub app: TestApp,
    pub mistral: FakeMistral,
    pub alice: SiteClient,
    pub bob: SiteClient,
    pub carol: SiteClient,
    pub a: RouteIds,
    pub b: RouteIds,
}

pub async fn world(backend: Backend) -> World {
    let mistral = FakeMistral::start().await;
    let upstream = mistral.base_url.clone();
    let app = spawn_app_at_public_url(backend, |s| s.mistral_base_url = Some(upstream)).await;
    let (a, alice) = NewTenant::owned_by("alice@a.example")
        .workspace("Acme")
        .sign_up(&app)
        .await;
    let (b, bob) = NewTenant::owned_by("bob@b.example")
        .workspace("Bolt")
        .sign_up(&app)
        .await;
    let carol = SiteClient::new(&app);
    let ta = a.tenant;

    // Carol joins A through an invitation link made on the members page.
    let csrf = alice.csrf(&format!("/w/{ta}/members")).await;
    let r = alice
        .post(
            &format!("/w/{ta}/invitations"),
            &csrf,
            &[("role", "member"), ("email", "carol@a.example")],
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
    assert_eq!(location(&r), "/signup/sent");
    // The invitation was mailed to Carol; her confirmation link comes second and brings her
    // back to the invitation, which she accepts.
    let invitation = carol.mailbox.nth("carol@a.example", 1).await;
    assert!(invitation.link("/invite/").ends_with(&token));
    assert_eq!(
        carol.confirm_address("carol@a.example", 2).await,
        format!("/invite/{token}")
    );
    let csrf = carol.csrf(&format!("/invite/{token}")).await;
    let r = carol.post(&format!("/invite/{token}"), &csrf, &[]).await;
    assert_eq!(location(&r), format!("/w/{ta}?notice=joined"));
    // The link works once.
    assert_eq!(carol.get(&format!("/invite/{token}")).await.status(), 404);

    let a = route_ids(&app, &a).await;
    let b = route_ids(&app, &b).await;
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

pub async fn b_is_intact(w: &World) {
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
