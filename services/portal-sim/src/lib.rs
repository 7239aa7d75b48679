//! A simulator of the National Public Service Portal's sync services, exactly as
//! `docs/portal-contract.md` gives them: `login`, `DongBoHoSoMC`, `CapNhatTienDoHoSoMC` and
//! `LayThongTinHoSo` over HTTP/1.1, with fault injection and an admin API, for other crates'
//! tests (over real HTTP on loopback) and for demos.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use motcua_portal_sim::{SimConfig, Simulator, serve};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let base = format!("http://{}", listener.local_addr()?);
//! let sim = Simulator::new(SimConfig::new("motcua", "secret"));
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(serve(listener, sim.clone(), async move {
//!     let _ = stopped.await;
//! }));
//! // … point the adapter at `base`, then look at `sim.dossier("…")`, `sim.stats()` …
//! let _ = stop.send(());
//! server.await.expect("the server task")?;
//! # Ok(()) }
//! ```

mod faults;
mod http;
mod state;
mod validate;

pub use faults::{Faults, FaultsError, FaultsUpdate};
pub use http::serve;
pub use state::{Service, SimConfig, Simulator, Stats, messages, outcome};
