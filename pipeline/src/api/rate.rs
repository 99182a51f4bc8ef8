//! A per-client token bucket: `api.requests_per_second` sustained, twice that in a burst.
//! One client looping on a query must not starve the dashboard or the workers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// Buckets kept before idle ones are forgotten (bounds memory under many addresses).
const MAX_CLIENTS: usize = 10_000;

pub(super) struct Limiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl Limiter {
    /// `per_second` 0: no limit.
    pub fn new(per_second: u32) -> Limiter {
        Limiter {
            per_second: f64::from(per_second),
            burst: 2.0 * f64::from(per_second),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `client`; `false` when its bucket is empty.
    fn admit(&self, client: IpAddr, now: Instant) -> bool {
        if self.per_second == 0.0 {
            return true;
        }
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&client) {
            // Full buckets are the same as forgotten ones.
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * self.per_second < self.burst
            });
        }
        let (tokens, at) = buckets.entry(client).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub(super) async fn limit(
    State(limiter): State<Arc<Limiter>>,
    request: Request,
    next: Next,
) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    match client {
        Some(ip) if !limiter.admit(ip, Instant::now()) => {
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "over {} requests per second from {ip} (api.requests_per_second)",
                    limiter.per_second
                ),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        _ => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_client_gets_a_burst_then_the_sustained_rate() {
        let limiter = Limiter::new(5);
        let start = Instant::now();
        let me: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let admitted = (0..20).filter(|_| limiter.admit(me, start)).count();
        assert_eq!(admitted, 10, "a burst of twice the rate");
        assert!(
            limiter.admit(other, start),
            "each client has its own bucket"
        );
        assert!(!limiter.admit(me, start + Duration::from_millis(100)));
        assert!(
            limiter.admit(me, start + Duration::from_millis(200)),
            "refilled"
        );
        assert!(Limiter::new(0).admit(me, start), "0 is no limit");
    }
}
