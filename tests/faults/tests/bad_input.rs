//! Bad input against the `dbaas-api` binary (on the rig's FerretDB):
//!
//! - `hostile_requests`: malformed JSON, huge bodies, wrong content types,
//!   invalid UTF-8, overlong names and ids, odd query strings and headers;
//!   bad tokens and other tenants' ids answer 401 or 404 and reveal nothing
//!   about existence (the same answer as for an id that never existed).
//!   Every answer is below 500, and every error is problem+json whose
//!   `status` is the HTTP status.
//! - `schemathesis_fuzzing`: property-based fuzzing from the OpenAPI
//!   document (tests/faults/schemathesis.sh): no 5xx, every response matches
//!   the document. `DBAAS_FUZZ_CASES` cases at least (default 300; `just
//!   test-faults` runs 10000).

use std::time::{Duration, Instant};

use dbaas_core::domain::random_token;
use dbaas_faults::{
    ApiProcess, Summary, count, create_database, drop_mongo_database, rig_var, seed, target_dir,
    tenant_and_key,
};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PROBLEM: &str = "application/problem+json";

/// What a case is, the request, and the statuses it may answer.
type Case = (
    &'static str,
    Method,
    String,
    HeaderMap,
    Option<Vec<u8>>,
    &'static [u16],
);

struct Api {
    http: reqwest::Client,
    base: String,
}

/// One answer, as far as the checks need it.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Api {
    async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .headers(headers);
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: no answer: {e}"));
        Answer {
            status: resp.status(),
            content_type: resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            body: resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
        }
    }
}

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_bytes(v).expect("header value"),
        );
    }
    h
}

fn bearer(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

/// The body of a problem with the ids in it blanked, to compare answers.
fn blank(answer: &Answer, ids: &[&str]) -> String {
    let mut text = String::from_utf8_lossy(&answer.body).to_string();
    for id in ids {
        text = text.replace(id, "<id>");
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_requests() {
    let uri = rig_var("MONGODB_URI");
    let database = format!("faults_input_{}", random_token(6));
    let admin = format!("admin-{}", random_token(24));
    let process = ApiProcess::start(
        &uri,
        &database,
        &admin,
        &target_dir().join("faults").join("logs"),
    )
    .await;
    let api = Api {
        http: reqwest::Client::new(),
        base: process.base.clone(),
    };
    let (_, key_a) = tenant_and_key(&api.http, &api.base, &admin, "tenant-a").await;
    let (_, key_b) = tenant_and_key(&api.http, &api.base, &admin, "tenant-b").await;
    let json_a = |extra: &[(&str, &[u8])]| {
        let mut h = headers(&[
            ("authorization", &bearer(&key_a)),
            ("content-type", b"application/json"),
        ]);
        h.extend(headers(extra));
        h
    };
    let created = api
        .raw(Method::POST, "/api/v1/databases", json_a(&[]), Some(br#"{"name":"secret-project","engine":"postgres","size":"db.t3.small","replicas":1,"storage_gb":10}"#.to_vec()))
        .await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let id_a = created.json()["id"].as_str().expect("id").to_string();
    let absent = "db-zzzzzzzzzzzz";

    let mut cases: Vec<Case> = Vec::new();
    let post = "/api/v1/databases".to_string();
    let one = format!("/api/v1/databases/{id_a}");
    let big = |n: usize| {
        let mut b = br#"{"name":""#.to_vec();
        b.extend(std::iter::repeat_n(b'a', n));
        b.extend(br#"","engine":"postgres","size":"db.t3.small","replicas":1,"storage_gb":10}"#);
        b
    };
    cases.push((
        "malformed JSON",
        Method::POST,
        post.clone(),
        json_a(&[]),
        Some(br#"{"name": "x", "engine""#.to_vec()),
        &[400],
    ));
    cases.push((
        "trailing garbage",
        Method::POST,
        post.clone(),
        json_a(&[]),
        Some(br#"{"name":"x"} {}"#.to_vec()),
        &[400],
    ));
    cases.push((
        "empty body",
        Method::POST,
        post.clone(),
        json_a(&[]),
        Some(Vec::new()),
        &[400],
    ));
    cases.push((
        "invalid UTF-8",
        Method::POST,
        post.clone(),
        json_a(&[]),
        Some(b"{\"name\":\"\xff\xfe\",\"engine\":\"postgres\"}".to_vec()),
        &[400],
    ));
    cases.push(("a lone surrogate escape", Method::POST, post.clone(), json_a(&[]), Some(br#"{"name":"\ud800","engine":"postgres","size":"db.t3.small","replicas":1,"storage_gb":10}"#.to_vec()), &[400, 422]));
    cases.push(("NUL in a name", Method::POST, post.clone(), json_a(&[]), Some(br#"{"name":"a\u0000b","engine":"postgres","size":"db.t3.small","replicas":1,"storage_gb":10}"#.to_vec()), &[422]));
    cases.push((
        "deeply nested JSON",
        Method::POST,
        post.clone(),
        json_a(&[]),
        Some([vec![b'['; 100_000], vec![b']'; 100_000]].concat()),
        &[400, 413],
    ));
    cases.push((
        "a body just over 64 KiB",
        Method::POST,
        post.clone(),
        json_a(&[]),
        Some(big(64 * 1024)),
        &[413],
    ));
    cases.push((
        "a 16 MiB body",
        Method::POST,
        post.clone(),
        json_a(&[]),
        Some(big(16 << 20)),
        &[413],
    ));
    cases.push((
        "an overlong name (41)",
        Method::POST,
        post.clone(),
        json_a(&[]),
        Some(big(41)),
        &[422],
    ));
    cases.push((
        "an overlong name (60 KiB)",
        Method::POST,
        post.clone(),
        json_a(&[]),
        Some(big(60 * 1024)),
        &[422],
    ));
    cases.push((
        "an array body",
        Method::POST,
        post.clone(),
        json_a(&[]),
        Some(b"[1,2]".to_vec()),
        &[422],
    ));
    cases.push((
        "a null body",
        Method::POST,
        post.clone(),
        json_a(&[]),
        Some(b"null".to_vec()),
        &[422],
    ));
    cases.push(("a huge number", Method::POST, post.clone(), json_a(&[]), Some(br#"{"name":"n","engine":"postgres","size":"db.t3.small","replicas":1e400,"storage_gb":10}"#.to_vec()), &[400, 422]));
    cases.push(("a u64 overflow", Method::POST, post.clone(), json_a(&[]), Some(br#"{"name":"n","engine":"postgres","size":"db.t3.small","replicas":1,"storage_gb":18446744073709551616}"#.to_vec()), &[400, 422]));
    cases.push(("duplicate members", Method::POST, post.clone(), json_a(&[]), Some(br#"{"name":"d","name":"e","engine":"postgres","size":"db.t3.small","replicas":1,"storage_gb":10}"#.to_vec()), &[201, 400, 422]));
    cases.push((
        "text/plain",
        Method::POST,
        post.clone(),
        headers(&[
            ("authorization", &bearer(&key_a)),
            ("content-type", b"text/plain"),
        ]),
        Some(big(3)),
        &[415],
    ));
    cases.push((
        "no content type",
        Method::POST,
        post.clone(),
        headers(&[("authorization", &bearer(&key_a))]),
        Some(big(3)),
        &[415],
    ));
    cases.push((
        "form encoding",
        Method::POST,
        post.clone(),
        headers(&[
            ("authorization", &bearer(&key_a)),
            ("content-type", b"application/x-www-form-urlencoded"),
        ]),
        Some(b"name=x".to_vec()),
        &[415],
    ));
    cases.push((
        "a garbage content type",
        Method::POST,
        post.clone(),
        headers(&[
            ("authorization", &bearer(&key_a)),
            ("content-type", b"\xff;;;"),
        ]),
        Some(big(3)),
        &[415],
    ));
    cases.push((
        "an empty PATCH",
        Method::PATCH,
        one.clone(),
        json_a(&[]),
        Some(b"{}".to_vec()),
        &[400],
    ));
    cases.push((
        "a PATCH of a read-only field",
        Method::PATCH,
        one.clone(),
        json_a(&[]),
        Some(br#"{"current_size":"db.t3.large"}"#.to_vec()),
        &[422],
    ));
    cases.push((
        "a garbage If-Match",
        Method::PATCH,
        one.clone(),
        json_a(&[("if-match", b"\"nope\", W/\"g1\", \xff")]),
        Some(br#"{"size":"db.t3.large"}"#.to_vec()),
        &[412],
    ));
    cases.push((
        "an overlong id",
        Method::GET,
        format!("/api/v1/databases/{}", "x".repeat(8000)),
        json_a(&[]),
        None,
        &[404, 414, 431],
    ));
    for weird in [
        "%00",
        "%FF%FE",
        "..%2F..%2Fadmin",
        "%24gt",
        "db-%E2%98%83",
        "%7B%22%24ne%22%3A1%7D",
        "a.b",
        "%20",
    ] {
        cases.push((
            "an odd id",
            Method::GET,
            format!("/api/v1/databases/{weird}"),
            json_a(&[]),
            None,
            &[400, 404],
        ));
        cases.push((
            "an odd operation id",
            Method::GET,
            format!("/api/v1/operations/{weird}"),
            json_a(&[]),
            None,
            &[400, 404],
        ));
    }
    for query in [
        "limit=0",
        "limit=-1",
        "limit=abc",
        "limit=99999999999999999999",
        "cursor=%%%",
        "engine=oracle",
        "status=%FF",
        "limit=1&limit=2",
        "bogus=1",
        "database_id[$ne]=x",
    ] {
        cases.push((
            "an odd query",
            Method::GET,
            format!("/api/v1/databases?{query}"),
            json_a(&[]),
            None,
            &[400],
        ));
        cases.push((
            "an odd query",
            Method::GET,
            format!("/api/v1/operations?{query}"),
            json_a(&[]),
            None,
            &[400],
        ));
    }
    // Any id is a valid database cursor (it is an opaque id); an operation
    // cursor carries a time as well.
    cases.push((
        "a cursor of no page",
        Method::GET,
        "/api/v1/databases?cursor=bm90IGEgY3Vyc29y".into(),
        json_a(&[]),
        None,
        &[200, 400],
    ));
    cases.push((
        "a cursor of no page",
        Method::GET,
        "/api/v1/operations?cursor=bm90IGEgY3Vyc29y".into(),
        json_a(&[]),
        None,
        &[400],
    ));
    cases.push((
        "a long URL",
        Method::GET,
        format!("/api/v1/databases?cursor={}", "c".repeat(60_000)),
        json_a(&[]),
        None,
        &[400, 414, 431],
    ));
    cases.push((
        "PUT",
        Method::PUT,
        post.clone(),
        json_a(&[]),
        Some(big(3)),
        &[405],
    ));
    cases.push((
        "an unknown route",
        Method::GET,
        "/api/v2/databases".into(),
        json_a(&[]),
        None,
        &[404],
    ));
    // Bad credentials.
    for (what, value) in [
        ("no Authorization", None),
        ("Basic", Some(b"Basic YWRtaW46YWRtaW4=".to_vec())),
        ("an empty Bearer", Some(b"Bearer ".to_vec())),
        (
            "an unknown key",
            Some(bearer(&format!("dbk_{}", random_token(32)))),
        ),
        (
            "a key with junk appended",
            Some(bearer(&format!("{key_a}x"))),
        ),
        ("an 8 KiB token", Some(bearer(&"k".repeat(8192)))),
        ("non-ASCII bytes", Some(b"Bearer \xe9\xff\x80".to_vec())),
        ("the admin token", Some(bearer(&admin))),
    ] {
        for path in [
            post.clone(),
            one.clone(),
            format!("/api/v1/databases/{absent}"),
            "/api/v1/operations".to_string(),
        ] {
            let mut h = headers(&[("content-type", b"application/json")]);
            if let Some(v) = &value {
                h.insert("authorization", HeaderValue::from_bytes(v).expect("header"));
            }
            cases.push((what, Method::GET, path, h, None, &[401, 431]));
        }
    }
    cases.push((
        "a tenant key on an admin route",
        Method::POST,
        "/api/v1/admin/tenants".into(),
        json_a(&[]),
        Some(br#"{"name":"x"}"#.to_vec()),
        &[403],
    ));
    cases.push((
        "no token on an admin route",
        Method::POST,
        "/api/v1/admin/tenants".into(),
        headers(&[("content-type", b"application/json")]),
        Some(br#"{"name":"x"}"#.to_vec()),
        &[401],
    ));

    let mut problems = Vec::new();
    let total = cases.len() as u64;
    for (what, method, path, h, body, want) in cases {
        let short: String = path.chars().take(80).collect();
        let a = api.raw(method.clone(), &path, h, body).await;
        let text: String = String::from_utf8_lossy(&a.body).chars().take(300).collect();
        if a.status.is_server_error() || !want.contains(&a.status.as_u16()) {
            problems.push(format!(
                "{what}: {method} {short} answered {} (want {want:?}): {text}",
                a.status
            ));
            continue;
        }
        if !a.status.is_success() {
            let p = a.json();
            if !a.content_type.starts_with(PROBLEM)
                || p["status"] != a.status.as_u16()
                || !p["title"].is_string()
                || !p["errors"].is_array()
            {
                problems.push(format!(
                    "{what}: {method} {short}: {} is not problem+json of that status ({}): {text}",
                    a.status, a.content_type
                ));
            }
        }
    }

    // Other tenants' ids, and bad tokens, reveal nothing about existence:
    // the answer for tenant A's database is the answer for an absent id.
    let mut existence = 0u64;
    let b_json = headers(&[
        ("authorization", &bearer(&key_b)),
        ("content-type", b"application/json"),
    ]);
    let bad = headers(&[
        (
            "authorization",
            &bearer(&format!("dbk_{}", random_token(32))),
        ),
        ("content-type", b"application/json"),
    ]);
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(br#"{"size":"db.t3.large"}"#.to_vec())),
        (Method::DELETE, None),
    ] {
        for (who, h, want) in [
            ("tenant B", b_json.clone(), StatusCode::NOT_FOUND),
            ("a bad token", bad.clone(), StatusCode::UNAUTHORIZED),
        ] {
            let theirs = api
                .raw(
                    method.clone(),
                    &format!("/api/v1/databases/{id_a}"),
                    h.clone(),
                    body.clone(),
                )
                .await;
            let nobody = api
                .raw(
                    method.clone(),
                    &format!("/api/v1/databases/{absent}"),
                    h.clone(),
                    body.clone(),
                )
                .await;
            existence += 1;
            if theirs.status != want
                || nobody.status != want
                || blank(&theirs, &[&id_a]) != blank(&nobody, &[absent])
            {
                problems.push(format!(
                    "{who} {method}: tenant A's id answered {} {:?}, an absent id {} {:?}",
                    theirs.status,
                    blank(&theirs, &[&id_a]),
                    nobody.status,
                    blank(&nobody, &[absent])
                ));
            }
        }
    }
    // Listing operations of another tenant's database looks like listing
    // those of a database that does not exist.
    let theirs = api
        .raw(
            Method::GET,
            &format!("/api/v1/operations?database_id={id_a}"),
            b_json.clone(),
            None,
        )
        .await;
    let nobody = api
        .raw(
            Method::GET,
            &format!("/api/v1/operations?database_id={absent}"),
            b_json.clone(),
            None,
        )
        .await;
    existence += 1;
    if theirs.status != nobody.status || blank(&theirs, &[&id_a]) != blank(&nobody, &[absent]) {
        problems.push(format!(
            "operations of tenant A's database as tenant B: {} {:?} vs absent {} {:?}",
            theirs.status,
            blank(&theirs, &[&id_a]),
            nobody.status,
            blank(&nobody, &[absent])
        ));
    }
    // Tenant A's database is untouched by all of the above.
    let mine = api
        .raw(
            Method::GET,
            &format!("/api/v1/databases/{id_a}"),
            json_a(&[]),
            None,
        )
        .await;
    let db = mine.json();
    if mine.status != StatusCode::OK
        || db["size"] != "db.t3.small"
        || db["deletion_requested"] != false
    {
        problems.push(format!("tenant A's database changed: {} {db}", mine.status));
    }
    // The API is still healthy.
    let ready = api
        .raw(Method::GET, "/readyz", HeaderMap::new(), None)
        .await;
    if ready.status != StatusCode::OK {
        problems.push(format!(
            "/readyz answered {} after the hostile requests",
            ready.status
        ));
    }

    let mut s = Summary::new("bad_input_hostile");
    s.trials = total + existence;
    s.faults = total + existence;
    s.converged = u64::from(problems.is_empty());
    s.extra = format!("existence_probes={existence} problems={}", problems.len());
    s.print();
    drop(process);
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    drop_mongo_database(&uri, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_fuzzing() {
    let cases = count("DBAAS_FUZZ_CASES", 300);
    let started = Instant::now();
    let uri = rig_var("MONGODB_URI");
    let database = format!("faults_fuzz_{}", random_token(6));
    let admin = format!("admin-{}", random_token(24));
    let dir = target_dir()
        .join("faults")
        .join(format!("schemathesis-{}", random_token(6)));
    let process = ApiProcess::start(&uri, &database, &admin, &dir).await;
    let http = reqwest::Client::new();
    let (_, key) = tenant_and_key(&http, &process.base, &admin, "fuzzer").await;
    // A database to find, so GET/PATCH/DELETE by id reach past the 404.
    create_database(&http, &process.base, &key, json!({"name": "fuzzed", "engine": "mongodb", "size": "db.t3.small", "replicas": 3, "storage_gb": 10})).await;
    // 12 operations; each case count is per operation and phase.
    let per_operation = cases.div_ceil(12).max(5);
    let seed = seed();
    let script = dbaas_faults::servers::repo_root().join("tests/faults/schemathesis.sh");
    let out = tokio::time::timeout(
        Duration::from_secs(3600),
        tokio::process::Command::new("bash")
            .arg(&script)
            .args([
                &process.base,
                &key,
                &admin,
                &per_operation.to_string(),
                &dir.join("report").display().to_string(),
                &seed.to_string(),
            ])
            .output(),
    )
    .await
    .expect("schemathesis did not finish within an hour")
    .expect("run schemathesis.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let ran: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("schemathesis cases: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let api_log = std::fs::read_to_string(&process.log).unwrap_or_default();
    let server_errors = api_log.lines().filter(|l| l.contains("status=5")).count() as u64;
    drop(process);
    let mut s = Summary::new("bad_input_schemathesis");
    s.trials = ran;
    s.faults = ran;
    s.converged = u64::from(out.status.success());
    s.extra = format!(
        "per_operation={per_operation} server_errors_logged={server_errors} seed={seed} secs={} reports={}",
        started.elapsed().as_secs(),
        dir.join("report").display()
    );
    s.print();
    assert!(
        out.status.success(),
        "schemathesis found problems (reports in {}):\n{stderr}\n{stdout}",
        dir.join("report").display()
    );
    assert!(
        ran >= cases,
        "schemathesis ran {ran} cases, fewer than the {cases} asked for:\n{stderr}"
    );
    drop_mongo_database(&uri, &database).await;
}
