//! After `deinitialize`, a user stops taking calls: a caller hears REMOTE_OFFLINE at once instead of
//! ringing an app that is gone (the anchor's "wait the whole timeout" gap), until the user prepares again.

use std::collections::HashMap;

use showcall_sdk::{CallEvent, CallState, CallStateReason, CallType, PrepareConfig};
use showcall_tests::TestNode;
use showcall_tests::sdk_helpers::SdkUser;

#[tokio::test]
async fn a_deinitialized_user_is_offline_until_it_prepares_again() {
    let node = TestNode::start().await;
    let mut viewer = SdkUser::prepared(&node, "viewer", PrepareConfig::default()).await;
    let host = SdkUser::prepared(&node, "host", PrepareConfig::default()).await;

    host.api.deinitialize().await.expect("deinitialized");
    assert_eq!(host.api.state(), CallState::Idle);

    viewer
        .api
        .call("host", CallType::Video, HashMap::new())
        .await
        .expect("call placed");
    viewer
        .wait_state(CallState::Prepared, CallStateReason::RemoteOffline)
        .await;
    viewer.wait_event(CallEvent::RemoteOffline).await;

    // Prepared again, the host rings.
    host.api.initialize(showcall_sdk::CallConfig {
        app_id: node.app().to_owned(),
        user_id: "host".to_owned(),
        signal: std::sync::Arc::new(host.signal.clone()),
    });
    host.api
        .prepare_for_call(PrepareConfig::default())
        .await
        .expect("prepared again");
    viewer
        .api
        .call("host", CallType::Video, HashMap::new())
        .await
        .expect("call placed");
    viewer.wait_event(CallEvent::RemoteUserRecvCall).await;
}
