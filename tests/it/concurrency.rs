//! Write paths under concurrent clients against a real server, and concurrent writers of one
//! store: every acknowledged write survives.

use crate::serve::{call, start};
use crate::util::block_on;
use serde_json::json;

#[test]
fn concurrent_patches_of_different_metadata_keys_all_survive() {
    const CLIENTS: usize = 16;
    const ROUNDS: usize = 4;
    let s = start();
    block_on(async {
        let token = s.management_token().await;
        s.log_alice_in().await;
        let url = format!("{}/api/v2/users/auth0%7C1", s.base);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (url, token) = (url.clone(), token.clone());
                tokio::spawn(async move {
                    for r in 0..ROUNDS {
                        let key = format!("client{c}_round{r}");
                        let (status, body) = call("PATCH", &url, Some(&token),
                            Some(json!({"app_metadata": {key: r}, "user_metadata": {format!("c{c}"): r}}))).await;
                        assert_eq!(status, 200, "{body}");
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        let (_, user) = call("GET", &url, Some(&token), None).await;
        let app = user["app_metadata"].as_object().unwrap();
        assert_eq!(
            app.len(),
            CLIENTS * ROUNDS,
            "every acknowledged key is there: {user}"
        );
        let own = user["user_metadata"].as_object().unwrap();
        for c in 0..CLIENTS {
            assert_eq!(
                own[&format!("c{c}")],
                ROUNDS - 1,
                "the last write of each client wins: {user}"
            );
        }
    });
}

#[test]
fn log_events_written_at_once_from_many_threads_are_all_kept_each_with_its_own_id() {
    use customdb::domain::events::{Caller, LogType};
    const THREADS: usize = 16;
    const EACH: usize = 25;
    let t = crate::util::temp_store();
    t.store.ensure_tenant("a").unwrap();
    let ids: Vec<Vec<i64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|n| {
                let store = &t.store;
                scope.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            let user = format!("u{n}-{i}");
                            let event = store
                                .log(
                                    "a",
                                    LogType::SuccessLogin,
                                    Some("c"),
                                    Some(&user),
                                    None,
                                    Caller::default(),
                                )
                                .wait()
                                .unwrap();
                            // Each caller gets its own event back, not a neighbour's.
                            assert_eq!(event.user_id.as_deref(), Some(user.as_str()));
                            event.id
                        })
                        .collect()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut all: Vec<i64> = ids.into_iter().flatten().collect();
    all.sort();
    all.dedup();
    assert_eq!(
        all.len(),
        THREADS * EACH,
        "every event has an id of its own"
    );
    // Committed: a reader connection sees every one.
    assert_eq!(t.store.events("a", 10_000).unwrap().len(), THREADS * EACH);
}
