//! The admin HTTP endpoint on `admin.listen`: `GET /healthz` (200 when the
//! catalog answers, 503 otherwise or while the node drains; the body says when the disk is low on
//! space or the last verified backup is too old) and `GET /metrics` (Prometheus text).
//! Plain HTTP/1.1 on a private address: it serves numbers, never tenant
//! data, names or secrets, and accepts nothing but these two GETs.

use std::convert::Infallible;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::engine::Engine;

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request (line and headers) read.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// How long a health check waits for the catalog.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The running endpoint.
pub(crate) struct AdminEndpoint {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl AdminEndpoint {
    /// Binds `admin.listen` and serves until [`AdminEndpoint::shutdown`].
    pub(crate) async fn start(engine: Engine) -> anyhow::Result<Self> {
        let address = engine.config().admin.listen;
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("admin.listen {address}: cannot listen (another process on that port?)"))?;
        info!(listen = %address, "admin endpoint listening (GET /healthz, GET /metrics)");
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(listener, engine, stopped));
        Ok(Self { stop, task })
    }

    /// Stops accepting and ends open connections.
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn serve(listener: TcpListener, engine: Engine, mut stopped: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.len() >= MAX_CONNECTIONS {
            connections.join_next().await;
        }
        let stream = tokio::select! {
            _ = stopped.changed() => break,
            Some(_) = connections.join_next() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "admin endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let engine = engine.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| respond(engine.clone(), request));
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_REQUEST_BYTES)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            // A client that goes away or sends garbage only ends its own connection.
            let _ = connection.await;
        });
    }
    connections.shutdown().await;
}

async fn respond(engine: Engine, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => health(&engine).await,
        (&Method::GET, "/metrics") => {
            let mut response = text(StatusCode::OK, engine.metrics().await);
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            response
        }
        (_, "/healthz" | "/metrics") => text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into()),
        _ => text(StatusCode::NOT_FOUND, "not found: GET /healthz or /metrics\n".into()),
    };
    Ok(response)
}

/// 503 while the node drains (a load balancer sends new connections
/// elsewhere), and when the catalog does not answer: nothing works without it. A disk
/// low on space, or backups whose last verified snapshot is older than 26 h,
/// are reported but stay 200: logins, downloads and imports
/// already received go on, and taking every node of a shared data directory
/// out of a load balancer at once would stop those too.
async fn health(engine: &Engine) -> Response<Full<Bytes>> {
    if engine.draining() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "draining: no new connections\n".into());
    }
    if !tokio::time::timeout(HEALTH_TIMEOUT, engine.healthy()).await.unwrap_or(false) {
        return text(StatusCode::SERVICE_UNAVAILABLE, "catalog unreachable\n".into());
    }
    let mut degraded = Vec::new();
    if let Some(low) = engine.low_space() {
        degraded.push(format!("{low}; uploads are refused, logins and downloads go on"));
    }
    if let Some(backups) = engine.backups_degraded() {
        degraded.push(format!("backups: {backups}"));
    }
    if degraded.is_empty() {
        text(StatusCode::OK, "ok\n".into())
    } else {
        text(StatusCode::OK, format!("degraded: {}\n", degraded.join("; ")))
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
