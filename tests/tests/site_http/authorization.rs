//! Who may do what: every workspace route is 404 to other workspaces' members and 403 to
//! members without the role; posts need the session's CSRF token and the site's origin; the
//! route table covers every route the code has.

use parlo::model::*;
use parlo_tests::fixture::PASSWORD;
use parlo_tests::{Backend, both_backends};

use super::world::*;

both_backends!(
    every_workspace_route_is_404_to_members_of_other_workspaces,
    members_cannot_manage_and_get_403_in_their_own_workspace,
    posts_without_a_valid_csrf_token_or_from_another_origin_are_refused
);

async fn every_workspace_route_is_404_to_members_of_other_workspaces(backend: Backend) {
    let w = world(backend).await;
    for (who, v) in [
        ("alice (owner of A)", &w.alice),
        ("carol (member of A)", &w.carol),
    ] {
        let csrf = v.csrf("/account").await;
        for (method, template, _) in WORKSPACE_ROUTES {
            let path = w.b.path(template);
            let r = request(v, &csrf, *method, &path).await;
            assert_eq!(r.status(), 404, "{who}: {method:?} {path}");
            let body = r.text().await.unwrap();
            assert!(
                !body.contains("Bolt") && !body.contains("Helper"),
                "{who}: {path} leaks: {body}"
            );
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
}

async fn members_cannot_manage_and_get_403_in_their_own_workspace(backend: Backend) {
    let w = world(backend).await;
    let csrf = w.carol.csrf("/account").await;
    for (method, template, needs) in WORKSPACE_ROUTES {
        let path = w.a.path(template);
        let r = request(&w.carol, &csrf, *method, &path).await;
        let expected = if *needs == Needs::Member { 200 } else { 403 };
        assert_eq!(r.status(), expected, "carol: {method:?} {path}");
    }
    let store = w.app.store();
    assert!(
        store
            .provider_key(w.a.t, Provider::Mistral)
            .await
            .unwrap()
            .is_none(),
        "a member set the key"
    );
    assert_eq!(
        store
            .members(w.a.t)
            .await
            .unwrap()
            .iter()
            .find(|m| m.email == "alice@a.example")
            .unwrap()
            .role,
        Role::Owner
    );
    assert!(store.workspace(w.a.t).await.unwrap().is_some());
    assert!(store.bot(w.a.t, w.a.bot.id).await.unwrap().is_some());
    let audit = store.audit_log(w.a.t, 500).await.unwrap();
    assert!(
        audit
            .iter()
            .filter(|e| e.action == "permission.denied")
            .count()
            >= 10,
        "refusals are audited"
    );
    w.app.stop().await;
}

async fn posts_without_a_valid_csrf_token_or_from_another_origin_are_refused(backend: Backend) {
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
        (
            "another session's token",
            Some(bob_csrf.as_str()),
            base.as_str(),
        ),
        (
            "valid token, foreign origin",
            Some(csrf.as_str()),
            "https://evil.example",
        ),
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
    assert_eq!(
        w.app.store().bots(w.a.t).await.unwrap().len(),
        1,
        "no bot was created"
    );
    // Logging in is protected too (login CSRF).
    let r = w
        .alice
        .post_raw(
            "/login",
            &[("email", "alice@a.example"), ("password", PASSWORD)],
            None,
        )
        .await;
    assert_eq!(r.status(), 403);
    // The same request with the token and our origin works.
    let r = w.alice.post(&path, &csrf, &bot).await;
    assert_eq!(r.status(), 303);
    assert_eq!(w.app.store().bots(w.a.t).await.unwrap().len(), 2);
    w.app.stop().await;
}

#[test]
fn site_routes_are_all_in_the_table() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/src/site");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        // `.route("/w/…", get(a).post(b))`, on one line or as rustfmt splits a long one.
        for chunk in text.split(".route(").skip(1) {
            let Some(rest) = chunk.trim_start().strip_prefix('"') else {
                continue;
            };
            let path = rest.split('"').next().unwrap();
            if path.starts_with("/w/") {
                let call = rest.split(")\n").next().unwrap_or("");
                for (m, name) in [(Method::Get, "get("), (Method::Post, "post(")] {
                    if call.contains(name) {
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
