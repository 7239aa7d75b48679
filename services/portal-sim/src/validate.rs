//! What the simulated portal accepts in a dossier and a progress record. Every rejection is a
//! message (for `error_code` `"-3"`) that names the field.

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

type Object = Map<String, Value>;

/// The dossier's date fields, `yyyyMMddHHmmss`.
pub(crate) const DOSSIER_DATES: [&str; 6] = [
    "NgayNopHoSo",
    "NgayTiepNhan",
    "NgayHenTra",
    "NgayKetThucXuLy",
    "NgayTra",
    "NgayTuChoi",
];

const SUPPLEMENT_DATES: [&str; 4] = [
    "NgayYeuCauBoSung",
    "NgayTiepNhanBoSung",
    "NgayHenTraTruoc",
    "NgayHenTraMoi",
];

const PROGRESS_DATES: [&str; 3] = ["ThoiDiemXuLy", "NgayBatDau", "NgayKetThucTheoQuyDinh"];

/// Whether `s` is exactly `yyyyMMddHHmmss` (14 digits) and a real date and time.
pub(crate) fn is_portal_time(s: &str) -> bool {
    s.len() == 14
        && s.bytes().all(|b| b.is_ascii_digit())
        && NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").is_ok()
}

/// `prefix` + `field`: how a message names a field.
fn name(prefix: &str, field: &str) -> String {
    format!("{prefix}{field}")
}

fn no_nulls(o: &Object, prefix: &str) -> Result<(), String> {
    match o.iter().find(|(_, v)| v.is_null()) {
        Some((k, _)) => Err(format!(
            "Trường {} không được là null (trường không có thì bỏ đi)",
            name(prefix, k)
        )),
        None => Ok(()),
    }
}

fn required<'a>(o: &'a Object, prefix: &str, field: &str) -> Result<&'a Value, String> {
    o.get(field)
        .ok_or_else(|| format!("Thiếu trường bắt buộc {}", name(prefix, field)))
}

fn string_value<'a>(v: &'a Value, prefix: &str, field: &str) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("Trường {} phải là chuỗi: {v}", name(prefix, field)))
}

/// A required non-empty string.
pub(crate) fn required_string<'a>(
    o: &'a Object,
    prefix: &str,
    field: &str,
) -> Result<&'a str, String> {
    let s = string_value(required(o, prefix, field)?, prefix, field)?;
    if s.trim().is_empty() {
        return Err(format!(
            "Trường bắt buộc {} không được để trống",
            name(prefix, field)
        ));
    }
    Ok(s)
}

fn optional_string(o: &Object, prefix: &str, field: &str) -> Result<(), String> {
    match o.get(field) {
        Some(v) => string_value(v, prefix, field).map(|_| ()),
        None => Ok(()),
    }
}

fn int_in(v: &Value, prefix: &str, field: &str, lo: i64, hi: i64) -> Result<i64, String> {
    match v.as_i64() {
        Some(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!(
            "Trường {} không hợp lệ: {v} (phải là số nguyên từ {lo} đến {hi})",
            name(prefix, field)
        )),
    }
}

fn required_int_in(o: &Object, prefix: &str, field: &str, lo: i64, hi: i64) -> Result<i64, String> {
    int_in(required(o, prefix, field)?, prefix, field, lo, hi)
}

fn optional_int_in(o: &Object, prefix: &str, field: &str, lo: i64, hi: i64) -> Result<(), String> {
    match o.get(field) {
        Some(v) => int_in(v, prefix, field, lo, hi).map(|_| ()),
        None => Ok(()),
    }
}

/// A non-negative integer (`PhienBan`, `SoThuTu`).
pub(crate) fn counter(v: &Value, prefix: &str, field: &str) -> Result<u64, String> {
    v.as_u64().ok_or_else(|| {
        format!(
            "Trường {} không hợp lệ: {v} (phải là số nguyên không âm)",
            name(prefix, field)
        )
    })
}

fn dates(o: &Object, prefix: &str, fields: &[&str]) -> Result<(), String> {
    for &field in fields {
        if let Some(v) = o.get(field) {
            let s = string_value(v, prefix, field)?;
            if !is_portal_time(s) {
                return Err(format!(
                    "Trường {} không đúng định dạng yyyyMMddHHmmss: {v}",
                    name(prefix, field)
                ));
            }
        }
    }
    Ok(())
}

/// The objects of an optional array field, each checked by `each` with its own prefix.
fn array_of_objects(
    o: &Object,
    field: &str,
    each: impl Fn(&Object, &str) -> Result<(), String>,
) -> Result<(), String> {
    let Some(v) = o.get(field) else {
        return Ok(());
    };
    let Some(items) = v.as_array() else {
        return Err(format!("Trường {field} phải là mảng: {v}"));
    };
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("{field}[{i}].");
        let Some(item) = item.as_object() else {
            return Err(format!("Trường {field}[{i}] phải là đối tượng: {item}"));
        };
        no_nulls(item, &prefix)?;
        each(item, &prefix)?;
    }
    Ok(())
}

/// Checks a `DongBoHoSoMC` dossier; `Ok` with its `MaHoSo`.
pub(crate) fn dossier(d: &Value) -> Result<&str, String> {
    let Some(o) = d.as_object() else {
        return Err(format!("data[0] phải là một đối tượng hồ sơ: {d}"));
    };
    no_nulls(o, "")?;
    let ma = required_string(o, "", "MaHoSo")?;
    required_string(o, "", "MaTTHC")?;
    required_int_in(o, "", "KenhThucHien", 1, 3)?;
    required_string(o, "", "ChuHoSo")?;
    required_int_in(o, "", "TrangThaiHoSo", 1, 10)?;
    for field in ["TenTTHC", "MaLinhVuc", "DonViXuLy"] {
        optional_string(o, "", field)?;
    }
    optional_int_in(o, "", "LoaiDoiTuong", 1, 4)?;
    optional_int_in(o, "", "HoSoCoThanhPhanSoHoa", 0, 1)?;
    optional_int_in(o, "", "DuocThanhToanTrucTuyen", 0, 2)?;
    dates(o, "", &DOSSIER_DATES)?;
    array_of_objects(o, "TaiLieuNop", |item, prefix| {
        optional_string(item, prefix, "TenTepDinhKem")?;
        optional_int_in(item, prefix, "DuocSoHoa", 0, 1)?;
        optional_int_in(item, prefix, "DuocTaiSuDung", 0, 1)
    })?;
    array_of_objects(o, "DanhSachHoSoBoSung", |item, prefix| {
        dates(item, prefix, &SUPPLEMENT_DATES)
    })?;
    array_of_objects(o, "DanhSachGiayToKetQua", |item, prefix| {
        optional_string(item, prefix, "TenGiayTo")?;
        optional_string(item, prefix, "DuongDanTep")
    })?;
    if let Some(v) = o.get("PhienBan") {
        counter(v, "", "PhienBan")?;
    }
    Ok(ma)
}

/// Checks the `i`th `CapNhatTienDoHoSoMC` record; `Ok` with its (`MaHoSo`, `SoThuTu`).
pub(crate) fn progress(i: usize, r: &Value) -> Result<(&str, u64), String> {
    let prefix = format!("data[{i}].");
    let Some(o) = r.as_object() else {
        return Err(format!(
            "data[{i}] phải là một đối tượng bản ghi tiến độ: {r}"
        ));
    };
    no_nulls(o, &prefix)?;
    let ma = required_string(o, &prefix, "MaHoSo")?;
    let seq = counter(required(o, &prefix, "SoThuTu")?, &prefix, "SoThuTu")?;
    for field in ["NguoiXuLy", "ChucDanh", "PhongBanXuLy", "NoiDungXuLy"] {
        optional_string(o, &prefix, field)?;
    }
    optional_int_in(o, &prefix, "TrangThai", 1, 10)?;
    dates(o, &prefix, &PROGRESS_DATES)?;
    Ok((ma, seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({
            "MaHoSo": "000.00.01.H22-260315-0042",
            "MaTTHC": "1.001234",
            "KenhThucHien": 2,
            "ChuHoSo": "Nguyễn Văn A",
            "TrangThaiHoSo": 4,
            "NgayNopHoSo": "20260315142500",
            "TaiLieuNop": [{"TenTepDinhKem": "don.pdf", "DuocSoHoa": 1, "DuocTaiSuDung": 0}],
            "DanhSachHoSoBoSung": [{"NgayYeuCauBoSung": "20260316080000"}],
            "PhienBan": 3
        })
    }

    type Patch = Box<dyn FnOnce(&mut Object)>;

    fn rejection(patch: impl FnOnce(&mut Object)) -> String {
        let mut d = good();
        patch(d.as_object_mut().expect("an object"));
        dossier(&d).expect_err("rejected").to_string()
    }

    #[test]
    fn portal_times_are_exactly_fourteen_digits_of_a_real_time() {
        assert!(is_portal_time("20260315142500"));
        assert!(!is_portal_time("2026031514250"));
        assert!(!is_portal_time("202603151425000"));
        assert!(!is_portal_time("2026-03-15T14:25"));
        assert!(!is_portal_time("20261315142500"));
        assert!(!is_portal_time("20260230120000"));
        assert!(!is_portal_time("+2026031514250"));
    }

    #[test]
    fn a_good_dossier_passes() {
        assert_eq!(dossier(&good()), Ok("000.00.01.H22-260315-0042"));
    }

    #[test]
    fn rejections_name_the_field() {
        let cases: Vec<(&str, Patch)> = vec![
            ("MaHoSo", Box::new(|o| drop(o.remove("MaHoSo")))),
            (
                "MaTTHC",
                Box::new(|o| drop(o.insert("MaTTHC".into(), json!("")))),
            ),
            (
                "KenhThucHien",
                Box::new(|o| drop(o.insert("KenhThucHien".into(), json!(4)))),
            ),
            (
                "KenhThucHien",
                Box::new(|o| drop(o.insert("KenhThucHien".into(), json!("1")))),
            ),
            (
                "ChuHoSo",
                Box::new(|o| drop(o.insert("ChuHoSo".into(), json!("  ")))),
            ),
            (
                "TrangThaiHoSo",
                Box::new(|o| drop(o.insert("TrangThaiHoSo".into(), json!(11)))),
            ),
            (
                "NgayNopHoSo",
                Box::new(|o| drop(o.insert("NgayNopHoSo".into(), json!("2026-03-15")))),
            ),
            (
                "TaiLieuNop",
                Box::new(|o| drop(o.insert("TaiLieuNop".into(), json!({})))),
            ),
            (
                "DanhSachHoSoBoSung[0].NgayYeuCauBoSung",
                Box::new(|o| {
                    drop(o.insert(
                        "DanhSachHoSoBoSung".into(),
                        json!([{"NgayYeuCauBoSung": "x"}]),
                    ))
                }),
            ),
            (
                "NgayTra",
                Box::new(|o| drop(o.insert("NgayTra".into(), Value::Null))),
            ),
            (
                "PhienBan",
                Box::new(|o| drop(o.insert("PhienBan".into(), json!(-1)))),
            ),
        ];
        for (field, patch) in cases {
            let message = rejection(patch);
            assert!(message.contains(field), "{field}: {message}");
        }
    }

    #[test]
    fn progress_records_need_their_dossier_and_seq() {
        let r =
            json!({"MaHoSo": "A", "SoThuTu": 7, "TrangThai": 2, "ThoiDiemXuLy": "20260315142500"});
        assert_eq!(progress(0, &r), Ok(("A", 7)));
        let message = progress(2, &json!({"MaHoSo": "A"})).expect_err("no seq");
        assert!(message.contains("data[2].SoThuTu"), "{message}");
        let message = progress(
            0,
            &json!({"MaHoSo": "A", "SoThuTu": 1, "NgayBatDau": "2026"}),
        )
        .expect_err("date");
        assert!(message.contains("NgayBatDau"), "{message}");
    }
}
