//! The `herald` binary's commands (`publish`, `token`, `sign`, `verify`) against a real Herald:
//! what they print, and the exit codes scripts act on.

use std::process::{Output, Stdio};

use tokio::io::AsyncWriteExt;

use crate::{
    callbacks::{app_with_idle_worker, call_back},
    helpers::{gauge, next_event, spawn_app, spawn_app_with, TestApp, CALLBACK_SECRET, TOKEN},
};

const JWT_SECRET: &str = "the CLI tests' JWT secret, 32 bytes or more";

/// Runs `herald args…` with only `env` set (none of the developer's or the Makefile's
/// `HERALD_*`), `stdin` on its standard input, and waits for it.
async fn herald(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("herald starts");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    child.wait_with_output().await.expect("herald ends")
}

/// Its exit code, and its stdout and stderr as text without their final newline.
fn outcome(output: &Output) -> (i32, String, String) {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim_end().to_owned();
    (output.status.code().expect("an exit code"), text(&output.stdout), text(&output.stderr))
}

/// `herald publish` to `app`'s `topic` with the test publish token.
async fn publish(app: &TestApp, args: &[&str], data: &str) -> (i32, String, String) {
    let url = app.url("");
    let mut all = vec!["publish", "--url", &url];
    all.extend_from_slice(args);
    all.push(data);
    outcome(&herald(&all, &[("HERALD_PUBLISH_TOKEN", TOKEN)], b"").await)
}

#[tokio::test]
async fn publish_prints_the_id_of_the_event_a_subscriber_receives() {
    let app = spawn_app().await;
    let mut stream = app.subscribe("/events?topic=orders").await;

    let (code, id, stderr) = publish(&app, &["--topic", "orders", "--event", "created"], r#"{"id":7}"#).await;

    assert_eq!(code, 0, "{stderr}");
    let event = next_event(&mut stream).await;
    assert_eq!(
        (event.id.as_str(), event.event.as_str(), event.data.as_str()),
        (id.as_str(), "created", r#"{"id":7}"#)
    );
}

#[tokio::test]
async fn publish_reads_the_data_from_stdin_given_a_dash() {
    let app = spawn_app().await;
    let mut stream = app.subscribe("/events?topic=orders").await;
    let url = app.url("");

    let output = herald(
        &["publish", "--url", &url, "--topic", "orders", "-"],
        &[("HERALD_PUBLISH_TOKEN", TOKEN)],
        b"line one\nline two",
    )
    .await;

    let (code, id, stderr) = outcome(&output);
    assert_eq!(code, 0, "{stderr}");
    let event = next_event(&mut stream).await;
    assert_eq!((event.id, event.data), (id, "line one\nline two".to_owned()));
}

#[tokio::test]
async fn publish_waits_out_a_503_and_retries_with_the_same_key_so_the_event_is_published_once() {
    // One publish a second: the test's own publish empties the bucket, so the command's first
    // attempt gets 503 with Retry-After and only a retry can publish.
    let app = spawn_app_with(|config| config.max_publish_rate = 1).await;
    let mut stream = app.subscribe("/events?topic=orders").await;
    let first = app.publish_ok("orders", "first").await;

    let (code, second, stderr) =
        publish(&app, &["--topic", "orders", "--idempotency-key", "order-7"], "second").await;
    assert_eq!(code, 0, "{stderr}");
    // Again with the same key (over the rate too): the same event, not another one.
    let (code, again, stderr) =
        publish(&app, &["--topic", "orders", "--idempotency-key", "order-7"], "second").await;
    assert_eq!((code, again.as_str()), (0, second.as_str()), "{stderr}");
    let (code, third, stderr) = publish(&app, &["--topic", "orders"], "third").await;
    assert_eq!(code, 0, "{stderr}");

    // Each command's first attempt was turned away (the test's own publish took none).
    let turned_away = gauge(&app.url("/metrics"), r#"herald_rejections_total{status="503"}"#).await;
    assert!(turned_away >= 3, "{turned_away} 503s");

    for (id, data) in [(first, "first"), (second, "second"), (third, "third")] {
        let event = next_event(&mut stream).await;
        assert_eq!((event.id, event.data.as_str()), (id, data));
    }
}

#[tokio::test]
async fn publish_refused_by_herald_exits_1_with_its_reason() {
    let app = spawn_app().await;
    let url = app.url("");

    let output = herald(
        &["publish", "--url", &url, "--topic", "orders", "x"],
        &[("HERALD_PUBLISH_TOKEN", "wrong")],
        b"",
    )
    .await;

    let (code, stdout, stderr) = outcome(&output);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(stderr.starts_with("error: refused (401 unauthorized)"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[tokio::test]
async fn publish_to_a_herald_that_cannot_take_it_exits_3() {
    // No publish token and no JWT key: publishing is disabled, a 503 no retry can change.
    let disabled = spawn_app_with(|config| config.publish_token = None).await;
    let (code, _, stderr) = publish(&disabled, &["--topic", "orders"], "x").await;
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("publishing is disabled"), "{stderr}");

    // Nobody listening: every attempt fails to connect.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let output = herald(
        &["publish", "--url", &url, "--topic", "orders", "--attempts", "2", "x"],
        &[("HERALD_PUBLISH_TOKEN", TOKEN)],
        b"",
    )
    .await;
    let (code, _, stderr) = outcome(&output);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("after 2 attempts") && stderr.contains("refused"), "{stderr}");
}

#[tokio::test]
async fn a_minted_subscriber_token_opens_a_private_topic_and_a_publisher_token_publishes_to_it() {
    let app = spawn_app_with(|config| config.jwt_secret = Some(JWT_SECRET.into())).await;
    let mint = |args: &'static [&'static str]| async move {
        let mut all = vec!["token"];
        all.extend_from_slice(args);
        let (code, token, stderr) = outcome(&herald(&all, &[("HERALD_JWT_SECRET", JWT_SECRET)], b"").await);
        assert_eq!(code, 0, "{stderr}");
        token
    };
    let subscriber = mint(&["--subscribe", "user.42", "user.42.*", "--sub", "user-42", "--ttl", "10m"]).await;
    let publisher = mint(&["--publish", "user.**", "--sub", "billing"]).await;
    let refused = app.get("/events?topic=user.42").await;
    assert_eq!(refused.status(), 401, "the topic is private");

    let mut stream = app
        .subscribe_with("/events?topic=user.42", &[("authorization", &format!("Bearer {subscriber}"))])
        .await;
    let url = app.url("");
    let output = herald(
        &["publish", "--url", &url, "--topic", "user.42", "--token", &publisher, "export done"],
        &[],
        b"",
    )
    .await;

    let (code, id, stderr) = outcome(&output);
    assert_eq!(code, 0, "{stderr}");
    let event = next_event(&mut stream).await;
    assert_eq!((event.id, event.data.as_str()), (id, "export done"));
}

#[tokio::test]
async fn a_signature_made_by_herald_sign_is_accepted_on_the_jobs_callback() {
    let (app, _worker) = app_with_idle_worker().await;
    let job = app.start_job().await;
    let body = r#"{"status":"done","result":{"answer":42}}"#;

    let output = herald(
        &["sign", "--job", &job.id, "-"],
        &[("HERALD_CALLBACK_SECRET", CALLBACK_SECRET)],
        body.as_bytes(),
    )
    .await;

    let (code, signature, stderr) = outcome(&output);
    assert_eq!(code, 0, "{stderr}");
    let (status, answer) = call_back(&app, &job.id, body, Some(&signature)).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn herald_verify_accepts_what_herald_sign_made_and_refuses_a_tampered_body_with_its_reason() {
    let env = [("HERALD_CALLBACK_SECRET", CALLBACK_SECRET)];
    let body = r#"{"status":"done"}"#;
    let (code, signature, stderr) = outcome(&herald(&["sign", "--job", "job-1", body], &env, b"").await);
    assert_eq!(code, 0, "{stderr}");

    let verify = |job: &'static str, body: &'static str| {
        let signature = signature.clone();
        async move {
            outcome(&herald(&["verify", "--job", job, "--signature", &signature, body], &env, b"").await)
        }
    };
    assert_eq!(verify("job-1", body).await.0, 0);
    let (code, _, reason) = verify("job-1", r#"{"status":"failed"}"#).await;
    assert_eq!((code, reason.as_str()), (1, "error: no signature matches the body"));
    let (code, _, reason) = verify("job-2", body).await;
    assert_eq!(
        (code, reason.as_str()),
        (1, "error: no signature matches the body"),
        "another job's signature"
    );
}

#[tokio::test]
async fn herald_sign_reproduces_the_worked_example_of_the_api_doc() {
    let output =
        herald(&["sign", "--secret", "whsec_test", "--job", "job-1", "--time", "1700000000", "{}"], &[], b"")
            .await;
    assert_eq!(
        outcome(&output),
        (
            0,
            "t=1700000000,v2=79a7d49d493cd22e5e2277cd78bf06dc59c7982b3f0d708abe0d45bdb1d5ec35".to_owned(),
            String::new()
        )
    );
}

#[tokio::test]
async fn bad_usage_exits_2_and_says_what_is_wrong() {
    let secret = [("HERALD_JWT_SECRET", JWT_SECRET)];
    for (args, env, says) in [
        (
            &["publish", "--url", "http://127.0.0.1:1", "x"][..],
            &[("HERALD_PUBLISH_TOKEN", TOKEN)][..],
            "--topic",
        ),
        (
            &["publish", "--url", "ftp://example", "--topic", "a", "x"],
            &[("HERALD_PUBLISH_TOKEN", TOKEN)],
            "http://",
        ),
        (
            &["publish", "--url", "https://example", "--topic", "a", "x"],
            &[("HERALD_PUBLISH_TOKEN", TOKEN)],
            "plain HTTP",
        ),
        (&["publish", "--url", "http://127.0.0.1:1", "--topic", "a", "x"], &[], "--token"),
        // Refused before any attempt, where it used to be retried as an unanswered request.
        (
            &["publish", "--url", "http://127.0.0.1:1", "--topic", "a", "--idempotency-key", "a\nb", "x"],
            &[("HERALD_PUBLISH_TOKEN", TOKEN)],
            "the idempotency key cannot be sent in an HTTP header",
        ),
        (&["token", "--subscribe", "user*"], &secret, "user*"),
        (&["token", "--sub", "user-42"], &secret, "--subscribe"),
        (&["token", "--subscribe", "user.42"], &[("HERALD_JWT_SECRET", "short")], "at least 32 bytes"),
        (&["verify", "--secret", "s", "--job", "j", "body"], &[], "--signature"),
        (&["sign", "--secret", "s", "--job", "j", "--time=-5", "body"], &[], "--time"),
        (&["--retry", "3s", "sign", "--secret", "s", "--job", "j", "body"], &[], "cannot be used"),
        (&["frobnicate"], &[], "frobnicate"),
        // Without a command the serving options are read as before, flags and variables alike.
        (&["--max-topics", "0"], &[], "--max-topics"),
        (&[], &[("HERALD_MAX_TOPICS", "0")], "--max-topics"),
    ] {
        let (code, stdout, stderr) = outcome(&herald(args, env, b"").await);
        assert_eq!((code, stdout.as_str()), (2, ""), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_command_is_not_stopped_by_a_serving_setting_it_does_not_read() {
    // Herald would refuse to serve with this; `herald sign` has nothing to do with it.
    let env = [("HERALD_MAX_TOPICS", "0"), ("HERALD_CALLBACK_SECRET", CALLBACK_SECRET)];
    let (code, signature, stderr) = outcome(&herald(&["sign", "--job", "job-1", "{}"], &env, b"").await);
    assert_eq!(code, 0, "{stderr}");
    assert!(signature.starts_with("t="), "{signature}");
}
