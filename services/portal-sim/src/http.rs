//! The simulator over HTTP/1.1: the portal's services, the admin API, and an accept loop of our
//! own so that a fault can close a connection without a reply.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::faults::FaultsUpdate;
use crate::state::{Gate, LostReply, Service, Simulator, error_code, outcome};

/// Request bodies larger than this are refused (HTTP 400).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// What a malformed reply says (HTTP 200, not JSON).
const MALFORMED_BODY: &str = "<html><head><title>502 Bad Gateway</title></head>\
<body><h1>502 Bad Gateway</h1><p>Hệ thống đang bảo trì (mô phỏng)</p></body></html>\n";

/// Handed to each request of a connection: `abort` closes the connection without a reply,
/// `stop` is the server's shutdown.
#[derive(Debug, Clone)]
struct Connection {
    abort: CancellationToken,
    stop: CancellationToken,
}

/// Serves the simulator on `listener` until `shutdown` completes: then stops accepting, lets
/// requests in flight finish (a held `timeout_rate` request is cut short, its connection
/// closed) and returns when every connection has closed.
pub async fn serve(
    listener: TcpListener,
    sim: Simulator,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router(sim);
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // A connection reset before it was accepted, or out of file descriptors:
                    // neither ends the server.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, %peer, "TCP_NODELAY");
        }
        let connection = Connection {
            abort: CancellationToken::new(),
            stop: stop.clone(),
        };
        let router = router.clone();
        tracker.spawn(serve_connection(stream, peer, router, connection));
    }
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    router: Router,
    connection: Connection,
) {
    let abort = connection.abort.clone();
    let stop = connection.stop.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(connection.clone());
        let router = router.clone();
        async move { router.oneshot(request).await }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, %peer, "connection ended");
                }
                break;
            }
            // Dropping the connection closes the socket without writing anything.
            () = abort.cancelled() => break,
            () = stop.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

fn router(sim: Simulator) -> Router {
    let portal = |service: Service| {
        move |State(sim): State<Simulator>, request: Request| portal(sim, service, request)
    };
    Router::new()
        .route("/login", post(portal(Service::Login)))
        .route("/DongBoHoSoMC", post(portal(Service::DongBoHoSoMC)))
        .route(
            "/CapNhatTienDoHoSoMC",
            post(portal(Service::CapNhatTienDoHoSoMC)),
        )
        .route("/LayThongTinHoSo", post(portal(Service::LayThongTinHoSo)))
        .route("/admin/dossiers", get(admin_dossiers))
        .route("/admin/stats", get(admin_stats))
        .route("/admin/faults", get(admin_faults).post(admin_set_faults))
        .route("/admin/reset", post(admin_reset))
        .with_state(sim)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        body.to_string(),
    )
        .into_response()
}

fn error_reply(code: &str, message: String) -> Value {
    json!({"error_code": code, "message": message})
}

fn unavailable(retry_after: Option<Duration>) -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        "503 Service Unavailable\n",
    )
        .into_response();
    if let Some(left) = retry_after {
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Closes the request's connection without a reply: the future never completes, it is
/// dropped with the connection.
async fn abort(connection: Option<Connection>) -> Response {
    match connection {
        Some(connection) => {
            connection.abort.cancel();
            std::future::pending().await
        }
        // Not served by `serve` (cannot happen: the router is private).
        None => unavailable(None),
    }
}

async fn portal(sim: Simulator, service: Service, request: Request) -> Response {
    let connection = request.extensions().get::<Connection>().cloned();
    let latency = sim.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let lost = match sim.gate() {
        Gate::Outage(left) => {
            sim.record(service, outcome::HTTP_503);
            return unavailable(Some(left));
        }
        Gate::ServerError => {
            sim.record(service, outcome::HTTP_503);
            return unavailable(None);
        }
        Gate::SystemError => {
            let reply = Simulator::system_error();
            sim.record(service, error_code(&reply));
            return json_response(StatusCode::OK, &Value::Object(reply));
        }
        Gate::Proceed(lost) => lost,
    };
    let (parts, body) = request.into_parts();
    if !is_json(&parts.headers) {
        sim.record(service, outcome::HTTP_415);
        return json_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &error_reply(
                "415",
                "Content-Type phải là application/json; charset=utf-8".into(),
            ),
        );
    }
    let parsed = match to_bytes(body, MAX_BODY).await {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes).map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    let request = match parsed {
        Ok(Value::Object(request)) => request,
        Ok(other) => {
            sim.record(service, outcome::HTTP_400);
            return json_response(
                StatusCode::BAD_REQUEST,
                &error_reply(
                    "400",
                    format!("Thân yêu cầu phải là đối tượng JSON: {other}"),
                ),
            );
        }
        Err(error) => {
            sim.record(service, outcome::HTTP_400);
            return json_response(
                StatusCode::BAD_REQUEST,
                &error_reply(
                    "400",
                    format!("Thân yêu cầu không phải JSON hợp lệ: {error}"),
                ),
            );
        }
    };
    let reply = sim.answer(service, &request);
    let code = error_code(&reply).to_owned();
    match lost {
        None => {
            tracing::debug!(service = service.name(), code, "answered");
            sim.record(service, &code);
            json_response(StatusCode::OK, &Value::Object(reply))
        }
        Some(LostReply::Drop) => {
            tracing::debug!(service = service.name(), code, "dropping the connection");
            sim.record(service, outcome::DROPPED);
            abort(connection).await
        }
        Some(LostReply::Timeout) => {
            tracing::debug!(service = service.name(), code, "holding the request");
            sim.record(service, outcome::TIMEOUT);
            let hold = sim.config().timeout_hold;
            match &connection {
                Some(c) => {
                    tokio::select! {
                        () = tokio::time::sleep(hold) => {}
                        () = c.stop.cancelled() => {}
                    }
                }
                None => tokio::time::sleep(hold).await,
            }
            abort(connection).await
        }
        Some(LostReply::Malformed) => {
            tracing::debug!(service = service.name(), code, "answering garbage");
            sim.record(service, outcome::MALFORMED);
            (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                )],
                MALFORMED_BODY,
            )
                .into_response()
        }
    }
}

async fn admin_dossiers(State(sim): State<Simulator>) -> Response {
    json_response(StatusCode::OK, &sim.snapshot())
}

async fn admin_stats(State(sim): State<Simulator>) -> Response {
    let stats = serde_json::to_value(sim.stats()).unwrap_or_else(|_| json!({}));
    json_response(StatusCode::OK, &stats)
}

fn faults_view(sim: &Simulator) -> Value {
    let mut view = match serde_json::to_value(sim.faults()) {
        Ok(Value::Object(o)) => o,
        _ => Map::new(),
    };
    view.insert(
        "outage_remaining_secs".into(),
        json!(sim.outage_remaining().map_or(0.0, |d| d.as_secs_f64())),
    );
    view.insert("sessions".into(), json!(sim.session_count()));
    Value::Object(view)
}

async fn admin_faults(State(sim): State<Simulator>) -> Response {
    json_response(StatusCode::OK, &faults_view(&sim))
}

async fn admin_set_faults(State(sim): State<Simulator>, body: axum::body::Bytes) -> Response {
    let update = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(FaultsUpdate::default())
    } else {
        serde_json::from_slice::<FaultsUpdate>(&body)
    };
    let outcome = match update {
        Ok(update) => sim.update_faults(&update).map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    match outcome {
        Ok(()) => {
            tracing::info!(faults = %faults_view(&sim), "faults changed");
            json_response(StatusCode::OK, &faults_view(&sim))
        }
        Err(error) => json_response(StatusCode::BAD_REQUEST, &json!({"error": error})),
    }
}

async fn admin_reset(State(sim): State<Simulator>) -> Response {
    sim.reset();
    tracing::info!("reset");
    json_response(StatusCode::OK, &json!({"ok": true}))
}
