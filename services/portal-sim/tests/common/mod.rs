//! A simulator on 127.0.0.1:0 and a plain HTTP/1.1 client over a tokio `TcpStream`
//! (`Connection: close`, one request per connection).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use motcua_portal_sim::{SimConfig, Simulator, serve};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const USER: &str = "motcua";
pub const PASSWORD: &str = "mat-khau-thu";

/// No request of these tests may take longer.
pub const LIMIT: Duration = Duration::from_secs(10);

pub fn config() -> SimConfig {
    let mut config = SimConfig::new(USER, PASSWORD);
    config.seed = Some(42);
    config
}

/// Waits (at most `LIMIT`) until `condition` holds.
pub async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A running simulator.
pub struct Sim {
    pub addr: SocketAddr,
    pub sim: Simulator,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

pub async fn start() -> Sim {
    start_with(config()).await
}

pub async fn start_with(config: SimConfig) -> Sim {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("the address");
    let sim = Simulator::new(config);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, sim.clone(), async move {
        let _ = stopped.await;
    }));
    Sim {
        addr,
        sim,
        stop: Some(stop),
        task,
    }
}

impl Sim {
    /// Signals shutdown and waits (at most `LIMIT`) for `serve` to return.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(LIMIT, &mut self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("the server task")
            .expect("serve");
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        post(self.addr, path, body).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        send(self.addr, "GET", path, None, b"")
            .await
            .expect("a reply")
    }

    pub async fn login(&self) -> String {
        let reply = self
            .post("/login", &json!({"username": USER, "password": PASSWORD}))
            .await
            .json();
        assert_eq!(reply["error_code"], "0", "{reply}");
        reply["session"].as_str().expect("a session").to_owned()
    }

    pub async fn sync(&self, session: &str, updating: bool, dossier: &Value) -> Value {
        self.post("/DongBoHoSoMC", &sync_body(session, updating, dossier))
            .await
            .json()
    }

    pub async fn push(&self, session: &str, records: &[Value]) -> Value {
        self.post("/CapNhatTienDoHoSoMC", &push_body(session, records))
            .await
            .json()
    }

    pub async fn lookup(&self, session: &str, ma: &str) -> Value {
        self.post(
            "/LayThongTinHoSo",
            &json!({"session": session, "service": "LayThongTinHoSo", "MaHoSo": ma}),
        )
        .await
        .json()
    }

    pub async fn faults(&self, update: Value) -> Value {
        let reply = self.post("/admin/faults", &update).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()
    }
}

pub fn sync_body(session: &str, updating: bool, dossier: &Value) -> Value {
    json!({"session": session, "service": "DongBoHoSoMC", "isUpdating": updating, "data": [dossier]})
}

pub fn push_body(session: &str, records: &[Value]) -> Value {
    json!({"session": session, "service": "CapNhatTienDoHoSoMC", "data": records})
}

/// A dossier with every kind of field.
pub fn dossier(ma: &str) -> Value {
    json!({
        "MaHoSo": ma,
        "MaTTHC": "1.004227",
        "TenTTHC": "Cấp giấy phép xây dựng",
        "MaLinhVuc": "XD",
        "KenhThucHien": 2,
        "ChuHoSo": "Nguyễn Văn A",
        "LoaiDoiTuong": 1,
        "NgayNopHoSo": "20260315142500",
        "NgayTiepNhan": "20260315150000",
        "NgayHenTra": "20260329170000",
        "TrangThaiHoSo": 2,
        "DonViXuLy": "Sở Xây dựng",
        "HoSoCoThanhPhanSoHoa": 1,
        "DuocThanhToanTrucTuyen": 0,
        "TaiLieuNop": [{"TenTepDinhKem": "don-de-nghi.pdf", "DuocSoHoa": 1, "DuocTaiSuDung": 0}],
        "DanhSachHoSoBoSung": [{"NgayYeuCauBoSung": "20260318090000", "NgayHenTraTruoc": "20260329170000"}],
        "DanhSachGiayToKetQua": [{"TenGiayTo": "Giấy phép", "DuongDanTep": "https://example.invalid/gp.pdf"}],
        "PhienBan": 1
    })
}

pub fn record(ma: &str, seq: u64) -> Value {
    json!({
        "MaHoSo": ma,
        "SoThuTu": seq,
        "NguoiXuLy": "officer-7",
        "ChucDanh": "reception",
        "ThoiDiemXuLy": "20260315150000",
        "NoiDungXuLy": "Tiếp nhận hồ sơ",
        "TrangThai": 2
    })
}

/// An HTTP reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        assert_eq!(self.status, 200, "{}", self.text());
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

pub async fn post(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    send(
        addr,
        "POST",
        path,
        Some("application/json; charset=utf-8"),
        body.to_string().as_bytes(),
    )
    .await
    .expect("a reply")
}

fn head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    len: usize,
) -> String {
    let content_type = content_type
        .map(|ct| format!("Content-Type: {ct}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{content_type}Content-Length: {len}\r\n\r\n"
    )
}

/// Connects, writes the request, and returns the connection.
pub async fn open(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(head(addr, method, path, content_type, body.len()).as_bytes())
        .await
        .expect("write the head");
    stream.write_all(body).await.expect("write the body");
    stream
}

/// Everything the server sends until it closes (or resets) the connection.
pub async fn read_all(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    tokio::time::timeout(LIMIT, stream.read_to_end(&mut bytes))
        .await
        .expect("the server closes the connection")?;
    Ok(bytes)
}

/// One request; `Err` when the connection ends without a complete reply head.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut stream = open(addr, method, path, content_type, body).await;
    let bytes = read_all(&mut stream).await?;
    parse(&bytes).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("no reply ({} bytes)", bytes.len()),
        )
    })
}

fn parse(bytes: &[u8]) -> Option<Reply> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = bytes[end + 4..].to_vec();
    if let Some(len) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        if body.len() < len {
            return None;
        }
        body.truncate(len);
    }
    Some(Reply {
        status,
        headers,
        body,
    })
}
