//! The one HTTP server every long-running `vouch` listener uses: the node's
//! API and the Streamr bridge's `/metrics`.
//!
//! `axum::serve` accepts every connection and waits for its headers forever,
//! so ~1,000 idle connections with half a request line each (slowloris) used
//! to take every file descriptor of a node: `/healthz` failed, gossip peers
//! could not connect, and the log could not write its `HEAD`. This server
//! drives axum's [`Router`] with hyper's HTTP/1 connection builder and adds,
//! per [`HttpLimits`]:
//!
//! - a total and a per-client connection cap. At either cap the connection
//!   idle the longest (no request in progress, e.g. one still waiting for
//!   its headers) is closed to admit the new one (counted as evicted): at
//!   the per-client cap one of that client's own, at the total cap anyone's.
//!   So a flood of idle connections cannot lock out a client that sends its
//!   request at once, not even one sharing the flooder's address (a NAT, a
//!   monitor on the same host); only when every connection in question is
//!   busy is the new one refused. With the file descriptors the process
//!   keeps for its log, state and gossip in danger, a new connection is
//!   refused. A refused connection gets a best-effort 503 JSON
//!   answer and is closed at once, and is counted by reason;
//! - hyper's header read timeout (which also ends keep-alive connections
//!   that send no next request), an idle timeout on connections whose
//!   socket makes no progress either way (stalled bodies, clients that stop
//!   reading an answer), and a cap on requests per connection;
//! - caps on the request target and header sizes: the API's JSON 414
//!   `uri_too_long` and 431 `headers_too_large`; past twice those, hyper
//!   itself answers a bare 431 and closes, so nothing larger is buffered;
//! - graceful shutdown: no new connections, requests in progress finish,
//!   idle connections and those still sending a first request close at
//!   once, all within [`SHUTDOWN_GRACE`].
//!
//! At start the soft `RLIMIT_NOFILE` is raised to the hard limit, and the
//! connection cap is clamped so that it plus the reserve fits the limit
//! ([`FdBudget`]). Everything is counted in [`HttpServerMetrics`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower_service::Service as _;
use vouch_net::metrics::{counter, counter_family, gauge};

use crate::api::ApiError;
use crate::api::limits::ClientKey;

/// How long a stopping server waits for requests in progress before it
/// drops the connections left.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long a count of open descriptors is reused before it is taken again
/// (adjusted meanwhile by the HTTP connections opened and closed).
const FD_SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Pause after `accept` fails for want of descriptors, so the loop does not
/// spin while the backlog waits.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Connection and request limits of one HTTP listener (`[http.limits]` of
/// the node, `[bridge.streamr.http_limits]` of the bridge). Every field has
/// a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// Open connections at most (clamped at start so that it plus the
    /// descriptor reserve fits `RLIMIT_NOFILE`). 512 serves hundreds of
    /// dashboards, scrapers and explorer back ends with keep-alive, and is
    /// half of the common 1,024-descriptor limit.
    pub max_connections: usize,
    /// Open connections from one client (an IPv4 address or an IPv6 /64).
    /// 64 is ten browsers' worth (six each) with room for a scraper; raise
    /// it behind a reverse proxy, whose connections all share its address.
    pub max_connections_per_ip: usize,
    /// A request's head (request line and headers) must arrive within this
    /// long from the first byte or, on a kept-alive connection, from the
    /// end of the previous answer; then the connection is closed. ms.
    pub header_read_timeout_ms: u64,
    /// A connection whose socket moves no byte either way for this long is
    /// closed (a request being handled is not idle). ms.
    pub idle_timeout_ms: u64,
    /// Requests on one connection; the last answer says `Connection: close`.
    pub max_requests_per_connection: u64,
    /// Longest request target (path and query), bytes; beyond: 414 JSON.
    pub max_uri_bytes: usize,
    /// Largest header block (names, values, separators), bytes; beyond: 431
    /// JSON. Past twice this plus `max_uri_bytes` hyper answers a bare 431.
    pub max_header_bytes: usize,
    /// File descriptors kept for everything else: log segments, state,
    /// sinks, standard streams. The node adds its `[p2p.limits]` on top.
    /// New HTTP connections are refused (`fd_reserve`) when open
    /// descriptors would eat into it.
    pub fd_reserve: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 512,
            max_connections_per_ip: 64,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_requests_per_connection: 1_000,
            max_uri_bytes: 4_096,
            max_header_bytes: 16_384,
            fd_reserve: 256,
        }
    }
}

/// Why an HTTP listener cannot start.
#[derive(Debug, thiserror::Error)]
pub enum HttpServerError {
    /// The address could not be bound or read back.
    #[error("HTTP listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The socket error.
        source: io::Error,
    },
    /// The descriptor limit leaves no room for HTTP connections.
    #[error(
        "RLIMIT_NOFILE is {limit}, which leaves no HTTP connection after the {reserve} \
         descriptors reserved; raise the limit (ulimit -n) or lower [http.limits] fd_reserve \
         and [p2p.limits]"
    )]
    NoDescriptors {
        /// The soft limit in force.
        limit: u64,
        /// Descriptors reserved for everything but HTTP.
        reserve: u64,
    },
    /// A limit is unusable.
    #[error("[http.limits] {0}")]
    Limits(String),
}

/// Why a new connection was refused (the `reason` label of
/// `vouch_http_connections_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every one of the capped connections had a request in progress.
    TotalCap,
    /// The client already holds its share of connections.
    PerIpCap,
    /// Open descriptors reached the reserve kept for log, state and gossip.
    FdReserve,
}

impl Refusal {
    /// Every reason, in the order of the metric's label values.
    pub const ALL: [Refusal; 3] = [Self::TotalCap, Self::PerIpCap, Self::FdReserve];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TotalCap => "total_cap",
            Self::PerIpCap => "per_ip_cap",
            Self::FdReserve => "fd_reserve",
        }
    }
}

/// Why a request was answered by the server itself without reaching the
/// router (the `reason` label of `vouch_http_requests_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BadRequest {
    UriTooLong,
    HeadersTooLarge,
    Malformed,
}

impl BadRequest {
    const ALL: [BadRequest; 3] = [Self::UriTooLong, Self::HeadersTooLarge, Self::Malformed];

    fn as_str(self) -> &'static str {
        match self {
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::Malformed => "malformed",
        }
    }
}

/// The descriptor budget of the process: the soft limit (after raising it)
/// and what is kept from HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft `RLIMIT_NOFILE` in force (`u64::MAX`: unknown or unlimited).
    pub limit: u64,
    /// Descriptors HTTP connections must leave free.
    pub reserve: u64,
}

impl FdBudget {
    /// Raises the soft `RLIMIT_NOFILE` to the hard limit (logged), and keeps
    /// `reserve` descriptors from HTTP.
    pub fn raise(reserve: u64) -> FdBudget {
        let limit = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => limit,
            Err(e) => {
                let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(u64::MAX, |l| l.0);
                tracing::warn!(%e, soft, "could not raise the open-file limit");
                soft
            }
        };
        FdBudget { limit, reserve }
    }

    /// The connection cap in force: `configured`, clamped so that it plus the
    /// reserve fits the limit.
    pub fn clamp(&self, configured: usize) -> Result<usize, HttpServerError> {
        let room = self.limit.saturating_sub(self.reserve);
        let cap = usize::try_from(room).unwrap_or(usize::MAX).min(configured);
        if cap == 0 {
            return Err(HttpServerError::NoDescriptors {
                limit: self.limit,
                reserve: self.reserve,
            });
        }
        Ok(cap)
    }
}

/// Descriptors the process holds now, where the platform tells.
fn open_descriptors() -> Option<u64> {
    let dir = if cfg!(target_os = "linux") { "/proc/self/fd" } else { "/dev/fd" };
    // The directory handle itself is one of the entries; it is closed again.
    std::fs::read_dir(dir).ok().map(|d| (d.count() as u64).saturating_sub(1))
}

/// Descriptors HTTP never takes, however the rest of the process uses its
/// reserve: room for a log segment roll, a state write, a gossip dial.
const FD_HEADROOM: u64 = 32;

/// Whether a new connection would eat into the descriptor reserve. The
/// count is taken at most every [`FD_SAMPLE_EVERY`] and adjusted by the
/// HTTP connections opened since, so a burst of accepts costs no
/// directory scans.
struct FdWatch {
    budget: FdBudget,
    // (when, descriptors then, HTTP connections then)
    sample: Mutex<Option<(Instant, u64, u64)>>,
    count: fn() -> Option<u64>,
}

impl FdWatch {
    fn new(budget: FdBudget) -> FdWatch {
        FdWatch { budget, sample: Mutex::new(None), count: open_descriptors }
    }

    /// Descriptors open now, estimated; `None` where the platform does not tell.
    fn open(&self, http_open: u64, now: Instant) -> Option<u64> {
        let mut sample = self.sample.lock().unwrap_or_else(|p| p.into_inner());
        match *sample {
            Some((at, fds, http)) if now.saturating_duration_since(at) < FD_SAMPLE_EVERY => {
                Some((fds + http_open).saturating_sub(http))
            }
            _ => {
                let fds = (self.count)()?;
                *sample = Some((now, fds, http_open));
                Some(fds)
            }
        }
    }

    /// Whether the descriptors free now (with the new connection's open)
    /// are fewer than what the rest of the process may still claim of its
    /// reserve, or than [`FD_HEADROOM`]. While the rest stays inside its
    /// reserve the clamped cap keeps this from happening; it happens when
    /// something outgrew its share (or leaks).
    fn exhausted(&self, http_open: u64, now: Instant) -> bool {
        if self.budget.limit == u64::MAX {
            return false;
        }
        let Some(open) = self.open(http_open, now) else { return false };
        let others = open.saturating_sub(http_open);
        let needed = self.budget.reserve.saturating_sub(others).max(FD_HEADROOM);
        self.budget.limit.saturating_sub(open) < needed
    }
}

/// Counters of one HTTP listener, collected into `/metrics`.
#[derive(Debug, Default)]
pub struct HttpServerMetrics {
    open: AtomicU64,
    accepted: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
    evicted: AtomicU64,
    header_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
    requests_refused: [AtomicU64; BadRequest::ALL.len()],
    accept_errors: AtomicU64,
    cap: AtomicU64,
    fd_limit: AtomicU64,
    fd_reserve: AtomicU64,
}

impl HttpServerMetrics {
    fn count_refused(&self, reason: Refusal) {
        if let Some(i) = Refusal::ALL.iter().position(|r| *r == reason) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn count_bad_request(&self, reason: BadRequest) {
        if let Some(i) = BadRequest::ALL.iter().position(|r| *r == reason) {
            self.requests_refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections refused so far for `reason`.
    pub fn refused(&self, reason: Refusal) -> u64 {
        Refusal::ALL
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.refused[i].load(Ordering::Relaxed))
    }

    /// Idle connections closed to admit new ones at the cap.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Connections closed because their request head did not arrive in time.
    pub fn header_timeouts(&self) -> u64 {
        self.header_timeouts.load(Ordering::Relaxed)
    }

    /// The connection cap in force (after clamping to the descriptor limit).
    pub fn cap(&self) -> u64 {
        self.cap.load(Ordering::Relaxed)
    }
}

impl Collector for HttpServerMetrics {
    /// The `vouch_http_*` and `vouch_process_*` families.
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let enc = &mut enc;
        counter_family(
            enc,
            "vouch_http_connections_refused_total",
            "New HTTP connections refused, by reason.",
            Refusal::ALL
                .iter()
                .zip(&self.refused)
                .map(|(r, n)| ([("reason", r.as_str())], load(n))),
        )?;
        counter_family(
            enc,
            "vouch_http_requests_refused_total",
            "Requests answered by the server itself (oversized or unparseable), by reason.",
            BadRequest::ALL
                .iter()
                .zip(&self.requests_refused)
                .map(|(r, n)| ([("reason", r.as_str())], load(n))),
        )?;
        gauge(enc, "vouch_http_connections", "HTTP connections open.", load(&self.open))?;
        gauge(
            enc,
            "vouch_http_connections_limit",
            "HTTP connection cap in force (clamped to the descriptor limit).",
            load(&self.cap),
        )?;
        counter(
            enc,
            "vouch_http_connections_accepted_total",
            "HTTP connections admitted.",
            load(&self.accepted),
        )?;
        counter(
            enc,
            "vouch_http_connections_evicted_total",
            "Idle HTTP connections closed to admit a new one at the cap.",
            load(&self.evicted),
        )?;
        counter(
            enc,
            "vouch_http_header_timeouts_total",
            "HTTP connections closed because a request head did not arrive in time.",
            load(&self.header_timeouts),
        )?;
        counter(
            enc,
            "vouch_http_idle_timeouts_total",
            "HTTP connections closed after moving no byte for the idle timeout.",
            load(&self.idle_timeouts),
        )?;
        counter(
            enc,
            "vouch_http_accept_errors_total",
            "Failed accepts (e.g. no descriptor left).",
            load(&self.accept_errors),
        )?;
        gauge(
            enc,
            "vouch_process_max_fds",
            "The soft RLIMIT_NOFILE in force.",
            load(&self.fd_limit),
        )?;
        gauge(
            enc,
            "vouch_http_fd_reserve",
            "Descriptors HTTP connections leave free for log, state and gossip.",
            load(&self.fd_reserve),
        )?;
        if let Some(open) = open_descriptors() {
            gauge(enc, "vouch_process_open_fds", "Descriptors the process holds.", open)?;
        }
        Ok(())
    }
}

/// What one admitted connection shares with the accept loop and its
/// requests.
#[derive(Debug)]
struct ConnState {
    id: u64,
    client: ClientKey,
    /// When the socket last moved a byte, ms since the server's epoch.
    last_io_ms: AtomicU64,
    /// Requests being handled (not idle while > 0).
    in_flight: AtomicU32,
    /// Requests seen on this connection.
    requests: AtomicU64,
    /// Woken when the connection is evicted.
    evict: Notify,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    conns: HashMap<u64, Arc<ConnState>>,
    per_client: HashMap<ClientKey, usize>,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Arc<ConnState>> {
        let conn = self.conns.remove(&id)?;
        if let Some(n) = self.per_client.get_mut(&conn.client) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&conn.client);
            }
        }
        Some(conn)
    }
}

/// Admission control: the connection table and the caps.
struct Admission {
    max_total: usize,
    max_per_client: usize,
    table: Mutex<Table>,
    fds: FdWatch,
    epoch: Instant,
    metrics: Arc<HttpServerMetrics>,
}

/// An admitted connection's place in the table, given back on drop.
struct Permit {
    admission: Arc<Admission>,
    conn: Arc<ConnState>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut table = self.admission.lock();
        // An evicted connection has left the table already.
        if table.remove(self.conn.id).is_some() {
            self.admission.metrics.open.store(table.conns.len() as u64, Ordering::Relaxed);
        }
    }
}

impl Admission {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Admits a connection from `client` at `now`, evicting the connection
    /// idle the longest (the client's own at the per-client cap, anyone's at
    /// the total cap) when a cap is reached.
    fn admit(self: &Arc<Self>, client: ClientKey, now: Instant) -> Result<Permit, Refusal> {
        let mut table = self.lock();
        if self.fds.exhausted(table.conns.len() as u64, now) {
            return Err(Refusal::FdReserve);
        }
        if table.per_client.get(&client).copied().unwrap_or(0) >= self.max_per_client
            && !self.evict_idlest(&mut table, |c| c.client == client)
        {
            return Err(Refusal::PerIpCap);
        }
        if table.conns.len() >= self.max_total && !self.evict_idlest(&mut table, |_| true) {
            return Err(Refusal::TotalCap);
        }
        let id = table.next_id;
        table.next_id += 1;
        let conn = Arc::new(ConnState {
            id,
            client,
            last_io_ms: AtomicU64::new(self.now_ms(now)),
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            evict: Notify::new(),
        });
        table.conns.insert(id, Arc::clone(&conn));
        *table.per_client.entry(client).or_default() += 1;
        self.metrics.open.store(table.conns.len() as u64, Ordering::Relaxed);
        self.metrics.accepted.fetch_add(1, Ordering::Relaxed);
        Ok(Permit { admission: Arc::clone(self), conn })
    }

    /// Closes the connection among `which` that moved no byte for the
    /// longest and has no request in progress; false when every one is busy.
    fn evict_idlest(&self, table: &mut Table, which: impl Fn(&ConnState) -> bool) -> bool {
        let victim = table
            .conns
            .values()
            .filter(|c| which(c) && c.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|c| c.last_io_ms.load(Ordering::Relaxed))
            .map(|c| c.id);
        let Some(victim) = victim.and_then(|id| table.remove(id)) else {
            return false;
        };
        victim.evict.notify_one();
        self.metrics.evicted.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// A TCP stream that records when it last moved a byte (the idle timeout).
struct Tracked {
    stream: TcpStream,
    conn: Arc<ConnState>,
    epoch: Instant,
}

impl Tracked {
    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.conn.last_io_ms.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.touch();
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, data);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Lowers a connection's in-flight count when its request is answered (or
/// its handler dropped).
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What every connection task shares.
struct Shared {
    router: Router,
    builder: http1::Builder,
    limits: HttpLimits,
    admission: Arc<Admission>,
    metrics: Arc<HttpServerMetrics>,
    /// The answer a refused connection gets, written without waiting.
    refusal: Vec<u8>,
}

impl Shared {
    /// The request's size checks: the API's JSON error, or `None` to route it.
    fn oversized(&self, req: &Request<Incoming>) -> Option<Response> {
        let uri = req.uri();
        let target = uri.path_and_query().map_or(0, |pq| pq.as_str().len())
            + uri.authority().map_or(0, |a| a.as_str().len());
        if target > self.limits.max_uri_bytes {
            self.metrics.count_bad_request(BadRequest::UriTooLong);
            return Some(
                ApiError::UriTooLong { max_bytes: self.limits.max_uri_bytes }.into_response(),
            );
        }
        // As on the wire: "name: value\r\n".
        let headers: usize =
            req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        if headers > self.limits.max_header_bytes {
            self.metrics.count_bad_request(BadRequest::HeadersTooLarge);
            return Some(
                ApiError::HeadersTooLarge { max_bytes: self.limits.max_header_bytes }
                    .into_response(),
            );
        }
        None
    }
}

/// A bound HTTP listener with its limits; [`HttpServer::serve`] runs it.
pub struct HttpServer {
    listener: TcpListener,
    addr: SocketAddr,
    limits: HttpLimits,
    budget: FdBudget,
    cap: usize,
    metrics: Arc<HttpServerMetrics>,
    /// How long a stop waits for connections ([`SHUTDOWN_GRACE`]).
    grace: Duration,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("addr", &self.addr)
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl HttpServer {
    /// Raises the descriptor limit, clamps the connection cap to it (keeping
    /// `limits.fd_reserve + extra_reserve` descriptors for the rest of the
    /// process), and binds `addr`. The effective cap is logged.
    pub async fn bind(
        addr: SocketAddr,
        limits: &HttpLimits,
        extra_reserve: u64,
    ) -> Result<HttpServer, HttpServerError> {
        if limits.max_connections == 0 || limits.max_connections_per_ip == 0 {
            return Err(HttpServerError::Limits(
                "max_connections and max_connections_per_ip must be at least 1".to_owned(),
            ));
        }
        if limits.header_read_timeout_ms == 0 || limits.idle_timeout_ms == 0 {
            return Err(HttpServerError::Limits(
                "header_read_timeout_ms and idle_timeout_ms must be at least 1".to_owned(),
            ));
        }
        let budget = FdBudget::raise(limits.fd_reserve.saturating_add(extra_reserve));
        let cap = budget.clamp(limits.max_connections)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| HttpServerError::Bind { addr, source })?;
        let local =
            listener.local_addr().map_err(|source| HttpServerError::Bind { addr, source })?;
        let per_ip = limits.max_connections_per_ip.min(cap);
        if cap < limits.max_connections {
            tracing::warn!(
                configured = limits.max_connections,
                cap,
                fd_limit = budget.limit,
                fd_reserve = budget.reserve,
                "HTTP connection cap lowered to fit the open-file limit"
            );
        }
        tracing::info!(
            addr = %local,
            max_connections = cap,
            max_connections_per_ip = per_ip,
            fd_limit = budget.limit,
            fd_reserve = budget.reserve,
            "HTTP listening"
        );
        let metrics = Arc::new(HttpServerMetrics::default());
        metrics.cap.store(cap as u64, Ordering::Relaxed);
        metrics.fd_limit.store(budget.limit, Ordering::Relaxed);
        metrics.fd_reserve.store(budget.reserve, Ordering::Relaxed);
        Ok(HttpServer {
            listener,
            addr: local,
            limits: limits.clone(),
            budget,
            cap,
            metrics,
            grace: SHUTDOWN_GRACE,
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listener's counters (a collector for `/metrics`).
    pub fn metrics(&self) -> Arc<HttpServerMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Serves `router` until `shutdown` resolves, then stops gracefully
    /// (within [`SHUTDOWN_GRACE`]). Handlers see the client's address as
    /// `ConnectInfo<SocketAddr>`.
    pub async fn serve(self, router: Router, shutdown: impl Future<Output = ()>) {
        let HttpServer { listener, limits, budget, cap, metrics, grace, .. } = self;
        let epoch = Instant::now();
        let admission = Arc::new(Admission {
            max_total: cap,
            max_per_client: limits.max_connections_per_ip.min(cap),
            table: Mutex::new(Table::default()),
            fds: FdWatch::new(budget),
            epoch,
            metrics: Arc::clone(&metrics),
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
            .max_header_size(
                limits.max_uri_bytes.saturating_add(limits.max_header_bytes).saturating_mul(2),
            )
            .max_buf_size(
                limits
                    .max_uri_bytes
                    .saturating_add(limits.max_header_bytes)
                    .saturating_mul(2)
                    .max(MIN_BUF),
            );
        let shared = Arc::new(Shared {
            router,
            builder,
            refusal: refusal_response(),
            limits,
            admission,
            metrics,
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        accept(&shared, stream, peer, &stop_rx, &mut tasks);
                    }
                    Err(e) => {
                        let n = shared.metrics.accept_errors.fetch_add(1, Ordering::Relaxed) + 1;
                        if n.is_power_of_two() {
                            tracing::warn!(%e, failures = n, "HTTP accept failed");
                        }
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(left = tasks.len(), "HTTP connections still open at shutdown; dropped");
            tasks.abort_all();
        }
    }
}

/// The smallest read buffer hyper accepts.
const MIN_BUF: usize = 8192;

/// `503` with the API's JSON body and `Connection: close`.
fn refusal_response() -> Vec<u8> {
    let body = ApiError::Unavailable("too many connections; retry shortly".into()).body();
    let mut out = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Admits (and spawns) or refuses one accepted connection.
fn accept(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) {
    match shared.admission.admit(ClientKey::new(peer.ip()), Instant::now()) {
        Ok(permit) => {
            let _ = stream.set_nodelay(true);
            tasks.spawn(connection(Arc::clone(shared), stream, peer, permit, stop.clone()));
        }
        Err(reason) => {
            shared.metrics.count_refused(reason);
            tracing::debug!(%peer, reason = reason.as_str(), "HTTP connection refused");
            // Best effort, never waits. What the client sent already is
            // read first: closing over unread bytes would reset the
            // connection and could lose the answer on the client's side.
            let mut sink = [0u8; 4096];
            let _ = stream.try_read(&mut sink);
            let _ = stream.try_write(&shared.refusal);
        }
    }
}

/// Serves one admitted connection until it ends, times out, is evicted or
/// the server stops.
async fn connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    permit: Permit,
    mut stop: watch::Receiver<bool>,
) {
    let conn = Arc::clone(&permit.conn);
    let epoch = shared.admission.epoch;
    let io = TokioIo::new(Tracked { stream, conn: Arc::clone(&conn), epoch });
    let service = {
        let shared = Arc::clone(&shared);
        let conn = Arc::clone(&conn);
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            conn.in_flight.fetch_add(1, Ordering::AcqRel);
            let guard = InFlight(Arc::clone(&conn));
            let n = conn.requests.fetch_add(1, Ordering::Relaxed) + 1;
            let shared = Arc::clone(&shared);
            async move {
                let _guard = guard;
                let mut response = match shared.oversized(&req) {
                    Some(refused) => refused,
                    None => {
                        req.extensions_mut().insert(ConnectInfo(peer));
                        // A Router is always ready: no poll_ready needed.
                        let mut router = shared.router.clone();
                        match router.call(req).await {
                            Ok(r) => r,
                            Err(never) => match never {},
                        }
                    }
                };
                if n >= shared.limits.max_requests_per_connection {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(response)
            }
        })
    };
    let served = shared.builder.serve_connection(io, service);
    tokio::pin!(served);
    let idle = Duration::from_millis(shared.limits.idle_timeout_ms);
    let mut draining = false;
    // While a handler runs the connection is not idle: look again later.
    let mut recheck_at = epoch;
    loop {
        let last = Duration::from_millis(conn.last_io_ms.load(Ordering::Relaxed));
        let idle_at = tokio::time::Instant::from_std((epoch + last + idle).max(recheck_at));
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    classify(&shared.metrics, &e, peer);
                }
                break;
            }
            () = conn.evict.notified() => {
                tracing::debug!(%peer, "idle HTTP connection evicted at the cap");
                break;
            }
            _ = stop.changed(), if !draining => {
                draining = true;
                // Hyper closes idle kept-alive connections and lets a request
                // in progress finish, but waits for a first request head that
                // is still arriving: such a client gets nothing at shutdown.
                if conn.requests.load(Ordering::Relaxed) == 0 {
                    break;
                }
                served.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(idle_at) => {
                let last = Duration::from_millis(conn.last_io_ms.load(Ordering::Relaxed));
                if epoch.elapsed().saturating_sub(last) < idle {
                    continue;
                }
                if conn.in_flight.load(Ordering::Acquire) > 0 {
                    recheck_at = Instant::now() + idle;
                    continue;
                }
                shared.metrics.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "idle HTTP connection closed");
                break;
            }
        }
    }
    drop(permit);
}

/// Counts why hyper ended a connection with an error.
fn classify(metrics: &HttpServerMetrics, e: &hyper::Error, peer: SocketAddr) {
    if e.is_timeout() {
        metrics.header_timeouts.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%peer, "HTTP request head not received in time");
    } else if e.is_parse_too_large() {
        metrics.count_bad_request(BadRequest::HeadersTooLarge);
    } else if e.is_parse() {
        metrics.count_bad_request(BadRequest::Malformed);
    } else {
        tracing::debug!(%peer, %e, "HTTP connection ended with an error");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn admission(max_total: usize, max_per_client: usize, budget: FdBudget) -> Arc<Admission> {
        Arc::new(Admission {
            max_total,
            max_per_client,
            table: Mutex::new(Table::default()),
            fds: FdWatch::new(budget),
            epoch: Instant::now(),
            metrics: Arc::new(HttpServerMetrics::default()),
        })
    }

    fn client(n: u8) -> ClientKey {
        ClientKey::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)))
    }

    const UNLIMITED: FdBudget = FdBudget { limit: u64::MAX, reserve: 0 };

    #[test]
    fn the_cap_is_clamped_to_the_descriptor_limit() {
        let budget = FdBudget { limit: 1024, reserve: 672 };
        assert_eq!(budget.clamp(512).unwrap(), 352);
        assert_eq!(FdBudget { limit: 100_000, reserve: 672 }.clamp(512).unwrap(), 512);
        assert!(matches!(
            FdBudget { limit: 600, reserve: 672 }.clamp(512),
            Err(HttpServerError::NoDescriptors { limit: 600, reserve: 672 })
        ));
    }

    #[test]
    fn per_client_cap_refuses_when_busy_and_frees_on_close() {
        let a = admission(10, 2, UNLIMITED);
        let now = Instant::now();
        let p1 = a.admit(client(1), now).unwrap();
        let p2 = a.admit(client(1), now).unwrap();
        p1.conn.in_flight.fetch_add(1, Ordering::AcqRel);
        p2.conn.in_flight.fetch_add(1, Ordering::AcqRel);
        assert_eq!(a.admit(client(1), now).err(), Some(Refusal::PerIpCap));
        let _p3 = a.admit(client(2), now).unwrap();
        drop(p1);
        assert!(a.admit(client(1), now).is_ok(), "a closed connection frees its slot");
        assert_eq!(a.metrics.open(), 2, "the permit above was dropped at once");
        assert_eq!(a.metrics.evicted(), 0);
    }

    #[test]
    fn at_the_per_client_cap_the_clients_own_idlest_is_evicted() {
        let a = admission(10, 2, UNLIMITED);
        let t = Instant::now();
        let other = a.admit(client(2), t).unwrap();
        let old = a.admit(client(1), t + Duration::from_millis(5)).unwrap();
        let _recent = a.admit(client(1), t + Duration::from_millis(10)).unwrap();
        // `other` is idle the longest, but it is not this client's.
        let _new = a.admit(client(1), t + Duration::from_millis(15)).unwrap();
        assert_eq!(a.metrics.evicted(), 1);
        assert!(!a.lock().conns.contains_key(&old.conn.id), "the client's idlest left");
        assert!(a.lock().conns.contains_key(&other.conn.id), "another client's stays");
        assert_eq!(a.lock().per_client[&client(1)], 2);
    }

    #[test]
    fn at_the_total_cap_the_longest_idle_is_evicted_and_busy_ones_are_kept() {
        let a = admission(2, 10, UNLIMITED);
        let t = Instant::now();
        let old = a.admit(client(1), t).unwrap();
        let busy = a.admit(client(2), t + Duration::from_millis(5)).unwrap();
        busy.conn.in_flight.fetch_add(1, Ordering::AcqRel);
        // Older by its last byte, not its age: `old` moved nothing since.
        busy.conn.last_io_ms.store(0, Ordering::Relaxed);
        let new = a.admit(client(3), t + Duration::from_millis(10)).unwrap();
        assert_eq!(a.metrics.evicted(), 1);
        assert!(!a.lock().conns.contains_key(&old.conn.id), "the idle one left the table");
        assert!(a.lock().conns.contains_key(&busy.conn.id), "the busy one stays");
        // Now `busy` is busy and `new` becomes busy too: nothing to evict.
        new.conn.in_flight.fetch_add(1, Ordering::AcqRel);
        assert_eq!(a.admit(client(4), t).err(), Some(Refusal::TotalCap));
        drop(old);
        assert_eq!(a.metrics.open(), 2, "dropping an evicted permit frees nothing twice");
    }

    #[test]
    fn the_descriptor_reserve_refuses_new_connections() {
        let now = Instant::now();
        let budget = FdBudget { limit: 1024, reserve: 300 };
        let mut watch = FdWatch::new(budget);
        // 100 descriptors besides HTTP, 600 HTTP connections: the rest may
        // still claim 200 of its reserve, and 324 are free.
        watch.count = || Some(700);
        assert!(!watch.exhausted(600, now));
        // 150 more HTTP connections since that sample: 174 free < 200.
        assert!(watch.exhausted(750, now + Duration::from_millis(1)));
        // The rest outgrew its reserve (990 besides HTTP): HTTP keeps off
        // the last FD_HEADROOM descriptors.
        let mut outgrown = FdWatch::new(budget);
        outgrown.count = || Some(990);
        assert!(!outgrown.exhausted(0, now), "34 free");
        outgrown.count = || Some(995);
        assert!(!outgrown.exhausted(0, now), "the sample is reused");
        assert!(outgrown.exhausted(0, now + FD_SAMPLE_EVERY), "29 free in a new sample");
        // The real count, where the platform tells: a 16-descriptor limit
        // never has FD_HEADROOM free.
        if open_descriptors().is_some() {
            assert!(FdWatch::new(FdBudget { limit: 16, reserve: 8 }).exhausted(0, now));
        }
        assert!(!FdWatch::new(FdBudget { limit: u64::MAX, reserve: 8 }).exhausted(0, now));
    }

    /// A server on 127.0.0.1 answering `/` with "ok", stopped by the sender;
    /// its stop waits for connections as long as a test may run, so a test
    /// sees whether they close by themselves.
    async fn start(limits: HttpLimits) -> (SocketAddr, Arc<HttpServerMetrics>, ServerHandle) {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut server = HttpServer::bind(any, &limits, 0).await.unwrap();
        server.grace = Duration::from_secs(3_600);
        let (addr, metrics) = (server.local_addr(), server.metrics());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let task = tokio::spawn(server.serve(router, async move {
            let _ = stopped.await;
        }));
        (addr, metrics, ServerHandle { stop, task })
    }

    struct ServerHandle {
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    }

    /// Blocking client work off the runtime.
    async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        tokio::task::spawn_blocking(f).await.unwrap()
    }

    /// Reads until the server closes the connection; what it sent.
    fn read_to_close(stream: &mut std::net::TcpStream) -> String {
        use std::io::Read as _;
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return String::from_utf8_lossy(&out).into_owned(),
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_last_allowed_request_closes_the_connection() {
        let limits = HttpLimits { max_requests_per_connection: 2, ..HttpLimits::default() };
        let (addr, _, _server) = start(limits).await;
        let answers = blocking(move || {
            use std::io::Write as _;
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            // Three pipelined requests: two are answered, then the server closes.
            stream.write_all(&GET.repeat(3)).unwrap();
            read_to_close(&mut stream)
        })
        .await;
        assert_eq!(answers.matches("HTTP/1.1 200").count(), 2, "{answers}");
        assert_eq!(answers.matches("connection: close").count(), 1, "{answers}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_that_moves_nothing_is_closed() {
        let limits = HttpLimits {
            header_read_timeout_ms: 600_000,
            idle_timeout_ms: 200,
            ..HttpLimits::default()
        };
        let (addr, metrics, _server) = start(limits).await;
        let answer = blocking(move || {
            use std::io::Write as _;
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream.write_all(GET).unwrap();
            // Kept alive after its answer, then silent: closed by the idle timeout.
            read_to_close(&mut stream)
        })
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_eq!(metrics.idle_timeouts.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.header_timeouts(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_closes_a_half_sent_first_request_at_once() {
        let limits = HttpLimits { header_read_timeout_ms: 600_000, ..HttpLimits::default() };
        let (addr, metrics, server) = start(limits).await;
        let mut stream = blocking(move || {
            use std::io::Write as _;
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream.write_all(b"GET / HTTP/1.1\r\nHost: ").unwrap();
            stream
        })
        .await;
        while metrics.open() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.stop.send(()).unwrap();
        // The header timeout is ten minutes and the grace an hour: only
        // closing the half-sent request at once ends the server in time.
        tokio::time::timeout(Duration::from_secs(60), server.task).await.unwrap().unwrap();
        assert_eq!(blocking(move || read_to_close(&mut stream)).await, "");
        assert!(std::net::TcpStream::connect(addr).is_err(), "no longer listening");
    }

    #[test]
    fn limits_parse_with_defaults() {
        let l: HttpLimits = toml::from_str("max_connections = 16").unwrap();
        assert_eq!(l.max_connections, 16);
        assert_eq!(l.max_connections_per_ip, HttpLimits::default().max_connections_per_ip);
        assert!(toml::from_str::<HttpLimits>("max_conections = 1").is_err());
    }
}
