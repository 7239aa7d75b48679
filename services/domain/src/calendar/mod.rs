//! Working time: the office schedule, the holiday table, and arithmetic on working time.
//!
//! - [`WorkingTimeProfile`]: office hours on an ordinary working day (configurable, docs/domain.md §3).
//! - [`HolidayTable`]: days off and worked weekend days, year by year, as data.
//! - [`WorkingCalendar`]: the two together, with the operations due dates and outcomes need.
//!
//! Every instant is UTC; Vietnam local time (UTC+7, no daylight saving) is used only to place an
//! instant on the office schedule.

mod holidays;
mod profile;
mod working;

pub use holidays::{EntryList, HolidayEntry, HolidayError, HolidayTable, YearInfo};
pub use profile::{ProfileError, WorkingTimeProfile};
pub use working::{CalendarVersions, WorkingCalendar};
