//! The HTTP client behind the CLI's commands: finds the daemon, turns "nothing listens
//! there" into one clear sentence, and API errors into their `{"error"}` text.

pub mod sse;

use std::time::Duration;

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no logagg daemon answers at {addr} ({reason}); start one with `logagg daemon` (or pass --addr / set LOGAGG_ADDR)")]
    Unreachable { addr: String, reason: String },
    #[error("the daemon refused the request: {0}")]
    Api(String),
    #[error("unexpected answer from the daemon at {addr}: {reason}")]
    Protocol { addr: String, reason: String },
}

/// Where the daemon is and what it asks of clients.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: String,
    /// Sent as `Authorization: Bearer <token>` when set.
    pub token: Option<String>,
}

pub struct Client {
    addr: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(endpoint: &Endpoint) -> Client {
        Client::with_timeout(endpoint, Some(Duration::from_secs(60)))
    }

    /// A client for answers that last as long as the user wants (`logagg tail`).
    pub fn streaming(endpoint: &Endpoint) -> Client {
        Client::with_timeout(endpoint, None)
    }

    fn with_timeout(endpoint: &Endpoint, global: Option<Duration>) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(2)))
            .timeout_global(global)
            .build()
            .new_agent();
        Client {
            addr: endpoint.addr.clone(),
            token: endpoint.token.clone(),
            agent,
        }
    }

    /// GET `path` and hand back the body as it arrives (an event stream).
    pub fn get_stream(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<ureq::BodyReader<'static>, ClientError> {
        let url = format!("http://{}{}", self.addr, path);
        let mut req = self.agent.get(&url).header("Accept", "text/event-stream");
        if let Some(token) = &self.token {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        for (k, v) in query {
            req = req.query(*k, v);
        }
        let mut resp = req.call().map_err(|e| ClientError::Unreachable {
            addr: self.addr.clone(),
            reason: reason_of(&e),
        })?;
        if !resp.status().is_success() {
            let body = resp
                .body_mut()
                .read_to_string()
                .map_err(|e| self.protocol(e.to_string()))?;
            return Err(ClientError::Api(error_text(&body, resp.status())));
        }
        Ok(resp.into_body().into_reader())
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// GET `path` with `query` and decode the JSON answer.
    pub fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let url = format!("http://{}{}", self.addr, path);
        let mut req = self.agent.get(&url);
        if let Some(token) = &self.token {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        for (k, v) in query {
            req = req.query(*k, v);
        }
        let resp = req.call();
        self.decode(resp)
    }

    /// POST to `path` with `query` and no body, and decode the JSON answer.
    pub fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let url = format!("http://{}{}", self.addr, path);
        let mut req = self.agent.post(&url);
        if let Some(token) = &self.token {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        for (k, v) in query {
            req = req.query(*k, v);
        }
        let resp = req.send_empty();
        self.decode(resp)
    }

    fn decode<T: DeserializeOwned>(
        &self,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ClientError> {
        let mut resp = resp.map_err(|e| ClientError::Unreachable {
            addr: self.addr.clone(),
            reason: reason_of(&e),
        })?;
        let status = resp.status();
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|e| self.protocol(e.to_string()))?;
        if !status.is_success() {
            return Err(ClientError::Api(error_text(&body, status)));
        }
        serde_json::from_str(&body).map_err(|e| self.protocol(e.to_string()))
    }

    fn protocol(&self, reason: String) -> ClientError {
        ClientError::Protocol {
            addr: self.addr.clone(),
            reason,
        }
    }
}

/// The `{"error"}` sentence of an error answer, else its status.
fn error_text(body: &str, status: ureq::http::StatusCode) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| format!("HTTP {status}"))
}

fn reason_of(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::TimedOut => "timed out".into(),
            _ => io.to_string(),
        },
        ureq::Error::ConnectionFailed => "connection failed".into(),
        other => other.to_string(),
    }
}
