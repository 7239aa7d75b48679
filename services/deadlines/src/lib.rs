//! The deadline watcher (issue 5): a dossier does not announce that it is late; time passes
//! and nobody acts. The watcher notices, and turns the passing of a due date into an event
//! everyone else can count and act on.
//!
//! Two parts, each restartable on its own:
//!
//! - [`DeadlineReader`], a feed reader: keeps every open dossier's folded state and its next
//!   timer ([`motcua_domain::deadline::next_timer`]) in its own table, updated with its feed
//!   position in one transaction. Ended dossiers leave the table, so it holds the open ones
//!   only; the timer column has an index, so what falls due is found by a range scan.
//! - [`Watcher`], the timer loop: every tick, the dossiers whose timer is past (oldest first,
//!   a page at a time) get `due_soon` or `late` through the intake's
//!   [`motcua_intake::CommandHandler`], the one write path, with a request id derived from the
//!   dossier, the kind and the due date, so restarts, replays and two watchers at once record
//!   each at most once (the store's idempotency decides). The server's clock decides; `late`
//!   is stamped with the due instant (`became_late_at`), not the instant it was noticed.
//!
//! After downtime the first tick finds every timer that passed meanwhile and handles them in
//! pages of [`WatcherOptions::page`], at most [`WatcherOptions::concurrency`] commands at
//! once: catch-up is one pass, bounded, and never floods the store.

pub mod reader;
pub mod schema;
pub mod watcher;

pub use reader::DeadlineReader;
pub use watcher::{TickReport, Watcher, WatcherOptions, WatcherStats};
