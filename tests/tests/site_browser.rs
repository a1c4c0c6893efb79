//! The customer's main journey in headless Chromium, with axe-core over every main page:
//! sign up, enable TOTP, log out and back in with a code, create a bot, store a key, read
//! the pinned snippet, chat in the live preview (real widget, fake upstream), find that
//! conversation in the logs and wipe it.

use parlo::model::*;
use parlo_tests::Backend;
use parlo_tests::browser::{Browser, spawn_app_at_public_url};
use parlo_tests::fake_mistral::FakeMistral;
use parlo_tests::fixture::totp_in;
use parlo_tests::host_page::Shadow;

const PASSWORD: &str = "a long browser passphrase";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_journey_in_chromium() {
    let mistral = FakeMistral::start().await;
    mistral.set_reply_chunks(&["Yes, we ship to ", "**Austria** ", "in 3 days."]);
    mistral.accept_key("sk-browser-test-key-9Q7Z");
    let upstream = mistral.base_url.clone();
    // The published widget in dist/ is served, so the preview below is the real widget.
    let app = spawn_app_at_public_url(Backend::Sqlite, |s| {
        s.mistral_base_url = Some(upstream);
        s.security_contact = Some("mailto:security@example.com".into());
    })
    .await;
    let b = Browser::start().await;
    let url = |p: &str| app.url(p);

    // Public pages.
    b.goto(&url("/trust")).await;
    b.assert_accessible("trust page").await;
    b.goto(&url("/login")).await;
    b.assert_accessible("login page").await;

    // Sign up.
    b.goto(&url("/signup")).await;
    b.assert_accessible("sign-up page").await;
    b.fill("#email", "lena@shop.example").await;
    b.fill("#password", PASSWORD).await;
    b.fill("#workspace", "Lena's Shop").await;
    b.click_and_wait("form[action='/signup'] button[type=submit]", "/signup/sent")
        .await;
    b.assert_accessible("check-your-inbox page").await;
    // The confirmation mail's link opens a page whose button confirms and signs in.
    let mail = app.mailbox.nth("lena@shop.example", 1).await;
    b.goto(&mail.link("/verify/")).await;
    b.assert_accessible("address confirmation page").await;
    b.click_and_wait("form[action='/verify'] button[type=submit]", "/w/")
        .await;
    let path = b.path().await;
    let t: TenantId = path[3..39].parse().unwrap();
    assert!(b.text("main").await.contains("Welcome"));
    b.assert_accessible("workspace home").await;

    // Enable TOTP, reading the secret from the text alternative of the QR code.
    b.goto(&url("/account")).await;
    b.assert_accessible("account page").await;
    b.click_and_wait("a[href='/account/mfa']", "/account/mfa")
        .await;
    b.assert_accessible("MFA enrolment page").await;
    let secret = b.text("#totp-secret").await;
    b.fill("#code", &totp_in(&secret, 0)).await;
    b.click("form[action='/account/mfa'] button[type=submit]")
        .await;
    b.client
        .wait()
        .for_element(fantoccini::Locator::Css("#recovery-codes"))
        .await
        .unwrap();
    b.assert_accessible("recovery codes page").await;
    assert_eq!(
        b.client
            .find_all(fantoccini::Locator::Css("#recovery-codes code"))
            .await
            .unwrap()
            .len(),
        10
    );

    // Log out, and back in with password and TOTP.
    b.click_and_wait("form[action='/logout'] button", "/login")
        .await;
    b.fill("#email", "lena@shop.example").await;
    b.fill("#password", PASSWORD).await;
    b.click_and_wait("form[action='/login'] button[type=submit]", "/login/mfa")
        .await;
    b.assert_accessible("TOTP login page").await;
    // The enrolment used this step's code, which cannot log in again; the next step's code
    // is accepted (one step of clock skew).
    b.fill("#code", &totp_in(&secret, 1)).await;
    b.click_and_wait("form[action='/login/mfa'] button[type=submit]", "/app")
        .await;
    assert!(b.text("main").await.contains("Lena's Shop"));
    b.assert_accessible("workspace list").await;

    // Create a bot.
    b.goto(&url(&format!("/w/{t}/bots/new"))).await;
    b.assert_accessible("new bot form").await;
    b.fill("#name", "Shop helper").await;
    b.fill("#allowed_origins", "https://shop.example").await;
    b.fill("#system_prompt", "You help customers of a shop.")
        .await;
    b.click_and_wait(
        "form[action$='/bots'] button[type=submit]",
        &format!("/w/{t}/bots/"),
    )
    .await;
    let bot = app.store().bots(t).await.unwrap().remove(0);
    assert_eq!(
        bot.settings.allowed_origins[0].as_str(),
        "https://shop.example"
    );

    // The embed page: rolling and pinned snippets, the CSP lines; the copy buttons appear
    // once the site's script has run (they are hidden without JavaScript).
    assert!(b.path().await.contains("/embed"));
    b.assert_accessible("embed page").await;
    let pinned = b.value("#snippet-v0\\.1\\.0").await;
    assert!(
        pinned.contains("/widget/v0.1.0.js")
            && pinned.contains("integrity=\"sha384-")
            && pinned.contains(&bot.public_id)
            && pinned.contains("crossorigin=\"anonymous\""),
        "{pinned}"
    );
    assert!(b.value("#snippet-rolling").await.contains("/widget.js"));
    assert!(b.value("#snippet-csp").await.contains("'wasm-unsafe-eval'"));
    let copy_visible = b
        .client
        .execute(
            "return !document.querySelector('button[data-copy=\"snippet-v0.1.0\"]').hidden",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(copy_visible, serde_json::Value::Bool(true));

    // Store the Mistral key; only its last four come back.
    b.goto(&url(&format!("/w/{t}/keys"))).await;
    b.assert_accessible("key page").await;
    b.fill("#api_key", "sk-browser-test-key-9Q7Z").await;
    b.click_and_wait(
        "form[action$='/keys'] button[type=submit]",
        &format!("/w/{t}/keys?notice"),
    )
    .await;
    assert_eq!(b.text("#key-last-four").await, "…9Q7Z");
    assert!(!b.text("main").await.contains("sk-browser-test"));

    // The live preview page embeds the widget for this bot from this origin.
    b.goto(&url(&format!("/w/{t}/bots/{}/preview", bot.id)))
        .await;
    let src = b
        .client
        .execute(
            "return document.querySelector('script[data-bot]').getAttribute('data-bot')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(src.as_str(), Some(bot.public_id.as_str()));

    // …and it chats: the real widget, through this server, to the fake upstream.
    let w = Shadow::new(&b.client);
    w.wait_for_element("button").await;
    w.click("button").await;
    w.wait_for_element("textarea").await;
    w.type_into("textarea", "Do you ship to Austria?").await;
    w.press_enter().await;
    w.wait_for(
        "the streamed answer with its markdown",
        "function () { const a = [...this.querySelectorAll('.msg.bot .md')].pop();\
         return a && a.querySelector('strong') && a.textContent.includes('3 days') ? a.innerHTML : null; }",
        &[],
    )
    .await;
    let sent = mistral.requests();
    assert_eq!(
        sent.last().unwrap().authorization(),
        Some("Bearer sk-browser-test-key-9Q7Z"),
        "the preview chat used the stored key"
    );

    // The preview's conversation shows up in the logs, rendered.
    let c = app
        .store()
        .conversations(
            t,
            &ConversationQuery {
                bot_id: Some(bot.id),
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap()
        .remove(0);
    b.goto(&url(&format!("/w/{t}/logs"))).await;
    b.assert_accessible("chat logs").await;
    b.click_and_wait("#conversations a", &format!("/w/{t}/logs/{}", c.id))
        .await;
    let transcript = b.text(".transcript").await;
    assert!(
        transcript.contains("Do you ship to Austria?") && transcript.contains("3 days"),
        "{transcript}"
    );
    b.assert_accessible("conversation page").await;

    // Wipe all logs of the workspace.
    b.goto(&url(&format!("/w/{t}/logs"))).await;
    b.click("#confirm").await;
    b.click_and_wait(
        "form[action$='/logs/wipe'] button[type=submit]",
        &format!("/w/{t}/logs?notice"),
    )
    .await;
    assert!(b.exists("#no-conversations").await);
    assert!(app.store().conversation(t, c.id).await.unwrap().is_none());

    // The remaining main pages.
    for (path, what) in [
        (format!("/w/{t}/members"), "members page"),
        (format!("/w/{t}/settings"), "workspace settings"),
        (format!("/w/{t}/audit"), "audit log"),
        (format!("/w/{t}/bots/{}", bot.id), "bot settings"),
        ("/settings/legal/toms".to_owned(), "TOMs"),
        ("/settings/legal/dpa".to_owned(), "DPA"),
    ] {
        b.goto(&url(&path)).await;
        b.assert_accessible(what).await;
    }

    b.close().await;
    app.stop().await;
}

/// The inbox in Chromium: search finds a conversation by a word in it (and not the other),
/// a reference finds it too, and the inbox, conversation and deletion pages pass axe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_search_finds_a_conversation_by_a_word_in_it() {
    let app = spawn_app_at_public_url(Backend::Sqlite, |_| {}).await;
    let b = Browser::start().await;
    let url = |p: &str| app.url(p);
    b.goto(&url("/signup")).await;
    b.fill("#email", "inbox@shop.example").await;
    b.fill("#password", PASSWORD).await;
    b.fill("#workspace", "Inbox Shop").await;
    b.click_and_wait("form[action='/signup'] button[type=submit]", "/signup/sent")
        .await;
    let mail = app.mailbox.nth("inbox@shop.example", 1).await;
    b.goto(&mail.link("/verify/")).await;
    b.click_and_wait("form[action='/verify'] button[type=submit]", "/w/")
        .await;
    let path = b.path().await;
    let t: TenantId = path[3..39].parse().unwrap();
    let store = app.store();
    let bot = store
        .create_bot(
            t,
            &BotSettings::parse(&BotInput {
                name: "Helper".into(),
                allowed_origins: "https://shop.example".into(),
                ..BotInput::default()
            })
            .unwrap(),
        )
        .await
        .unwrap();
    let mut made = Vec::new();
    for (question, answer) in [
        ("Where is my parcel?", "It left the warehouse yesterday."),
        ("Do you sell gift cards?", "Yes, from 10 euros."),
    ] {
        let c = store
            .create_conversation(
                t,
                &NewConversation {
                    bot_id: bot.id,
                    origin: "https://shop.example".into(),
                    resume_hash: ConversationId::new().0.as_bytes().to_vec(),
                },
            )
            .await
            .unwrap();
        for (role, content) in [
            (MessageRole::User, question),
            (MessageRole::Assistant, answer),
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
        made.push(c);
    }
    b.goto(&url(&format!("/w/{t}/logs"))).await;
    b.assert_accessible("inbox").await;
    let all = b.text("#conversations").await;
    assert!(all.contains("Where is my parcel?") && all.contains("Do you sell gift cards?"));

    // A word of the answer only ("warehouse") finds its conversation.
    b.fill("#q", "warehouse").await;
    b.click_and_wait(
        "form[role=search] button[type=submit]",
        &format!("/w/{t}/logs?q="),
    )
    .await;
    let found = b.text("#conversations").await;
    assert!(found.contains("Where is my parcel?"), "{found}");
    assert!(!found.contains("gift cards"), "{found}");
    b.assert_accessible("inbox with a search").await;

    // Its reference, as a visitor would quote it.
    b.goto(&url(&format!("/w/{t}/logs"))).await;
    b.fill("#q", &format!("ref:{}", made[1].reference())).await;
    b.click_and_wait(
        "form[role=search] button[type=submit]",
        &format!("/w/{t}/logs?q="),
    )
    .await;
    let found = b.text("#conversations").await;
    assert!(
        found.contains("gift cards") && !found.contains("parcel"),
        "{found}"
    );
    b.click_and_wait("#conversations a", &format!("/w/{t}/logs/{}", made[1].id))
        .await;
    assert_eq!(b.text("#reference").await, made[1].reference());
    b.assert_accessible("conversation page").await;
    b.click_and_wait(
        "a[href$='/delete']",
        &format!("/w/{t}/logs/{}/delete", made[1].id),
    )
    .await;
    b.assert_accessible("conversation deletion page").await;
    b.click("#confirm").await;
    b.click_and_wait(
        "form[action$='/delete'] button[type=submit]",
        &format!("/w/{t}/logs?notice"),
    )
    .await;
    assert!(store.conversation(t, made[1].id).await.unwrap().is_none());
    assert!(store.conversation(t, made[0].id).await.unwrap().is_some());
    b.close().await;
    app.stop().await;
}

/// Every site page fits a phone (375 × 740): nothing scrolls sideways, header and tables
/// included, with a bot, a key, a conversation and a member listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_fits_a_phone() {
    let mistral = FakeMistral::start().await;
    mistral.accept_key("sk-phone-test-key-1234");
    let upstream = mistral.base_url.clone();
    let app = spawn_app_at_public_url(Backend::Sqlite, |s| {
        s.mistral_base_url = Some(upstream);
        s.security_contact = Some("mailto:security@example.com".into());
    })
    .await;
    let b = Browser::start().await;
    b.set_viewport(375, 740).await;
    let url = |p: &str| app.url(p);
    let fits = async |path: &str| {
        b.goto(&url(path)).await;
        let (scroll, inner) = b.widths().await;
        assert!(inner <= 400, "the viewport is phone-sized ({inner} px)");
        if scroll > inner {
            let culprits = b
                .client
                .execute(
                    "return [...document.querySelectorAll('body *')]\
                       .filter(e => e.getBoundingClientRect().right > window.innerWidth)\
                       .slice(0, 5).map(e => e.outerHTML.slice(0, 120))",
                    vec![],
                )
                .await
                .unwrap();
            panic!("{path} scrolls sideways at {inner} px: {scroll} px wide; {culprits}");
        }
    };
    for path in ["/", "/login", "/signup", "/trust", "/invite/not-a-token"] {
        fits(path).await;
    }
    b.goto(&url("/signup")).await;
    b.fill("#email", "pia@a-rather-long-shop-domain.example")
        .await;
    b.fill("#password", PASSWORD).await;
    b.fill("#workspace", "Pia's extraordinarily well-stocked shop")
        .await;
    b.click_and_wait("form[action='/signup'] button[type=submit]", "/signup/sent")
        .await;
    let mail = app
        .mailbox
        .nth("pia@a-rather-long-shop-domain.example", 1)
        .await;
    b.goto(&mail.link("/verify/")).await;
    b.click_and_wait("form[action='/verify'] button[type=submit]", "/w/")
        .await;
    let path = b.path().await;
    let t: TenantId = path[3..39].parse().unwrap();
    b.goto(&url(&format!("/w/{t}/bots/new"))).await;
    b.fill("#name", "Shop helper").await;
    b.fill(
        "#allowed_origins",
        "https://www.a-rather-long-shop-domain.example",
    )
    .await;
    b.click_and_wait(
        "form[action$='/bots'] button[type=submit]",
        &format!("/w/{t}/bots/"),
    )
    .await;
    let bot = app.store().bots(t).await.unwrap().remove(0);
    b.goto(&url(&format!("/w/{t}/keys"))).await;
    b.fill("#api_key", "sk-phone-test-key-1234").await;
    b.click_and_wait(
        "form[action$='/keys'] button[type=submit]",
        &format!("/w/{t}/keys?notice"),
    )
    .await;
    let (c, _) = parlo_tests::fixture::chat(
        app.store(),
        t,
        bot.id,
        &[
            (MessageRole::User, "Do you ship to Austria?"),
            (MessageRole::Assistant, "Yes, in 3 days."),
        ],
    )
    .await;
    for path in [
        "/app".to_owned(),
        "/account".to_owned(),
        "/account/mfa".to_owned(),
        "/settings/legal/toms".to_owned(),
        "/settings/legal/dpa".to_owned(),
        format!("/w/{t}"),
        format!("/w/{t}/bots/new"),
        format!("/w/{t}/bots/{}", bot.id),
        format!("/w/{t}/bots/{}/embed", bot.id),
        format!("/w/{t}/keys"),
        format!("/w/{t}/members"),
        format!("/w/{t}/logs"),
        format!("/w/{t}/logs/{}", c.id),
        format!("/w/{t}/settings"),
        format!("/w/{t}/audit"),
    ] {
        fits(&path).await;
    }
    b.close().await;
    app.stop().await;
}

/// The accessibility check itself catches problems (so a clean result above means something).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axe_reports_violations_on_a_broken_page() {
    let b = Browser::start().await;
    b.goto("data:text/html,<html><body><input type=text><img src=x></body></html>")
        .await;
    let found: Vec<String> = b
        .axe(&["serious", "critical"])
        .await
        .into_iter()
        .map(|v| v.id)
        .collect();
    assert!(
        found.contains(&"image-alt".to_owned()) && found.contains(&"label".to_owned()),
        "{found:?}"
    );
    b.close().await;
}

/// Forgot password → the mail → the reset page → log in with the new password and TOTP,
/// in Chromium, with axe-core on the new pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_journey_with_totp_in_chromium() {
    use parlo_tests::fixture::{SiteClient, enable_totp};
    let app = spawn_app_at_public_url(Backend::Postgres, |_| {}).await;
    // Mia has an account with TOTP (set up without the browser).
    let mia = SiteClient::new(&app);
    mia.sign_up("mia@m.example", "Mia's Shop").await;
    let secret = enable_totp(&mia).await;
    let b = Browser::start().await;
    let url = |p: &str| app.url(p);

    b.goto(&url("/login")).await;
    b.click_and_wait("a[href='/password/forgot']", "/password/forgot")
        .await;
    b.assert_accessible("forgot-password page").await;
    b.fill("#email", "mia@m.example").await;
    b.click("form[action='/password/forgot'] button[type=submit]")
        .await;
    b.client
        .wait()
        .for_element(fantoccini::Locator::Css("main h1"))
        .await
        .unwrap();
    assert!(b.text("main").await.contains("If an account exists"));
    b.assert_accessible("reset-link-sent page").await;

    // Mails so far: the confirmation, "two-factor authentication is on", the reset link.
    let mail = app.mailbox.nth("mia@m.example", 3).await;
    assert_eq!(mail.subject, "Choose a new password");
    let link = mail.link("/password/reset/");
    assert!(link.starts_with(&app.base), "{link}");
    b.goto(&link).await;
    b.assert_accessible("new-password page").await;
    b.fill("#password", PASSWORD).await;
    b.click_and_wait(
        "form[action='/password/reset'] button[type=submit]",
        "/login",
    )
    .await;
    assert!(b.text("main").await.contains("Your password was changed"));

    // The old browser session of Mia ended; the new password needs the second factor.
    assert_eq!(
        parlo_tests::fixture::location(&mia.get("/account").await),
        "/login"
    );
    b.fill("#email", "mia@m.example").await;
    b.fill("#password", PASSWORD).await;
    b.click_and_wait("form[action='/login'] button[type=submit]", "/login/mfa")
        .await;
    // The enrolment used this step's code, which cannot log in again: the next step's code.
    b.fill("#code", &totp_in(&secret, 1)).await;
    b.click_and_wait("form[action='/login/mfa'] button[type=submit]", "/app")
        .await;
    assert!(b.text("main").await.contains("Mia's Shop"));
    // The link worked once.
    b.goto(&link).await;
    assert!(b.text("main").await.contains("This link does not work"));
    b.close().await;
    app.stop().await;
}
