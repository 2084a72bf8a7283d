//! Write paths under concurrent clients against a real server: every acknowledged write
//! survives.

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
