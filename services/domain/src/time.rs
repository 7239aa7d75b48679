//! Time conventions: UTC inside, Vietnam time (UTC+7, no daylight saving) at the edges and in
//! period boundaries.

use chrono::{DateTime, FixedOffset, Utc};

/// Every instant inside motcua is UTC; conversion to Vietnam time happens only at the edges.
pub type Instant = DateTime<Utc>;

/// Vietnam has used UTC+7 without daylight saving since 1975, so a fixed offset is exact.
pub const VIETNAM_OFFSET_SECONDS: i32 = 7 * 3600;

/// The Vietnam time zone as a chrono offset.
pub fn vietnam() -> FixedOffset {
    // Cannot fail: 7 hours is well inside the ±24 h range FixedOffset accepts.
    FixedOffset::east_opt(VIETNAM_OFFSET_SECONDS).expect("UTC+7 is a valid offset")
}

/// An instant as Vietnam local time.
pub fn to_vietnam(t: Instant) -> DateTime<FixedOffset> {
    t.with_timezone(&vietnam())
}

/// An instant as a protobuf timestamp, for the contracts.
pub fn to_timestamp(t: Instant) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        // Cannot truncate: chrono's sub-second nanos are below 2 * 10^9.
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(999_999_999),
    }
}

/// A protobuf timestamp as an instant; `None` when it is out of chrono's range or malformed.
pub fn from_timestamp(ts: &prost_types::Timestamp) -> Option<Instant> {
    let nanos = u32::try_from(ts.nanos).ok()?;
    DateTime::from_timestamp(ts.seconds, nanos)
}
