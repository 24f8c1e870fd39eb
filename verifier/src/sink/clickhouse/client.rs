//! A small ClickHouse client over the HTTP interface: statements in the
//! body, inserts as `JSONEachRow` (what ClickHouse 18.16 and later all read).

use std::time::Duration;

use reqwest::Url;
use serde::Serialize;

use super::rows::{EVENTS_DDL, EVENTS_TABLE, SLA_MINUTES_DDL, SLA_MINUTES_TABLE, SlaMinuteRow};

/// Why a ClickHouse request failed. Messages are stable.
#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    /// The URL does not parse.
    #[error("ClickHouse configuration: url {url:?}: {source}")]
    BadUrl {
        /// The URL as configured.
        url: String,
        /// Why it does not parse.
        source: url::ParseError,
    },
    /// A URL scheme other than `http`.
    #[error(
        "ClickHouse configuration: url {url}: only http:// is supported (put a TLS proxy in front for https)"
    )]
    Scheme {
        /// The URL.
        url: Url,
    },
    /// A database name other than letters, digits and `_`.
    #[error("ClickHouse configuration: database {database:?}: use letters, digits and _")]
    Database {
        /// The name as configured.
        database: String,
    },
    /// A query id other than `[A-Za-z0-9-]` (they are not quoted).
    #[error("ClickHouse configuration: query id {query_id:?}")]
    QueryId {
        /// The id given.
        query_id: String,
    },
    /// No HTTP client could be built.
    #[error("ClickHouse configuration: {0}")]
    Client(#[source] reqwest::Error),
    /// No answer: connection refused, reset, timed out. The message holds
    /// the whole cause chain (reqwest's own message leaves out the cause).
    #[error("ClickHouse unreachable: {}", error_chain(.0))]
    Unreachable(#[source] reqwest::Error),
    /// The task running an insert panicked or was cancelled.
    #[error("ClickHouse unreachable: insert task: {0}")]
    InsertTask(#[source] tokio::task::JoinError),
    /// ClickHouse answered with an error status.
    #[error("ClickHouse answered {status}: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// ClickHouse's message (first 512 bytes).
        message: String,
    },
    /// An insert of this sink is still running on the server (after a
    /// timeout, say); the cursor cannot be read back until it ends.
    #[error("an earlier insert ({query_id}) is still running on the server")]
    InsertRunning {
        /// The sink's query id.
        query_id: String,
    },
    /// An answer that is not what the query returns.
    #[error("ClickHouse answer not understood: {detail}")]
    Answer {
        /// Which answer and what it held.
        detail: String,
    },
    /// A row did not serialize.
    #[error("encoding rows: {0}")]
    Encode(#[source] serde_json::Error),
}

/// Where and how to reach ClickHouse.
#[derive(Debug, Clone)]
pub struct ClickHouseClient {
    http: reqwest::Client,
    url: Url,
    database: String,
    user: Option<(String, Option<String>)>,
}

/// Longest error message kept from a ClickHouse answer.
const MAX_MESSAGE: usize = 512;

impl ClickHouseClient {
    /// A client of the server at `url` (e.g. `http://127.0.0.1:8123`) using
    /// `database`; `timeout` bounds every request.
    pub fn new(
        url: &str,
        database: &str,
        timeout: Duration,
    ) -> Result<ClickHouseClient, ClickHouseError> {
        let url = Url::parse(url)
            .map_err(|source| ClickHouseError::BadUrl { url: url.to_owned(), source })?;
        if url.scheme() != "http" {
            return Err(ClickHouseError::Scheme { url });
        }
        if database.is_empty() || !database.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ClickHouseError::Database { database: database.to_owned() });
        }
        let http =
            reqwest::Client::builder().timeout(timeout).build().map_err(ClickHouseError::Client)?;
        Ok(ClickHouseClient { http, url, database: database.to_owned(), user: None })
    }

    /// Authenticates as `user` (HTTP basic authentication).
    pub fn with_user(mut self, user: &str, password: Option<&str>) -> ClickHouseClient {
        self.user = Some((user.to_owned(), password.map(str::to_owned)));
        self
    }

    /// The database in use.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// POSTs `body` with URL parameters `params` (and `database` when
    /// `in_database`); returns the answer text of a success status.
    async fn post(
        &self,
        params: &[(&str, &str)],
        body: Vec<u8>,
        in_database: bool,
    ) -> Result<String, ClickHouseError> {
        let mut url = self.url.clone();
        {
            let mut pairs = url.query_pairs_mut();
            if in_database {
                pairs.append_pair("database", &self.database);
            }
            for (name, value) in params {
                pairs.append_pair(name, value);
            }
        }
        let mut request = self.http.post(url).body(body);
        if let Some((user, password)) = &self.user {
            request = request.basic_auth(user, password.as_deref());
        }
        let response = request.send().await.map_err(ClickHouseError::Unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(ClickHouseError::Unreachable)?;
        if !status.is_success() {
            let mut message = text.trim().to_owned();
            if message.len() > MAX_MESSAGE {
                let mut end = MAX_MESSAGE;
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                message.truncate(end);
            }
            return Err(ClickHouseError::Server { status: status.as_u16(), message });
        }
        Ok(text)
    }

    /// Runs one statement in the database; returns ClickHouse's answer text.
    pub async fn execute(&self, sql: &str) -> Result<String, ClickHouseError> {
        self.post(&[], sql.as_bytes().to_vec(), true).await
    }

    /// Creates the database (unless `default`) and both tables if missing.
    pub async fn create_schema(&self) -> Result<(), ClickHouseError> {
        if self.database != "default" {
            let create = format!("CREATE DATABASE IF NOT EXISTS {}", self.database);
            self.post(&[], create.into_bytes(), false).await?;
        }
        self.execute(EVENTS_DDL).await?;
        self.execute(SLA_MINUTES_DDL).await?;
        Ok(())
    }

    /// Inserts a `JSONEachRow` body into `table` as one statement, under
    /// ClickHouse query id `query_id` when given (visible in
    /// `system.processes` while it runs).
    pub async fn insert_json_each_row(
        &self,
        table: &str,
        body: Vec<u8>,
        query_id: Option<&str>,
    ) -> Result<(), ClickHouseError> {
        let query = format!("INSERT INTO {table} FORMAT JSONEachRow");
        let mut params = vec![("query", query.as_str())];
        if let Some(id) = query_id {
            params.push(("query_id", id));
        }
        self.post(&params, body, true).await.map(drop)
    }

    /// Serializes `rows` as `JSONEachRow` and inserts them in one statement.
    pub async fn insert_rows<T: Serialize>(
        &self,
        table: &str,
        rows: &[T],
    ) -> Result<(), ClickHouseError> {
        self.insert_rows_with_id(table, rows, None).await
    }

    /// [`ClickHouseClient::insert_rows`] under a query id.
    pub async fn insert_rows_with_id<T: Serialize>(
        &self,
        table: &str,
        rows: &[T],
        query_id: Option<&str>,
    ) -> Result<(), ClickHouseError> {
        if rows.is_empty() {
            return Ok(());
        }
        let body = json_each_row(rows)?;
        self.insert_json_each_row(table, body, query_id).await
    }

    /// How many queries with id `query_id` the server is running now.
    pub async fn running(&self, query_id: &str) -> Result<u64, ClickHouseError> {
        // Query ids this crate makes are [A-Za-z0-9-]; refuse anything else
        // rather than quote it.
        if !query_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(ClickHouseError::QueryId { query_id: query_id.to_owned() });
        }
        let sql = format!("SELECT count() FROM system.processes WHERE query_id = '{query_id}'");
        match self.query_numbers(&sql).await?.as_slice() {
            [n] => Ok(*n),
            other => Err(ClickHouseError::Answer { detail: format!("running queries: {other:?}") }),
        }
    }

    /// Inserts sealed aggregate buckets into `vouch_sla_minutes`.
    pub async fn insert_aggregates(&self, rows: &[SlaMinuteRow]) -> Result<(), ClickHouseError> {
        self.insert_rows(SLA_MINUTES_TABLE, rows).await
    }

    /// Inserts aggregate buckets given as JSON objects with the columns of
    /// `vouch_sla_minutes` (see [`SlaMinuteRow`]); ClickHouse checks them.
    pub async fn insert_aggregates_json(
        &self,
        rows: &[serde_json::Value],
    ) -> Result<(), ClickHouseError> {
        self.insert_rows(SLA_MINUTES_TABLE, rows).await
    }

    /// A query's single row of tab-separated unsigned numbers.
    pub async fn query_numbers(&self, sql: &str) -> Result<Vec<u64>, ClickHouseError> {
        let text = self.execute(&format!("{sql} FORMAT TSV")).await?;
        text.trim_end()
            .split('\t')
            .map(|n| {
                n.parse()
                    .map_err(|_| ClickHouseError::Answer { detail: format!("{sql}: {text:?}") })
            })
            .collect()
    }

    /// Where the events table says the sink got to: the index after the
    /// highest `log_index` in it, `None` when it holds no rows.
    pub async fn resume_index(&self) -> Result<Option<u64>, ClickHouseError> {
        let n = self
            .query_numbers(&format!("SELECT count(), max(log_index) FROM {EVENTS_TABLE}"))
            .await?;
        match n.as_slice() {
            [0, _] => Ok(None),
            [_, max] => Ok(Some(max + 1)),
            _ => Err(ClickHouseError::Answer { detail: format!("resume index: {n:?}") }),
        }
    }
}

/// `rows` as `JSONEachRow`: one JSON object per line.
pub fn json_each_row<T: Serialize>(rows: &[T]) -> Result<Vec<u8>, ClickHouseError> {
    let mut body = Vec::with_capacity(rows.len() * 512);
    for row in rows {
        serde_json::to_writer(&mut body, row).map_err(ClickHouseError::Encode)?;
        body.push(b'\n');
    }
    Ok(body)
}

/// An error with its sources, which is where reqwest puts the useful part.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
