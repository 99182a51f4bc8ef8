//! The query commands' way in when `rapport run` holds the embedded store (it admits one
//! process): the same questions, asked of the daemon's HTTP API on `api.addr` with its
//! token (`api.token`, `RAPPORT_API_TOKEN`, `api.token_file`, or the one the daemon
//! generated into `<data_dir>/api.token`).

use rapport_config::Config;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::exit::{EXIT_FAILURE, EXIT_NOT_FOUND};

pub struct ApiClient {
    http: reqwest::Client,
    base: url::Url,
    token: String,
}

impl ApiClient {
    /// The daemon's API, or `None` (after saying why) when no token can be found.
    pub fn for_daemon(config: &Config, why: &str) -> Result<ApiClient, u8> {
        let settings = &config.settings;
        let token = rapport_pipeline::bearer::api_token(settings)
            .or_else(|| rapport_pipeline::api::generated_token(&settings.data_dir));
        let Some(token) = token else {
            eprintln!(
                "rapport: {why}, and there is no API token to ask the daemon with: set RAPPORT_API_TOKEN"
            );
            return Err(EXIT_FAILURE);
        };
        let base = url::Url::parse(&format!("http://{}/", settings.api.addr)).map_err(|e| {
            eprintln!(
                "rapport: api.addr {:?} is not an address: {e}",
                settings.api.addr
            );
            EXIT_FAILURE
        })?;
        tracing::debug!(%base, "the store is in use: asking the daemon's API");
        Ok(ApiClient {
            http: reqwest::Client::new(),
            base,
            token,
        })
    }

    /// `segments` joined as a percent-encoded path under the API's address.
    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http URL has a path")
            .pop_if_empty()
            .extend(segments);
        url
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, u8> {
        let request = self
            .http
            .get(self.url(segments))
            .query(query)
            .bearer_auth(&self.token);
        self.send(request).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &serde_json::Value,
    ) -> Result<T, u8> {
        let request = self
            .http
            .post(self.url(segments))
            .json(body)
            .bearer_auth(&self.token);
        self.send(request).await
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, u8> {
        let response = request.send().await.map_err(|e| {
            eprintln!(
                "rapport: the store is in use by another process, and no API answers at {}: {e}",
                self.base
            );
            EXIT_FAILURE
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| {
            eprintln!("rapport: the API at {} broke off: {e}", self.base);
            EXIT_FAILURE
        })?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                eprintln!(
                    "rapport: the API at {} answered unexpectedly: {e}",
                    self.base
                );
                EXIT_FAILURE
            });
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        eprintln!("rapport: {message} (the daemon's API, {status})");
        Err(match status {
            StatusCode::NOT_FOUND => EXIT_NOT_FOUND,
            _ => EXIT_FAILURE,
        })
    }
}
