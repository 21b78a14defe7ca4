//! `skiff user`, `skiff secret --org` and `skiff runner token` with the real binary against a
//! real server (the library router on a free port, SQLite).

mod cli_support;

use cli_support::{fails_with, ok, skiff};
use std::path::Path;

const PASSWORD: &str = "cli-people-password";

#[test]
fn user_org_secret_and_runner_token_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let data = dir.path().join("data");
    let url = runtime.block_on(async {
        let mut config = skiff_server::ServerConfig::new(data.clone());
        config.admin_password = Some(PASSWORD.into());
        config.runner = false;
        let app = skiff_server::app(config).await.expect("app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let router = app.router.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        std::mem::forget(app);
        url
    });
    let admin = dir.path().join("admin");
    let carol_config = dir.path().join("carol");
    let login = |config: &Path, user: &str, password: &str| {
        skiff(
            config,
            &[
                "login",
                "--server",
                &url,
                "--user",
                user,
                "--password",
                password,
            ],
        )
    };
    ok(&login(&admin, "admin", PASSWORD));

    // Users: one with a chosen password, one with a generated one printed once.
    let added = ok(&skiff(
        &admin,
        &[
            "user",
            "add",
            "bob",
            "--password",
            "bob-password",
            "--admin",
        ],
    ));
    assert_eq!(added.trim(), "user bob added\tadmin");
    let added = ok(&skiff(&admin, &["user", "add", "carol"]));
    let password = added
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("a generated password")
        .to_string();
    ok(&login(&carol_config, "carol", &password));
    fails_with(
        &skiff(&carol_config, &["user", "ls"]),
        "403 from the server: carol is not a site admin",
    );
    assert_eq!(
        ok(&skiff(&admin, &["user", "ls"])),
        "admin\tadmin\nbob\tadmin\ncarol\n"
    );
    ok(&skiff(
        &admin,
        &["user", "update", "carol", "--active", "false"],
    ));
    fails_with(&login(&carol_config, "carol", &password), "disabled");
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&skiff(&admin, &["user", "ls", "--json"]))).expect("json");
    assert_eq!(listed[2]["login"], "carol");
    assert_eq!(listed[2]["active"], false);
    ok(&skiff(&admin, &["user", "rm", "carol"]));
    assert_eq!(
        ok(&skiff(&admin, &["user", "ls"])),
        "admin\tadmin\nbob\tadmin\n"
    );
    fails_with(&skiff(&admin, &["user", "rm", "carol"]), "404");

    // Organisation secrets.
    ok(&skiff(
        &admin,
        &["secret", "add", "--org", "acme", "registry", "org-value"],
    ));
    ok(&skiff(
        &admin,
        &[
            "secret",
            "add",
            "--org",
            "acme",
            "deploy",
            "--value",
            "v2",
            "--pull-request",
        ],
    ));
    assert_eq!(
        ok(&skiff(&admin, &["secret", "ls", "--org", "acme"])),
        "deploy\tpull_request\nregistry\n"
    );
    ok(&skiff(
        &admin,
        &["secret", "rm", "--org", "acme", "registry"],
    ));
    assert_eq!(
        ok(&skiff(&admin, &["secret", "ls", "--org", "acme"])),
        "deploy\tpull_request\n"
    );
    fails_with(
        &skiff(&admin, &["secret", "ls"]),
        "give OWNER/NAME or --org ORG",
    );

    // Runner tokens.
    let token = ok(&skiff(&admin, &["runner", "token", "add", "build-1"]));
    let token = token.trim();
    assert!(token.starts_with("skr_"), "{token}");
    assert_eq!(
        ok(&skiff(&admin, &["runner", "token", "ls"])),
        "build-1\tnever seen\n"
    );
    let claimed = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{url}/rpc/v1/claim"))
            .bearer_auth(token)
            .json(
                &serde_json::json!({"name": "x", "os": "linux", "arch": "amd64",
                                      "kinds": ["exec"], "wait_secs": 0}),
            )
            .send()
            .await
            .expect("claim")
            .status()
            .as_u16()
    });
    assert_eq!(claimed, 204);
    let listed = ok(&skiff(&admin, &["runner", "token", "ls"]));
    assert!(listed.starts_with("build-1\tlast seen "), "{listed}");
    ok(&skiff(&admin, &["runner", "token", "rm", "build-1"]));
    assert_eq!(ok(&skiff(&admin, &["runner", "token", "ls"])), "");
    fails_with(&skiff(&admin, &["runner"]), "--server");
    runtime.shutdown_background();
}
