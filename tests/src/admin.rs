//! A business server's connection to a node's admin API, as the tests' business servers open it.

use showcall_proto::admin::admin_client::AdminClient;
use showcall_proto::admin::{Event, WatchEventsRequest};
use tonic::Streaming;
use tonic::transport::Channel;

/// A client of the admin API at `grpc` (`http://host:port`).
pub async fn admin_at(grpc: &str) -> AdminClient<Channel> {
    AdminClient::connect(grpc.to_owned())
        .await
        .expect("admin API reachable")
}

/// `app`'s events after `after` (`None`: from now on).
pub async fn watch_events(
    admin: &mut AdminClient<Channel>,
    app: &str,
    after: Option<u64>,
) -> Streaming<Event> {
    admin
        .watch_events(WatchEventsRequest {
            after_cursor: after,
            app_id: app.to_owned(),
        })
        .await
        .expect("watch accepted")
        .into_inner()
}
