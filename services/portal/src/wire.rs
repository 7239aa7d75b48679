//! What leaves the system for the national portal, and how its replies are read
//! (`docs/portal-contract.md`). The one place that knows the portal's field names.
//!
//! Only the fields the portal requires are built, from the dossier's folded state and a few
//! facts the adapter's reader keeps beside it ([`Extras`]); the applicant's name (`ChuHoSo`,
//! required by the portal) is read from the store's personal-data table at send time and is
//! never logged or kept by the adapter.

use motcua_domain::lifecycle::DossierState;
use motcua_domain::time::{Instant, to_vietnam};
use motcua_proto::v1::{self as pb, DossierEvent, DossierStatus, dossier_event::Payload};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// `yyyyMMddHHmmss` in Vietnam time.
pub fn portal_time(t: Instant) -> String {
    to_vietnam(t).format("%Y%m%d%H%M%S").to_string()
}

fn ts(t: &Option<prost_types::Timestamp>) -> Option<Instant> {
    t.as_ref().and_then(motcua_domain::time::from_timestamp)
}

/// A submitted component document, as `TaiLieuNop` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub name: String,
    pub digitized: bool,
    pub reused: bool,
}

/// A result document, as `DanhSachGiayToKetQua` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultDocument {
    pub name: String,
    pub file_url: String,
}

/// A supplement episode with the due dates before and after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supplement {
    pub requested_at: Instant,
    pub received_at: Option<Instant>,
    pub due_before: Option<Instant>,
    pub due_after: Option<Instant>,
}

/// What the portal wants that the folded state does not keep.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extras {
    /// 0 not paid online, 1 through the national portal, 2 through the provincial gateway.
    pub paid_online: u8,
    pub returned_at: Option<Instant>,
    pub refused_at: Option<Instant>,
    pub documents: Vec<Document>,
    pub results: Vec<ResultDocument>,
    pub supplements: Vec<Supplement>,
}

impl Extras {
    /// Notes what `event` adds.
    pub fn apply(&mut self, event: &DossierEvent) {
        let at = ts(&event.recorded_at);
        match &event.payload {
            Some(Payload::PaymentRecorded(payment)) => match payment.method() {
                pb::PaymentMethod::NationalPortal => self.paid_online = 1,
                pb::PaymentMethod::ProvincialGateway if self.paid_online == 0 => {
                    self.paid_online = 2;
                }
                _ => {}
            },
            Some(Payload::ResultReturned(_)) => self.returned_at = self.returned_at.or(at),
            Some(Payload::Refused(_)) => self.refused_at = self.refused_at.or(at),
            Some(Payload::Digitized(digitized)) => match digitized.target() {
                pb::DigitizationTarget::Result => self.results.push(ResultDocument {
                    name: digitized.document_name.clone(),
                    file_url: digitized.file_url.clone(),
                }),
                _ => self.documents.push(Document {
                    name: digitized.document_name.clone(),
                    digitized: true,
                    reused: digitized.reused,
                }),
            },
            Some(Payload::SupplementRequested(requested)) => {
                if let Some(at) = at {
                    self.supplements.push(Supplement {
                        requested_at: at,
                        received_at: None,
                        due_before: ts(&requested.due_before),
                        due_after: None,
                    });
                }
            }
            Some(Payload::SupplementReceived(received)) => {
                if let Some(open) = self
                    .supplements
                    .iter_mut()
                    .rev()
                    .find(|s| s.received_at.is_none())
                {
                    open.received_at = at;
                    open.due_after = ts(&received.due_after);
                }
            }
            _ => {}
        }
    }
}

/// The `DongBoHoSoMC` dossier object.
pub fn dossier_payload(state: &DossierState, extras: &Extras, applicant_name: &str) -> Value {
    let mut d = Map::new();
    let mut put = |key: &str, value: Value| {
        d.insert(key.to_owned(), value);
    };
    let time = |t: Option<Instant>| t.map(|t| Value::String(portal_time(t)));
    put("MaHoSo", json!(state.dossier_id));
    put("MaTTHC", json!(state.procedure.code));
    if !state.procedure.name.is_empty() {
        put("TenTTHC", json!(state.procedure.name));
    }
    if !state.procedure.sector.is_empty() {
        put("MaLinhVuc", json!(state.procedure.sector));
    }
    put("KenhThucHien", json!(state.channel as i32));
    put("ChuHoSo", json!(applicant_name));
    if state.applicant_type as i32 > 0 {
        put("LoaiDoiTuong", json!(state.applicant_type as i32));
    }
    let optional = [
        (
            "NgayNopHoSo",
            time(state.submitted_at.or(Some(state.created_at))),
        ),
        ("NgayTiepNhan", time(state.accepted_at)),
        ("NgayHenTra", time(state.due_at)),
        ("NgayKetThucXuLy", time(state.ended_at)),
        ("NgayTra", time(extras.returned_at)),
        ("NgayTuChoi", time(extras.refused_at)),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            put(key, value);
        }
    }
    put("TrangThaiHoSo", json!(state.status as i32));
    if !state.units.competent_authority.is_empty() {
        put("DonViXuLy", json!(state.units.competent_authority));
    }
    put(
        "HoSoCoThanhPhanSoHoa",
        json!(i32::from(state.digitized_components() > 0)),
    );
    put("DuocThanhToanTrucTuyen", json!(extras.paid_online));
    if !extras.documents.is_empty() {
        put(
            "TaiLieuNop",
            Value::Array(
                extras
                    .documents
                    .iter()
                    .map(|doc| {
                        json!({
                            "TenTepDinhKem": doc.name,
                            "DuocSoHoa": i32::from(doc.digitized),
                            "DuocTaiSuDung": i32::from(doc.reused),
                        })
                    })
                    .collect(),
            ),
        );
    }
    if !extras.supplements.is_empty() {
        put(
            "DanhSachHoSoBoSung",
            Value::Array(
                extras
                    .supplements
                    .iter()
                    .map(|s| {
                        let mut o = Map::new();
                        o.insert(
                            "NgayYeuCauBoSung".into(),
                            json!(portal_time(s.requested_at)),
                        );
                        for (key, t) in [
                            ("NgayTiepNhanBoSung", s.received_at),
                            ("NgayHenTraTruoc", s.due_before),
                            ("NgayHenTraMoi", s.due_after),
                        ] {
                            if let Some(t) = t {
                                o.insert(key.into(), json!(portal_time(t)));
                            }
                        }
                        Value::Object(o)
                    })
                    .collect(),
            ),
        );
    }
    if !extras.results.is_empty() {
        put(
            "DanhSachGiayToKetQua",
            Value::Array(
                extras
                    .results
                    .iter()
                    .map(|r| json!({"TenGiayTo": r.name, "DuongDanTep": r.file_url}))
                    .collect(),
            ),
        );
    }
    put("PhienBan", json!(state.version));
    Value::Object(d)
}

/// What an event did, in the words of a processing control sheet.
fn what(payload: &Payload) -> &'static str {
    match payload {
        Payload::Online(_) => "Nộp hồ sơ trực tuyến",
        Payload::Received(_) => "Tiếp nhận hồ sơ",
        Payload::OnlineAccepted(_) => "Tiếp nhận hồ sơ trực tuyến",
        Payload::Refused(_) => "Từ chối tiếp nhận hồ sơ",
        Payload::Forwarded(_) => "Chuyển xử lý",
        Payload::SupplementRequested(_) => "Yêu cầu bổ sung giấy tờ",
        Payload::SupplementReceived(_) => "Tiếp nhận hồ sơ bổ sung",
        Payload::FeesRequested(_) => "Yêu cầu thực hiện nghĩa vụ tài chính",
        Payload::PaymentRecorded(_) => "Ghi nhận thanh toán",
        Payload::Digitized(_) => "Số hóa giấy tờ",
        Payload::Resolved(_) => "Đã xử lý xong",
        Payload::ResultReturned(_) => "Trả kết quả",
        Payload::Withdrawn(_) => "Công dân rút hồ sơ",
        Payload::Stopped(_) => "Dừng xử lý",
        Payload::DueDateExtended(_) => "Xin lỗi và hẹn lại ngày trả kết quả",
        Payload::ProcedureChanged(_) => "Thay đổi trường hợp giải quyết",
        Payload::Late(_) => "Hồ sơ quá hạn",
        Payload::DueSoon(_) => "Hồ sơ sắp đến hạn",
    }
}

/// The `CapNhatTienDoHoSoMC` record of `event`, with the dossier's state just after it.
/// Officers are named by their id, never by a person's name.
pub fn progress_record(event: &DossierEvent, after: &DossierState) -> Value {
    let mut o = Map::new();
    o.insert("MaHoSo".into(), json!(event.dossier_id));
    o.insert("SoThuTu".into(), json!(event.seq));
    if let Some(actor) = &event.actor {
        o.insert("NguoiXuLy".into(), json!(actor.officer_id));
        if !actor.kind.is_empty() {
            o.insert("ChucDanh".into(), json!(actor.kind));
        }
    }
    if let Some(at) = ts(&event.recorded_at) {
        o.insert("ThoiDiemXuLy".into(), json!(portal_time(at)));
    }
    if let Some(payload) = &event.payload {
        o.insert("NoiDungXuLy".into(), json!(what(payload)));
        if let Payload::Forwarded(forwarded) = payload {
            o.insert("PhongBanXuLy".into(), json!(forwarded.department));
            if let Some(start) = ts(&forwarded.step_started_at) {
                o.insert("NgayBatDau".into(), json!(portal_time(start)));
            }
            if let Some(due) = ts(&forwarded.step_due_at) {
                o.insert("NgayKetThucTheoQuyDinh".into(), json!(portal_time(due)));
            }
        }
    }
    // Every event leaves a status; an unknown one is left out rather than sent as 0.
    if after.status != DossierStatus::Unspecified {
        o.insert("TrangThai".into(), json!(after.status as i32));
    }
    Value::Object(o)
}

/// How the portal answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok(Value),
    /// `-1` with "đã tồn tại": a create of a dossier it has.
    AlreadyExists(String),
    /// `-1` otherwise: it does not have the dossier.
    NotFound(String),
    /// `-2`: log in again.
    SessionExpired(String),
    /// `-3` / `-4`, `401`: resending the same will not help.
    Rejected {
        code: String,
        message: String,
    },
    /// Anything else the portal said (`500`, unknown codes): worth retrying.
    Failed {
        code: String,
        message: String,
    },
}

/// Reads a reply body (HTTP 200). An unreadable body is `Err` with why.
pub fn read_reply(body: &[u8]) -> Result<Reply, String> {
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        format!(
            "the portal's reply is not JSON ({error}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )
    })?;
    let code = match value.get("error_code") {
        Some(Value::String(code)) => code.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(format!("the portal's reply has no error_code: {value}")),
    };
    let message = value
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(match code.as_str() {
        "0" => Reply::Ok(value),
        "-1" if message.contains("đã tồn tại") || message.contains("already exists") => {
            Reply::AlreadyExists(message)
        }
        "-1" => Reply::NotFound(message),
        "-2" => Reply::SessionExpired(message),
        "-3" | "-4" | "401" => Reply::Rejected { code, message },
        _ => Reply::Failed { code, message },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_classified_by_code_and_message() {
        let r = |s: &str| read_reply(s.as_bytes());
        assert!(matches!(
            r(r#"{"error_code":"0","message":"OK"}"#),
            Ok(Reply::Ok(_))
        ));
        assert!(matches!(
            r(r#"{"error_code":"-1","message":"Hồ sơ X đã tồn tại"}"#),
            Ok(Reply::AlreadyExists(_))
        ));
        assert!(matches!(
            r(r#"{"error_code":"-1","message":"Hồ sơ X không tồn tại"}"#),
            Ok(Reply::NotFound(_))
        ));
        assert!(matches!(
            r(r#"{"error_code":-2,"message":"x"}"#),
            Ok(Reply::SessionExpired(_))
        ));
        assert!(matches!(
            r(r#"{"error_code":"-3","message":"x"}"#),
            Ok(Reply::Rejected { .. })
        ));
        assert!(matches!(
            r(r#"{"error_code":"500","message":"x"}"#),
            Ok(Reply::Failed { .. })
        ));
        assert!(r("<html>").is_err());
        assert!(r(r#"{"message":"x"}"#).is_err());
    }

    #[test]
    fn portal_times_are_vietnam_time() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-03-15T07:25:00Z")
            .expect("a time")
            .with_timezone(&chrono::Utc);
        assert_eq!(portal_time(t), "20260315142500");
    }
}
