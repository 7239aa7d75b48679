//! The portal's services over real HTTP on loopback, as docs/portal-contract.md gives them.

mod common;

use std::time::Duration;

use common::{PASSWORD, USER, dossier, record, send, start, start_with, sync_body};
use serde_json::{Value, json};

#[tokio::test]
async fn login_answers_a_session_or_401() {
    let s = start().await;
    let ok = s
        .post("/login", &json!({"username": USER, "password": PASSWORD}))
        .await;
    assert!(
        ok.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "{:?}",
        ok.headers
    );
    let ok = ok.json();
    assert_eq!(ok["error_code"], "0");
    assert_eq!(ok["message"], "OK");
    assert_eq!(ok["expires_in"], 3600);
    assert!(
        ok["session"].as_str().is_some_and(|t| t.len() >= 16),
        "{ok}"
    );

    for body in [
        json!({"username": USER, "password": "sai"}),
        json!({"username": "khac", "password": PASSWORD}),
        json!({"username": USER}),
        json!({}),
    ] {
        let bad = s.post("/login", &body).await.json();
        assert_eq!(bad["error_code"], "401", "{body}: {bad}");
        assert_eq!(bad["message"], "Sai tên đăng nhập hoặc mật khẩu");
        assert!(bad.get("session").is_none());
    }
    let stats = s.sim.stats();
    assert_eq!(stats.count("login", "0"), 1);
    assert_eq!(stats.count("login", "401"), 4);
    s.shutdown().await;
}

#[tokio::test]
async fn services_need_a_valid_session() {
    let s = start().await;
    let d = dossier("H22-0001");
    for session in [Value::Null, json!("khong-co"), json!(42)] {
        let mut body = sync_body("", false, &d);
        match &session {
            Value::Null => drop(body.as_object_mut().expect("object").remove("session")),
            other => body["session"] = other.clone(),
        }
        for path in ["/DongBoHoSoMC", "/CapNhatTienDoHoSoMC", "/LayThongTinHoSo"] {
            let reply = s.post(path, &body).await.json();
            assert_eq!(reply["error_code"], "-2", "{path} {session}: {reply}");
            assert_eq!(
                reply["message"],
                "Phiên làm việc không hợp lệ hoặc đã hết hạn"
            );
        }
    }
    assert_eq!(s.sim.dossier_count(), 0);
    let token = s.login().await;
    assert_eq!(s.sync(&token, false, &d).await["error_code"], "0");
    s.shutdown().await;
}

#[tokio::test]
async fn sessions_expire_after_their_ttl() {
    let mut config = common::config();
    config.session_ttl = Duration::from_millis(400);
    let s = start_with(config).await;
    let reply = s
        .post("/login", &json!({"username": USER, "password": PASSWORD}))
        .await
        .json();
    assert_eq!(reply["expires_in"], 1, "rounded up to whole seconds");
    let token = reply["session"].as_str().expect("a token").to_owned();
    assert_eq!(s.lookup(&token, "X").await["error_code"], "-1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.lookup(&token, "X").await["error_code"], "-2");
    assert_eq!(s.sim.session_count(), 0);
    let fresh = s.login().await;
    assert_ne!(fresh, token);
    assert_eq!(s.lookup(&fresh, "X").await["error_code"], "-1");
    s.shutdown().await;
}

#[tokio::test]
async fn a_create_of_a_known_dossier_is_refused_then_the_update_lands() {
    let s = start().await;
    let token = s.login().await;
    let ma = "000.00.01.H22-260315-0042";
    let mut d = dossier(ma);
    assert_eq!(
        s.sync(&token, false, &d).await,
        json!({"error_code": "0", "message": "OK"})
    );
    assert_eq!(s.sim.dossier(ma), Some(d.clone()));

    d["TrangThaiHoSo"] = json!(4);
    d["PhienBan"] = json!(2);
    let again = s.sync(&token, false, &d).await;
    assert_eq!(
        again,
        json!({"error_code": "-1", "message": format!("Hồ sơ {ma} đã tồn tại")})
    );
    assert_eq!(
        s.sim.dossier(ma).expect("stored")["TrangThaiHoSo"],
        2,
        "unchanged"
    );

    assert_eq!(s.sync(&token, true, &d).await["error_code"], "0");
    assert_eq!(s.sim.dossier(ma), Some(d.clone()), "replaced whole");

    let unknown = s.sync(&token, true, &dossier("H22-KHONG-CO")).await;
    assert_eq!(
        unknown,
        json!({"error_code": "-1", "message": "Hồ sơ H22-KHONG-CO không tồn tại"})
    );
    assert_eq!(s.sim.dossier_count(), 1);
    let stats = s.sim.stats();
    assert_eq!(stats.create_conflicts, 1);
    assert_eq!(stats.count("DongBoHoSoMC", "0"), 2);
    assert_eq!(stats.count("DongBoHoSoMC", "-1"), 2);
    s.shutdown().await;
}

#[tokio::test]
async fn malformed_dossiers_are_rejected_naming_the_field() {
    let s = start().await;
    let token = s.login().await;
    let patched = |patch: &dyn Fn(&mut Value)| {
        let mut d = dossier("H22-0009");
        patch(&mut d);
        d
    };
    let remove = |field: &'static str| {
        move |d: &mut Value| drop(d.as_object_mut().expect("object").remove(field))
    };
    let set = |field: &'static str, value: Value| move |d: &mut Value| d[field] = value.clone();
    let cases: Vec<(&str, Value)> = vec![
        ("MaHoSo", patched(&remove("MaHoSo"))),
        ("MaHoSo", patched(&set("MaHoSo", json!("")))),
        ("MaTTHC", patched(&remove("MaTTHC"))),
        ("KenhThucHien", patched(&remove("KenhThucHien"))),
        ("KenhThucHien", patched(&set("KenhThucHien", json!(0)))),
        ("KenhThucHien", patched(&set("KenhThucHien", json!(4)))),
        ("ChuHoSo", patched(&remove("ChuHoSo"))),
        ("ChuHoSo", patched(&set("ChuHoSo", json!("")))),
        ("TrangThaiHoSo", patched(&remove("TrangThaiHoSo"))),
        ("TrangThaiHoSo", patched(&set("TrangThaiHoSo", json!(0)))),
        ("TrangThaiHoSo", patched(&set("TrangThaiHoSo", json!(11)))),
        ("LoaiDoiTuong", patched(&set("LoaiDoiTuong", json!(5)))),
        (
            "NgayHenTra",
            patched(&set("NgayHenTra", json!("2026-03-29 17:00:00"))),
        ),
        (
            "NgayNopHoSo",
            patched(&set("NgayNopHoSo", json!("202603151425"))),
        ),
        (
            "NgayTiepNhan",
            patched(&set("NgayTiepNhan", json!("20261315150000"))),
        ),
        (
            "NgayTra",
            patched(&set("NgayTra", json!(20260315150000u64))),
        ),
        ("NgayTuChoi", patched(&set("NgayTuChoi", Value::Null))),
        (
            "TaiLieuNop",
            patched(&set("TaiLieuNop", json!({"TenTepDinhKem": "a.pdf"}))),
        ),
        (
            "DanhSachHoSoBoSung",
            patched(&set("DanhSachHoSoBoSung", json!("x"))),
        ),
        (
            "DanhSachGiayToKetQua",
            patched(&set("DanhSachGiayToKetQua", json!(1))),
        ),
        (
            "DanhSachHoSoBoSung[0].NgayHenTraMoi",
            patched(&set(
                "DanhSachHoSoBoSung",
                json!([{"NgayYeuCauBoSung": "20260318090000", "NgayHenTraMoi": "hom nay"}]),
            )),
        ),
        ("PhienBan", patched(&set("PhienBan", json!("3")))),
    ];
    for (field, d) in &cases {
        let reply = s.sync(&token, false, d).await;
        assert_eq!(reply["error_code"], "-3", "{field}: {reply}");
        let message = reply["message"].as_str().expect("a message");
        assert!(message.contains(field), "{field}: {message}");
    }
    assert_eq!(s.sim.dossier_count(), 0);
    assert_eq!(
        s.sim.stats().count("DongBoHoSoMC", "-3"),
        cases.len() as u64
    );

    // The request's own shape.
    let d = dossier("H22-0009");
    let mut shapes: Vec<(&str, Value)> = Vec::new();
    let mut no_service = sync_body(&token, false, &d);
    no_service
        .as_object_mut()
        .expect("object")
        .remove("service");
    shapes.push(("service", no_service));
    let mut wrong_service = sync_body(&token, false, &d);
    wrong_service["service"] = json!("CapNhatTienDoHoSoMC");
    shapes.push(("service", wrong_service));
    let mut no_flag = sync_body(&token, false, &d);
    no_flag
        .as_object_mut()
        .expect("object")
        .remove("isUpdating");
    shapes.push(("isUpdating", no_flag));
    let mut two = sync_body(&token, false, &d);
    two["data"] = json!([d.clone(), dossier("H22-0010")]);
    shapes.push(("data", two));
    let mut not_array = sync_body(&token, false, &d);
    not_array["data"] = d.clone();
    shapes.push(("data", not_array));
    for (field, body) in shapes {
        let reply = s.post("/DongBoHoSoMC", &body).await.json();
        assert_eq!(reply["error_code"], "-3", "{field}: {reply}");
        assert!(
            reply["message"].as_str().is_some_and(|m| m.contains(field)),
            "{field}: {reply}"
        );
    }
    assert_eq!(s.sim.dossier_count(), 0);
    s.shutdown().await;
}

#[tokio::test]
async fn a_stale_phien_ban_is_refused() {
    let s = start().await;
    let token = s.login().await;
    let mut d = dossier("H22-0100");
    d["PhienBan"] = json!(5);
    assert_eq!(s.sync(&token, false, &d).await["error_code"], "0");
    d["PhienBan"] = json!(4);
    d["TrangThaiHoSo"] = json!(9);
    let stale = s.sync(&token, true, &d).await;
    assert_eq!(stale["error_code"], "-4", "{stale}");
    assert!(
        stale["message"]
            .as_str()
            .is_some_and(|m| m.contains("phiên bản cũ") && m.contains("H22-0100")),
        "{stale}"
    );
    assert_eq!(s.sim.dossier("H22-0100").expect("stored")["PhienBan"], 5);
    d["PhienBan"] = json!(5);
    assert_eq!(
        s.sync(&token, true, &d).await["error_code"],
        "0",
        "a resend"
    );
    d["PhienBan"] = json!(7);
    assert_eq!(s.sync(&token, true, &d).await["error_code"], "0");
    assert_eq!(s.sim.dossier("H22-0100").expect("stored")["PhienBan"], 7);
    s.shutdown().await;
}

#[tokio::test]
async fn progress_is_appended_once_per_seq() {
    let s = start().await;
    let token = s.login().await;
    let ma = "H22-0200";
    let unknown = s.push(&token, &[record(ma, 1)]).await;
    assert_eq!(unknown["error_code"], "-1", "{unknown}");
    assert!(unknown["message"].as_str().is_some_and(|m| m.contains(ma)));

    assert_eq!(s.sync(&token, false, &dossier(ma)).await["error_code"], "0");
    let first = s.push(&token, &[record(ma, 1), record(ma, 2)]).await;
    assert_eq!(
        first,
        json!({"error_code": "0", "message": "OK", "accepted": 2})
    );
    let mut changed = record(ma, 2);
    changed["NoiDungXuLy"] = json!("khác");
    let again = s.push(&token, &[changed, record(ma, 3)]).await;
    assert_eq!(again["accepted"], 1, "{again}");
    let resend = s.push(&token, &[record(ma, 3), record(ma, 3)]).await;
    assert_eq!(resend["accepted"], 0, "{resend}");
    assert_eq!(resend["error_code"], "0");
    // Out of order: stored in SoThuTu order.
    assert_eq!(
        s.push(&token, &[record(ma, 6), record(ma, 4)]).await["accepted"],
        2
    );
    let seqs: Vec<u64> = s
        .sim
        .progress(ma)
        .iter()
        .map(|r| r["SoThuTu"].as_u64().expect("a seq"))
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 6]);
    assert_eq!(
        s.sim.progress(ma)[1]["NoiDungXuLy"],
        "Tiếp nhận hồ sơ",
        "the first kept"
    );

    // A request naming an unknown dossier stores nothing, not even its known records.
    let mixed = s
        .push(&token, &[record(ma, 7), record("H22-KHAC", 1)])
        .await;
    assert_eq!(mixed["error_code"], "-1");
    assert_eq!(s.sim.progress(ma).len(), 5);

    for (field, bad) in [
        ("SoThuTu", json!({"MaHoSo": ma})),
        ("SoThuTu", json!({"MaHoSo": ma, "SoThuTu": -1})),
        ("MaHoSo", json!({"SoThuTu": 9})),
        (
            "TrangThai",
            json!({"MaHoSo": ma, "SoThuTu": 9, "TrangThai": 11}),
        ),
        (
            "ThoiDiemXuLy",
            json!({"MaHoSo": ma, "SoThuTu": 9, "ThoiDiemXuLy": "x"}),
        ),
    ] {
        let reply = s.push(&token, &[record(ma, 8), bad]).await;
        assert_eq!(reply["error_code"], "-3", "{field}: {reply}");
        assert!(
            reply["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("data[1].{field}"))),
            "{field}: {reply}"
        );
    }
    assert_eq!(s.push(&token, &[]).await["error_code"], "-3");
    assert_eq!(s.sim.progress(ma).len(), 5);
    let stats = s.sim.stats();
    assert_eq!(stats.duplicate_progress, 3);
    assert_eq!(stats.progress_accepted, 5);
    s.shutdown().await;
}

#[tokio::test]
async fn lookup_answers_the_stored_dossier_and_its_progress() {
    let s = start().await;
    let token = s.login().await;
    let ma = "H22-0300";
    let missing = s.lookup(&token, ma).await;
    assert_eq!(
        missing,
        json!({"error_code": "-1", "message": format!("Hồ sơ {ma} không tồn tại")})
    );
    let mut d = dossier(ma);
    d["PhienBan"] = json!(3);
    s.sync(&token, false, &d).await;
    s.push(&token, &[record(ma, 2), record(ma, 1)]).await;
    let found = s.lookup(&token, ma).await;
    assert_eq!(found["error_code"], "0");
    assert_eq!(found["message"], "OK");
    assert_eq!(found["data"], d);
    assert_eq!(found["data"]["PhienBan"], 3);
    assert_eq!(found["TienDo"], json!([record(ma, 1), record(ma, 2)]));

    let no_code = s
        .post(
            "/LayThongTinHoSo",
            &json!({"session": token, "service": "LayThongTinHoSo"}),
        )
        .await
        .json();
    assert_eq!(no_code["error_code"], "-3");
    assert!(
        no_code["message"]
            .as_str()
            .is_some_and(|m| m.contains("MaHoSo"))
    );
    s.shutdown().await;
}

#[tokio::test]
async fn requests_that_are_not_json_objects_are_http_errors() {
    let s = start().await;
    let body = json!({"username": USER, "password": PASSWORD}).to_string();
    let no_type = send(s.addr, "POST", "/login", None, body.as_bytes())
        .await
        .expect("a reply");
    assert_eq!(no_type.status, 415, "{}", no_type.text());
    let form = send(
        s.addr,
        "POST",
        "/login",
        Some("application/x-www-form-urlencoded"),
        body.as_bytes(),
    )
    .await
    .expect("a reply");
    assert_eq!(form.status, 415);
    let plain_json = send(
        s.addr,
        "POST",
        "/login",
        Some("application/json"),
        body.as_bytes(),
    )
    .await
    .expect("a reply");
    assert_eq!(plain_json.json()["error_code"], "0");
    for garbage in [&b"{not json"[..], b"[1, 2]", b"\"x\"", b""] {
        let reply = send(
            s.addr,
            "POST",
            "/DongBoHoSoMC",
            Some("application/json"),
            garbage,
        )
        .await
        .expect("a reply");
        assert_eq!(reply.status, 400, "{}", reply.text());
        let error: Value = serde_json::from_slice(&reply.body).expect("a JSON error");
        assert_eq!(error["error_code"], "400");
    }
    let get = s.get("/login").await;
    assert_eq!(get.status, 405);
    let unknown = s.get("/KhongCo").await;
    assert_eq!(unknown.status, 404);
    let stats = s.sim.stats();
    assert_eq!(stats.count("login", "http_415"), 2);
    assert_eq!(stats.count("DongBoHoSoMC", "http_400"), 4);
    s.shutdown().await;
}

#[tokio::test]
async fn two_hundred_concurrent_creates_are_all_stored() {
    let s = start().await;
    let token = s.login().await;
    let addr = s.addr;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let token = token.clone();
            tokio::spawn(async move {
                let body = sync_body(&token, false, &dossier(&format!("H22-C{i:04}")));
                common::post(addr, "/DongBoHoSoMC", &body).await.json()
            })
        })
        .collect();
    for task in tasks {
        let reply = task.await.expect("a task");
        assert_eq!(reply["error_code"], "0", "{reply}");
    }
    assert_eq!(s.sim.dossier_count(), 200);
    assert!(s.sim.dossier("H22-C0199").is_some());
    assert_eq!(s.sim.stats().count("DongBoHoSoMC", "0"), 200);
    s.shutdown().await;
}
