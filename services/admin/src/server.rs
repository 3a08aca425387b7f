//! Serving the API, with the standard gRPC health service beside it.

use std::future::Future;

use showcall_proto::admin::admin_server::AdminServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Server, ServerTlsConfig};

use crate::AdminService;

/// Serves `service`, `grpc.health.v1.Health` and gRPC server reflection (v1) on `listener` until `shutdown` completes, then stops
/// accepting and lets in-flight calls finish.
///
/// Health answers SERVING for `""` (the whole server) and for `showcall.admin.v1.Admin` from the first
/// request on. Binding is the caller's job, so it can bind port 0 and learn the address first.
pub async fn serve(
    listener: TcpListener,
    service: AdminService,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    serve_with(listener, service, None, |routes| routes, shutdown).await
}

/// [`serve`], over TLS when `tls` is given, with more gRPC services on the same port (the cluster's
/// node link).
pub async fn serve_with(
    listener: TcpListener,
    service: AdminService,
    tls: Option<ServerTlsConfig>,
    more: impl FnOnce(tonic::service::Routes) -> tonic::service::Routes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    // The reporter starts with "" SERVING; the Admin service is added under its proto name.
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<AdminServer<AdminService>>().await;

    let local_addr = listener.local_addr().ok();
    tracing::info!(addr = ?local_addr, tls = tls.is_some(), "admin gRPC listening");
    // Small unary RPCs: Nagle would only add latency.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(showcall_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the generated descriptor set is well-formed");
    // Only the Admin service checks credentials: health and reflection stay open.
    let auth = service.auth();
    let routes = more(
        tonic::service::Routes::new(health)
            .add_service(reflection)
            .add_service(AdminServer::with_interceptor(service, auth)),
    );
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let served = builder
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    tracing::info!(addr = ?local_addr, "admin gRPC stopped");
    served
}
