//! Every fault of the admin API, seen by a client over real TCP.

mod common;

use std::time::{Duration, Instant};

use common::{PASSWORD, USER, dossier, open, read_all, record, start, start_with, sync_body};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use motcua_portal_sim::Faults;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

fn login_body() -> Vec<u8> {
    json!({"username": USER, "password": PASSWORD})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn error_rate_answers_500_and_stores_nothing() {
    let s = start().await;
    let token = s.login().await;
    s.faults(json!({"error_rate": 1.0})).await;
    let reply = s.sync(&token, false, &dossier("H22-E1")).await;
    assert_eq!(
        reply,
        json!({"error_code": "500", "message": "Lỗi hệ thống"})
    );
    assert_eq!(s.sim.dossier_count(), 0);
    let login = s
        .post("/login", &json!({"username": USER, "password": PASSWORD}))
        .await
        .json();
    assert_eq!(login["error_code"], "500");
    assert_eq!(s.sim.stats().count("DongBoHoSoMC", "500"), 1);
    s.faults(json!({"error_rate": 0})).await;
    assert_eq!(
        s.sync(&token, false, &dossier("H22-E1")).await["error_code"],
        "0"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn server_error_rate_answers_http_503_and_stores_nothing() {
    let s = start().await;
    let token = s.login().await;
    s.faults(json!({"server_error_rate": 1.0})).await;
    let reply = s
        .post(
            "/DongBoHoSoMC",
            &sync_body(&token, false, &dossier("H22-S1")),
        )
        .await;
    assert_eq!(reply.status, 503);
    assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
    assert_eq!(
        s.post("/login", &json!({"username": USER, "password": PASSWORD}))
            .await
            .status,
        503
    );
    assert_eq!(s.sim.dossier_count(), 0);
    assert_eq!(s.sim.stats().count("DongBoHoSoMC", "http_503"), 1);
    assert_eq!(s.sim.stats().count("login", "http_503"), 1);
    s.shutdown().await;
}

#[tokio::test]
async fn latency_delays_every_portal_request() {
    let s = start().await;
    s.faults(json!({"latency_ms": 250})).await;
    let started = Instant::now();
    let token = s.login().await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    let started = Instant::now();
    assert_eq!(s.lookup(&token, "X").await["error_code"], "-1");
    assert!(started.elapsed() >= Duration::from_millis(250));
    // Not the admin API.
    let started = Instant::now();
    assert_eq!(s.get("/admin/stats").await.status, 200);
    assert!(started.elapsed() < Duration::from_millis(250));
    s.shutdown().await;
}

#[tokio::test]
async fn drop_rate_closes_the_connection_without_a_byte_but_applies_the_request() {
    let s = start().await;
    let token = s.login().await;
    s.faults(json!({"drop_rate": 1.0})).await;
    let body = sync_body(&token, false, &dossier("H22-D1")).to_string();
    let mut stream = open(
        s.addr,
        "POST",
        "/DongBoHoSoMC",
        Some("application/json"),
        body.as_bytes(),
    )
    .await;
    match read_all(&mut stream).await {
        Ok(bytes) => assert!(bytes.is_empty(), "{:?}", String::from_utf8_lossy(&bytes)),
        Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset),
    }
    assert!(
        s.sim.dossier("H22-D1").is_some(),
        "the reply was lost, not the request"
    );
    assert_eq!(s.sim.stats().count("DongBoHoSoMC", "dropped"), 1);

    // Login too.
    let mut stream = open(
        s.addr,
        "POST",
        "/login",
        Some("application/json"),
        &login_body(),
    )
    .await;
    assert!(read_all(&mut stream).await.map_or(true, |b| b.is_empty()));
    s.shutdown().await;
}

#[tokio::test]
async fn an_http_client_sees_a_dropped_connection_as_an_error() {
    let s = start().await;
    let stream = TcpStream::connect(s.addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let driver = tokio::spawn(connection);
    let request = || {
        hyper::Request::post("/login")
            .header("host", s.addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(login_body())))
            .expect("a request")
    };
    // A kept-alive connection answers normally first.
    let ok = sender.send_request(request()).await.expect("a reply");
    assert_eq!(ok.status(), 200);
    let ok: Value =
        serde_json::from_slice(&ok.into_body().collect().await.expect("a body").to_bytes())
            .expect("JSON");
    assert_eq!(ok["error_code"], "0");

    s.sim.set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::none()
    });
    let error = sender
        .send_request(request())
        .await
        .expect_err("the connection was dropped");
    assert!(
        error.is_incomplete_message() || error.is_closed() || error.is_canceled(),
        "{error:?}"
    );
    let _ = tokio::time::timeout(common::LIMIT, driver)
        .await
        .expect("the driver ends");
    s.shutdown().await;
}

#[tokio::test]
async fn timeout_rate_holds_the_request_unanswered() {
    let mut config = common::config();
    config.timeout_hold = Duration::from_millis(800);
    let s = start_with(config).await;
    let token = s.login().await;
    s.faults(json!({"timeout_rate": 1.0})).await;
    let ma = "H22-T1";
    assert_eq!(s.sim.dossier_count(), 0);
    let started = Instant::now();
    let body = sync_body(&token, false, &dossier(ma)).to_string();
    let mut stream = open(
        s.addr,
        "POST",
        "/DongBoHoSoMC",
        Some("application/json"),
        body.as_bytes(),
    )
    .await;
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(400), stream.read(&mut byte)).await;
    assert!(early.is_err(), "nothing within the hold: {early:?}");
    // Meanwhile the request was applied and counted.
    common::eventually("the request is held", || {
        s.sim.stats().count("DongBoHoSoMC", "timeout") == 1
    })
    .await;
    assert!(s.sim.dossier(ma).is_some());
    match read_all(&mut stream).await {
        Ok(bytes) => assert!(bytes.is_empty(), "{:?}", String::from_utf8_lossy(&bytes)),
        Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset),
    }
    assert!(started.elapsed() >= Duration::from_millis(800));
    s.shutdown().await;
}

#[tokio::test]
async fn shutdown_cuts_a_held_request_short() {
    let s = start().await; // the default 30 s hold
    s.sim.set_faults(Faults {
        timeout_rate: 1.0,
        ..Faults::none()
    });
    let mut held = open(
        s.addr,
        "POST",
        "/login",
        Some("application/json"),
        &login_body(),
    )
    .await;
    // An idle kept-alive connection does not hold the shutdown up either.
    let _idle = TcpStream::connect(s.addr).await.expect("connect");
    common::eventually("the request is held", || {
        s.sim.stats().count("login", "timeout") == 1
    })
    .await;
    let started = Instant::now();
    s.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(read_all(&mut held).await.map_or(true, |b| b.is_empty()));
}

#[tokio::test]
async fn malformed_rate_answers_200_with_a_body_that_is_not_json() {
    let s = start().await;
    let token = s.login().await;
    s.faults(json!({"malformed_rate": 1.0})).await;
    let reply = s
        .post(
            "/DongBoHoSoMC",
            &sync_body(&token, false, &dossier("H22-M1")),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert!(
        serde_json::from_slice::<Value>(&reply.body).is_err(),
        "{}",
        reply.text()
    );
    assert!(
        s.sim.dossier("H22-M1").is_some(),
        "applied, the reply garbled"
    );
    assert_eq!(s.sim.stats().count("DongBoHoSoMC", "malformed"), 1);
    s.shutdown().await;
}

#[tokio::test]
async fn expire_sessions_invalidates_every_token_now() {
    let s = start().await;
    let a = s.login().await;
    let b = s.login().await;
    assert_eq!(s.sim.session_count(), 2);
    let view = s.faults(json!({"expire_sessions": true})).await;
    assert_eq!(view["sessions"], 0);
    for token in [&a, &b] {
        assert_eq!(s.lookup(token, "X").await["error_code"], "-2");
    }
    let c = s.login().await;
    assert_eq!(s.lookup(&c, "X").await["error_code"], "-1");
    // In process, the same.
    s.sim.expire_sessions();
    assert_eq!(s.lookup(&c, "X").await["error_code"], "-2");
    s.shutdown().await;
}

#[tokio::test]
async fn an_outage_answers_503_for_its_duration() {
    let s = start().await;
    let token = s.login().await;
    let started = Instant::now();
    let view = s.faults(json!({"outage_secs": 2.0})).await;
    assert!(
        view["outage_remaining_secs"]
            .as_f64()
            .is_some_and(|left| left > 1.0),
        "{view}"
    );
    for path in [
        "/login",
        "/DongBoHoSoMC",
        "/CapNhatTienDoHoSoMC",
        "/LayThongTinHoSo",
    ] {
        let reply = s
            .post(path, &sync_body(&token, false, &dossier("H22-O1")))
            .await;
        assert_eq!(reply.status, 503, "{path}");
        let retry_after = reply.header("retry-after");
        assert!(
            matches!(retry_after, Some("1" | "2")),
            "{path}: {retry_after:?}"
        );
    }
    assert_eq!(s.get("/admin/stats").await.status, 200, "not the admin API");
    assert_eq!(s.sim.dossier_count(), 0);
    tokio::time::sleep(Duration::from_millis(2100).saturating_sub(started.elapsed())).await;
    assert!(s.sim.outage_remaining().is_none());
    assert_eq!(
        s.sync(&token, false, &dossier("H22-O1")).await["error_code"],
        "0"
    );
    // Ended early with 0.
    s.faults(json!({"outage_secs": 30})).await;
    assert_eq!(s.post("/login", &json!({})).await.status, 503);
    s.faults(json!({"outage_secs": 0})).await;
    assert_eq!(
        s.post("/login", &json!({})).await.json()["error_code"],
        "401"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn reject_makes_those_dossiers_syncs_answer_minus_3() {
    let s = start().await;
    let token = s.login().await;
    assert_eq!(
        s.sync(&token, false, &dossier("H22-R2")).await["error_code"],
        "0"
    );
    s.faults(json!({"reject": ["H22-R1", "H22-R2"]})).await;
    for (updating, ma) in [(false, "H22-R1"), (true, "H22-R2")] {
        let reply = s.sync(&token, updating, &dossier(ma)).await;
        assert_eq!(reply["error_code"], "-3", "{reply}");
        assert!(reply["message"].as_str().is_some_and(|m| m.contains(ma)));
    }
    let progress = s.push(&token, &[record("H22-R2", 1)]).await;
    assert_eq!(progress["error_code"], "-3", "{progress}");
    assert_eq!(
        s.sync(&token, false, &dossier("H22-OK")).await["error_code"],
        "0"
    );
    assert_eq!(
        s.lookup(&token, "H22-R2").await["error_code"],
        "0",
        "lookups still answer"
    );
    s.faults(json!({"reject": []})).await;
    assert_eq!(
        s.sync(&token, false, &dossier("H22-R1")).await["error_code"],
        "0"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn faults_never_touch_the_admin_api() {
    let s = start().await;
    s.sim.set_faults(Faults {
        error_rate: 1.0,
        server_error_rate: 1.0,
        drop_rate: 1.0,
        timeout_rate: 1.0,
        malformed_rate: 1.0,
        latency_ms: 2_000,
        ..Faults::none()
    });
    s.sim.start_outage(Duration::from_secs(60));
    let started = Instant::now();
    for path in ["/admin/dossiers", "/admin/stats", "/admin/faults"] {
        let reply = s.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        let _: Value = reply.json();
    }
    assert_eq!(s.post("/admin/reset", &json!({})).await.status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(s.sim.faults().is_none());
    assert!(s.sim.outage_remaining().is_none());
    s.shutdown().await;
}

#[tokio::test]
async fn partial_fault_rates_hit_some_requests() {
    let s = start().await; // seeded
    let token = s.login().await;
    s.faults(json!({"error_rate": 0.5})).await;
    let mut codes = std::collections::BTreeMap::<String, u32>::new();
    for i in 0..40 {
        let reply = s.sync(&token, false, &dossier(&format!("H22-P{i}"))).await;
        *codes
            .entry(reply["error_code"].as_str().expect("a code").to_owned())
            .or_default() += 1;
    }
    assert!(codes.get("0").is_some_and(|&n| n > 5), "{codes:?}");
    assert!(codes.get("500").is_some_and(|&n| n > 5), "{codes:?}");
    assert_eq!(s.sim.dossier_count(), codes["0"] as usize);
    s.shutdown().await;
}
