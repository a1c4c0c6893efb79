//! Issue 14: a visitor's thumbs up or down on an answer shows on the conversation page of
//! the customer's logs, and is counted per bot.

use parlo::model::*;
use parlo_tests::{Backend, both_backends, fixture};

use super::world::*;

both_backends!(a_rated_answer_shows_its_rating_in_the_logs);

async fn a_rated_answer_shows_its_rating_in_the_logs(backend: Backend) {
    let w = world(backend).await;
    let store = w.app.store();
    let (c, m) = fixture::chat(
        store,
        w.a.t,
        w.a.bot.id,
        &[
            (MessageRole::User, "Is it waterproof?"),
            (MessageRole::Assistant, "Yes, to 50 m."),
            (MessageRole::User, "And the strap?"),
            (MessageRole::Assistant, "Leather."),
        ],
    )
    .await;
    let scope = WidgetScope {
        bot: w.a.bot.id,
        conversation: c.id,
    };
    let path = format!("/w/{}/logs/{}", w.a.t, c.id);
    let (_, page) = w.alice.page(&path).await;
    assert!(!page.contains("rated"), "nothing rated yet");
    for (answer, rating) in [(m[1].id, Rating::Up), (m[3].id, Rating::Down)] {
        let rated = store
            .widget_rate(w.a.t, scope, answer, Some(rating))
            .await
            .unwrap();
        assert_eq!(rated, Scoped::Open(true));
    }
    let (_, page) = w.alice.page(&path).await;
    let up = page.find("rated helpful").expect("the up rating shows");
    let down = page
        .find("rated not helpful")
        .expect("the down rating shows");
    assert!(
        page.find("50 m").unwrap() > up && page.find("Leather").unwrap() > down && down > up,
        "each rating sits with its answer"
    );
    assert_eq!(
        store.rating_counts(w.a.t, w.a.bot.id).await.unwrap(),
        RatingCounts { up: 1, down: 1 }
    );
    b_is_intact(&w).await;
}
