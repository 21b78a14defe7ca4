//! People and sessions over the real HTTP API, on SQLite and PostgreSQL: site admins manage
//! accounts, a disabled account is refused, people change their own password and manage their
//! own API tokens, and a browser session cookie works only with its CSRF token for changes and
//! ends at logout.

mod common;
mod people_support;

use common::*;
use people_support::*;
use serde_json::json;

async fn start(db: &Db, dir: &std::path::Path) -> Server {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (store, _) = open_store(db, &data).await;
    let mut cfg = config(&data);
    cfg.runner = false;
    Server::start(cfg, store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_accounts_and_people_their_tokens() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = start(&db, dir.path()).await;
        let api = Api::new(&server.url);
        let admin = api.login("admin", ADMIN_PASSWORD).await;

        let bob = api.user(&admin, "bob", "bob-password-1").await;
        let (status, carol) = api
            .post(&admin, "/api/v1/users", json!({"login": "carol"}))
            .await;
        assert_eq!(status, 201, "{carol}");
        let carol_password = carol["password"].as_str().expect("generated password");
        assert!(carol.get("password_hash").is_none(), "{carol}");
        api.login("carol", carol_password).await;

        let (status, _) = api
            .post(&admin, "/api/v1/users", json!({"login": "bob"}))
            .await;
        assert_eq!(status, 409, "a login is unique");
        let (status, body) = api
            .post(
                &admin,
                "/api/v1/users",
                json!({"login": "dave", "password": "short"}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        let (status, body) = api
            .post(&admin, "/api/v1/users", json!({"login": "no/slash"}))
            .await;
        assert_eq!(status, 400, "{body}");

        // Only site admins manage accounts.
        let (status, body) = api.get(&bob, "/api/v1/users").await;
        assert_eq!(status, 403, "{body}");
        assert!(
            body["error"]
                .as_str()
                .expect("reason")
                .contains("site admin")
        );
        let (status, _) = api
            .post(&bob, "/api/v1/users", json!({"login": "eve"}))
            .await;
        assert_eq!(status, 403);
        let (status, _) = api.delete(&bob, "/api/v1/users/carol").await;
        assert_eq!(status, 403);
        let (status, users) = api.get(&admin, "/api/v1/users").await;
        assert_eq!(status, 200);
        let logins: Vec<&str> = users
            .as_array()
            .expect("list")
            .iter()
            .map(|u| u["login"].as_str().expect("login"))
            .collect();
        assert_eq!(logins, ["admin", "bob", "carol"]);

        // A disabled account is refused, with its existing tokens too; enabling restores it.
        let (status, body) = api
            .patch(&admin, "/api/v1/users/bob", json!({"active": false}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["active"], false);
        let (status, body) = api.get(&bob, "/api/v1/user").await;
        assert_eq!(status, 401, "{body}");
        let (status, _) = api
            .post(
                &As::Anonymous,
                "/api/v1/login",
                json!({"username": "bob", "password": "bob-password-1"}),
            )
            .await;
        assert_eq!(status, 401);
        let (status, _) = api
            .patch(
                &admin,
                "/api/v1/users/bob",
                json!({"active": true, "admin": true}),
            )
            .await;
        assert_eq!(status, 200);
        let (status, body) = api.get(&bob, "/api/v1/users").await;
        assert_eq!(status, 200, "bob is a site admin now: {body}");
        let (status, _) = api
            .patch(&admin, "/api/v1/users/bob", json!({"admin": false}))
            .await;
        assert_eq!(status, 200);

        // The server keeps an admin; nobody deletes themselves.
        let (status, body) = api
            .patch(&admin, "/api/v1/users/admin", json!({"admin": false}))
            .await;
        assert_eq!(status, 409, "{body}");
        let (status, _) = api.delete(&admin, "/api/v1/users/admin").await;
        assert_eq!(status, 400);

        // Own password: the current one is needed.
        let (status, _) = api
            .patch(
                &bob,
                "/api/v1/user",
                json!({"current_password": "wrong-password", "password": "bob-password-2"}),
            )
            .await;
        assert_eq!(status, 403);
        let (status, _) = api
            .patch(
                &bob,
                "/api/v1/user",
                json!({"current_password": "bob-password-1", "password": "bob-password-2"}),
            )
            .await;
        assert_eq!(status, 204);
        let (status, _) = api
            .post(
                &As::Anonymous,
                "/api/v1/login",
                json!({"username": "bob", "password": "bob-password-1"}),
            )
            .await;
        assert_eq!(status, 401, "the old password is gone");
        let bob = api.login("bob", "bob-password-2").await;

        // Own API tokens: create, list (names only), use, revoke.
        let (status, made) = api
            .post(&bob, "/api/v1/user/tokens", json!({"name": "laptop"}))
            .await;
        assert_eq!(status, 201, "{made}");
        let laptop = As::Token(made["token"].as_str().expect("token").to_string());
        let (status, me) = api.get(&laptop, "/api/v1/user").await;
        assert_eq!((status, me["login"].as_str()), (200, Some("bob")));
        let (_, tokens) = api.get(&bob, "/api/v1/user/tokens").await;
        let names: Vec<&str> = tokens
            .as_array()
            .expect("list")
            .iter()
            .map(|t| t["name"].as_str().expect("name"))
            .collect();
        assert!(names.contains(&"laptop"), "{tokens}");
        assert!(
            !tokens.to_string().contains("skf_"),
            "values never come back"
        );
        let id = made["id"].as_i64().expect("id");
        let (status, _) = api
            .delete(&admin, &format!("/api/v1/user/tokens/{id}"))
            .await;
        assert_eq!(status, 404, "someone else's token is not yours to revoke");
        let (status, _) = api.delete(&bob, &format!("/api/v1/user/tokens/{id}")).await;
        assert_eq!(status, 204);
        let (status, _) = api.get(&laptop, "/api/v1/user").await;
        assert_eq!(status, 401, "a revoked token is refused");

        let (status, _) = api.delete(&admin, "/api/v1/users/carol").await;
        assert_eq!(status, 204);
        let (status, _) = api
            .post(
                &As::Anonymous,
                "/api/v1/login",
                json!({"username": "carol", "password": carol_password}),
            )
            .await;
        assert_eq!(status, 401);
        server.stop().await;
    }
}

/// The `name=value` part of a `Set-Cookie` header.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .expect("pair")
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sessions_need_the_csrf_token_and_end_at_logout() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = start(&db, dir.path()).await;
        let api = Api::new(&server.url);
        let origin = GitRepo::new(dir.path());
        origin.commit(
            "kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: a\n  commands:\n  - true\n",
            "init",
        );

        let (status, body, set_cookie) = api
            .call(
                &As::Anonymous,
                "POST",
                "/api/v1/login",
                Some(json!({"username": "admin", "password": ADMIN_PASSWORD, "session": true})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("token").is_none(), "a session makes no API token");
        let set_cookie = set_cookie.expect("a session cookie");
        assert!(set_cookie.starts_with("skiff_session="), "{set_cookie}");
        assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
        assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
        let csrf = body["csrf_token"].as_str().expect("csrf token").to_string();
        let cookie = cookie_pair(&set_cookie);
        let no_csrf = As::Cookie {
            cookie: cookie.clone(),
            csrf: None,
        };
        let wrong_csrf = As::Cookie {
            cookie: cookie.clone(),
            csrf: Some("not-the-token".into()),
        };
        let browser = As::Cookie {
            cookie: cookie.clone(),
            csrf: Some(csrf.clone()),
        };

        // Reading with the cookie alone works; the page can fetch its CSRF token again.
        let (status, me) = api.get(&no_csrf, "/api/v1/user").await;
        assert_eq!((status, me["login"].as_str()), (200, Some("admin")));
        let (status, session) = api.get(&no_csrf, "/api/v1/session").await;
        assert_eq!(status, 200);
        assert_eq!(session["csrf_token"].as_str(), Some(csrf.as_str()));

        // Changing state with the cookie needs the CSRF header.
        let repo = json!({"slug": "acme/app", "git_url": origin.path.to_string_lossy()});
        let (status, body) = api.post(&no_csrf, "/api/v1/repos", repo.clone()).await;
        assert_eq!(status, 403, "{body}");
        assert!(
            body["error"]
                .as_str()
                .expect("reason")
                .contains("X-Skiff-CSRF")
        );
        let (status, _) = api.post(&wrong_csrf, "/api/v1/repos", repo.clone()).await;
        assert_eq!(status, 403);
        let (status, body) = api.post(&browser, "/api/v1/repos", repo.clone()).await;
        assert_eq!(status, 201, "{body}");
        let (status, _) = api
            .post(
                &no_csrf,
                "/api/v1/repos/acme/app/builds",
                json!({"branch": "main"}),
            )
            .await;
        assert_eq!(status, 403);
        let (status, _) = api.get(&As::Anonymous, "/api/v1/repos").await;
        assert_eq!(status, 200);

        // An HTML form post logs in with a session too.
        let form = reqwest::Client::new()
            .post(format!("{}/api/v1/login", server.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "username=admin&password={}",
                ADMIN_PASSWORD.replace(' ', "+")
            ))
            .send()
            .await
            .expect("form login");
        assert_eq!(form.status(), 200);
        let second = cookie_pair(
            form.headers()
                .get("set-cookie")
                .and_then(|v| v.to_str().ok())
                .expect("form login sets a cookie"),
        );
        assert_ne!(second, cookie, "each login is its own session");

        // A login form posted from another site's page is refused.
        let foreign = reqwest::Client::new()
            .post(format!("{}/api/v1/login", server.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", "https://evil.example")
            .body(format!(
                "username=admin&password={}",
                ADMIN_PASSWORD.replace(' ', "+")
            ))
            .send()
            .await
            .expect("form login");
        assert_eq!(foreign.status(), 403);
        assert!(foreign.headers().get("set-cookie").is_none());
        let own = reqwest::Client::new()
            .post(format!("{}/api/v1/login", server.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", &server.url)
            .body(format!(
                "username=admin&password={}",
                ADMIN_PASSWORD.replace(' ', "+")
            ))
            .send()
            .await
            .expect("form login");
        assert_eq!(own.status(), 200, "the server's own page may post the form");

        // Logout needs the CSRF token as well, then the cookie no longer works.
        let (status, _, _) = api.call(&no_csrf, "POST", "/api/v1/logout", None).await;
        assert_eq!(status, 403);
        let (status, _, cleared) = api.call(&browser, "POST", "/api/v1/logout", None).await;
        assert_eq!(status, 204);
        assert!(
            cleared.expect("cleared cookie").contains("Max-Age=0"),
            "the cookie is cleared"
        );
        let (status, _) = api.get(&no_csrf, "/api/v1/user").await;
        assert_eq!(status, 401, "the session ended on the server");
        let (status, _) = api.post(&browser, "/api/v1/repos", repo).await;
        assert_eq!(status, 401);
        let other = As::Cookie {
            cookie: second,
            csrf: None,
        };
        let (status, _) = api.get(&other, "/api/v1/user").await;
        assert_eq!(status, 200, "the other session is unaffected");

        // Logout with a bearer token revokes that token.
        let token = api.login("admin", ADMIN_PASSWORD).await;
        let (status, _, _) = api.call(&token, "POST", "/api/v1/logout", None).await;
        assert_eq!(status, 204);
        let (status, _) = api.get(&token, "/api/v1/user").await;
        assert_eq!(status, 401);
        server.stop().await;
    }
}
