//! An in-process OpenTelemetry collector for tests: a real tonic server implementing OTLP/gRPC's
//! `TraceService` (opentelemetry-proto) on 127.0.0.1:0, keeping every span it is sent. Nodes export to
//! it as to any collector (`SHOWCALL_OTLP_ENDPOINT`); a test waits on what arrives, never on a clock.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// One received span, flattened: ids as hex, attribute and resource values as text.
#[derive(Clone, PartialEq, Eq)]
pub struct CollectedSpan {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    /// The exporting process's resource (`service.name`, `node.id`, ...).
    pub resource: BTreeMap<String, String>,
}

impl CollectedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

impl fmt::Debug for CollectedSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] trace {} span {} parent {:?} {:?}",
            self.name,
            self.resource.get("node.id").map_or("?", String::as_str),
            self.trace_id,
            self.span_id,
            self.parent_span_id,
            self.attributes
        )
    }
}

/// The running collector; stops when dropped.
pub struct OtlpCollector {
    /// What to give an exporter: `http://127.0.0.1:<port>`.
    pub endpoint: String,
    spans: watch::Receiver<Vec<CollectedSpan>>,
    server: tokio::task::JoinHandle<()>,
}

struct Receiver {
    spans: watch::Sender<Vec<CollectedSpan>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::BoolValue(b)) => b.to_string(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans
                .resource
                .map(|r| text(&r.attributes))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    received.push(CollectedSpan {
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name,
                        attributes: text(&span.attributes),
                        resource: resource.clone(),
                    });
                }
            }
        }
        self.spans.send_modify(|spans| spans.extend(received));
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

impl OtlpCollector {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the collector");
        let endpoint = format!("http://{}", listener.local_addr().expect("bound address"));
        let (tx, spans) = watch::channel(Vec::new());
        let service = TraceServiceServer::new(Receiver { spans: tx });
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpIncoming::from(listener))
                .await
                .expect("the collector serves");
        });
        Self {
            endpoint,
            spans,
            server,
        }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<CollectedSpan> {
        self.spans.borrow().clone()
    }

    /// Waits until `check` accepts the spans received so far (re-checked on every export), failing with
    /// its last complaint after `limit` (a guard against a hang, not a timing assertion).
    pub async fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&[CollectedSpan]) -> Result<T, String>,
    ) -> T {
        let mut spans = self.spans.clone();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let complaint = match check(&spans.borrow_and_update()) {
                Ok(found) => return found,
                Err(complaint) => complaint,
            };
            match tokio::time::timeout_at(deadline, spans.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => panic!("{what}: the collector stopped; last seen: {complaint}"),
                Err(_) => panic!("{what}: not received within {limit:?}; last seen: {complaint}"),
            }
        }
    }
}

impl Drop for OtlpCollector {
    fn drop(&mut self) {
        self.server.abort();
    }
}
