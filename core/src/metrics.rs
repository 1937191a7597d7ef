//! Prometheus metrics: request counts and latency histograms by route and status, and the
//! database pool's gauges, served as text at `/metrics`.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::db::PoolStats;

/// Histogram bucket bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Series {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Series of one route, by method and status (few per route: searched in order).
type RouteSeries = Vec<(String, u16, Series)>;

#[derive(Clone, Default)]
pub struct Metrics {
    http: Arc<Mutex<HashMap<String, RouteSeries>>>,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let Ok(mut http) = self.http.lock() else {
            return;
        };
        // Look up by reference first: no allocation once a series exists.
        if !http.contains_key(route) {
            http.insert(route.to_string(), Vec::new());
        }
        let Some(route_series) = http.get_mut(route) else {
            return;
        };
        let index = match route_series
            .iter()
            .position(|(m, s, _)| m == method && *s == status)
        {
            Some(i) => i,
            None => {
                route_series.push((method.to_string(), status, Series::default()));
                route_series.len() - 1
            }
        };
        let series = &mut route_series[index].2;
        series.count += 1;
        series.sum += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                series.buckets[i] += 1;
            }
        }
    }

    /// The exposition text (Prometheus text format 0.0.4).
    pub fn render(&self, pool: PoolStats) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP kizuna_build_info Build information.\n# TYPE kizuna_build_info gauge\nkizuna_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        out.push_str("# HELP kizuna_http_requests_total HTTP requests served.\n# TYPE kizuna_http_requests_total counter\n");
        let http = self.http.lock().map(|h| {
            let mut rows: Vec<_> = h
                .iter()
                .flat_map(|(route, series)| {
                    series.iter().map(move |(method, status, s)| {
                        (
                            (method.clone(), route.clone(), *status),
                            s.count,
                            s.sum,
                            s.buckets,
                        )
                    })
                })
                .collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            rows
        });
        let rows = http.unwrap_or_default();
        for ((method, route, status), count, _, _) in &rows {
            let _ = writeln!(
                out,
                "kizuna_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {count}",
                escape_label(route)
            );
        }
        out.push_str("# HELP kizuna_http_request_duration_seconds Time to serve a request.\n# TYPE kizuna_http_request_duration_seconds histogram\n");
        for ((method, route, status), count, sum, buckets) in &rows {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status=\"{status}\"",
                escape_label(route)
            );
            for (bound, n) in BUCKETS.iter().zip(buckets) {
                let _ = writeln!(
                    out,
                    "kizuna_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "kizuna_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}\nkizuna_http_request_duration_seconds_sum{{{labels}}} {sum}\nkizuna_http_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP kizuna_db_pool_connections Database connections by state.\n# TYPE kizuna_db_pool_connections gauge\n\
             kizuna_db_pool_connections{{state=\"idle\"}} {}\nkizuna_db_pool_connections{{state=\"in_use\"}} {}\n\
             # HELP kizuna_db_pool_max_connections Configured pool size.\n# TYPE kizuna_db_pool_max_connections gauge\n\
             kizuna_db_pool_max_connections {}",
            pool.idle,
            pool.size.saturating_sub(pool.idle),
            pool.max
        );
        out
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Records every request under its route template (`/orgs/{id}`, never the raw path, so
/// the number of series stays bounded); unmatched paths count as `unmatched`.
pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    metrics.observe(
        method.as_str(),
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::default();
        metrics.observe("GET", "/healthz", 200, 0.003);
        metrics.observe("GET", "/healthz", 200, 0.2);
        let text = metrics.render(PoolStats {
            size: 2,
            idle: 1,
            max: 8,
        });
        assert!(text.contains(
            "kizuna_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2"
        ));
        assert!(text.contains("le=\"0.0025\"} 0"));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"0.25\"} 2"));
        assert!(text.contains("le=\"+Inf\"} 2"));
        assert!(text.contains("kizuna_db_pool_connections{state=\"in_use\"} 1"));
    }
}
