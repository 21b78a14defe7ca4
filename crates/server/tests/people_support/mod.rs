//! Calls to the API as any user, anonymously or with a browser session cookie, for the people
//! and permissions tests; plus making users and logging them in.
#![allow(dead_code)]

use serde_json::{Value, json};

/// How a request authenticates.
#[derive(Clone)]
pub enum As {
    Anonymous,
    Token(String),
    /// The session cookie's `name=value` and the CSRF header to send (if any).
    Cookie {
        cookie: String,
        csrf: Option<String>,
    },
}

pub struct Api {
    pub base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// Sends a request and returns the status, the body as JSON (Null if none) and the
    /// `Set-Cookie` header.
    pub async fn call(
        &self,
        who: &As,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, Option<String>) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        match who {
            As::Anonymous => {}
            As::Token(token) => req = req.bearer_auth(token),
            As::Cookie { cookie, csrf } => {
                req = req.header("cookie", cookie);
                if let Some(csrf) = csrf {
                    req = req.header("x-skiff-csrf", csrf);
                }
            }
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let cookie = resp
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            cookie,
        )
    }

    pub async fn get(&self, who: &As, path: &str) -> (u16, Value) {
        let (s, v, _) = self.call(who, "GET", path, None).await;
        (s, v)
    }

    pub async fn post(&self, who: &As, path: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.call(who, "POST", path, Some(body)).await;
        (s, v)
    }

    pub async fn patch(&self, who: &As, path: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self.call(who, "PATCH", path, Some(body)).await;
        (s, v)
    }

    pub async fn delete(&self, who: &As, path: &str) -> (u16, Value) {
        let (s, v, _) = self.call(who, "DELETE", path, None).await;
        (s, v)
    }

    /// Logs `user` in and returns their new API token.
    pub async fn login(&self, user: &str, password: &str) -> As {
        let (status, body) = self
            .post(
                &As::Anonymous,
                "/api/v1/login",
                json!({"username": user, "password": password}),
            )
            .await;
        assert_eq!(status, 200, "login {user}: {body}");
        As::Token(body["token"].as_str().expect("token").to_string())
    }

    /// As `admin`, creates a user with `password` and logs them in.
    pub async fn user(&self, admin: &As, login: &str, password: &str) -> As {
        let (status, body) = self
            .post(
                admin,
                "/api/v1/users",
                json!({"login": login, "password": password}),
            )
            .await;
        assert_eq!(status, 201, "create {login}: {body}");
        self.login(login, password).await
    }
}
