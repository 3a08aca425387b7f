//! A business server's connection to a node's admin API, as the tests' business servers open it.

use showcall_admin::AdminCredentials;
use showcall_node::config::{DEMO_API_KEY, DEMO_API_SECRET};
use showcall_proto::admin::admin_client::AdminClient;
use showcall_proto::admin::{Event, WatchEventsRequest};
use tonic::Streaming;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A business server's admin client: every request carries an admin token.
pub type Admin = AdminClient<InterceptedService<Channel, AdminCredentials>>;

/// A client of the admin API at `grpc` (`http://host:port`), signing with the demo app's API key.
pub async fn admin_at(grpc: &str) -> Admin {
    admin_with(grpc, AdminCredentials::new(DEMO_API_KEY, DEMO_API_SECRET)).await
}

/// A client of the admin API at `grpc` that signs with `credentials`.
pub async fn admin_with(grpc: &str, credentials: AdminCredentials) -> Admin {
    let channel = grpc_channel(grpc).await.expect("admin API reachable");
    AdminClient::with_interceptor(channel, credentials)
}

/// A connection to a node's gRPC at `url`; an `https://` one trusts the test CA
/// (`tests/fixtures/tls/ca.crt`, which signed the `localhost` certificate nodes serve in TLS tests).
pub async fn grpc_channel(url: &str) -> Result<Channel, tonic::transport::Error> {
    let mut endpoint = Channel::from_shared(url.to_owned()).expect("a valid URL");
    if url.starts_with("https://") {
        let ca = std::fs::read(crate::tls_fixture("ca.crt")).expect("the test CA");
        endpoint = endpoint.tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca)),
        )?;
    }
    endpoint.connect().await
}

/// `app`'s events after `after` (`None`: from now on).
pub async fn watch_events(admin: &mut Admin, app: &str, after: Option<u64>) -> Streaming<Event> {
    admin
        .watch_events(WatchEventsRequest {
            after_cursor: after,
            app_id: app.to_owned(),
        })
        .await
        .expect("watch accepted")
        .into_inner()
}

/// Reads `events` until each of `calls` has ended; returns every `call_ended` seen for them (and for
/// others that ended meanwhile), as call id → end reasons in order — more than one is a double record.
pub async fn ends_of(
    events: &mut Streaming<Event>,
    calls: &[String],
) -> std::collections::BTreeMap<String, Vec<String>> {
    use futures_util::StreamExt as _;
    use showcall_proto::admin::event::Kind;
    let mut ended: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    while !calls.iter().all(|c| ended.contains_key(c)) {
        let event = events
            .next()
            .await
            .expect("the watch goes on")
            .expect("an event");
        if let Some(Kind::CallEnded(e)) = event.kind {
            ended.entry(e.call_id).or_default().push(e.end_reason);
        }
    }
    ended
}
