//! The web SDK in a real Chromium follows its session like the Rust SDK: a page connected to a node that
//! does not serve its user's session logs in on the node that does (the nodes announce their signaling
//! URLs, `signal_public_url`), leaves the first connection without telling the app of a disconnection,
//! and is rung there. Real etcd, two real node processes, Chromium.
//!
//! Chromium and chromedriver must be installed (`./scripts/test` installs them); without them this test
//! fails, saying so. Screenshots go to `artifacts/browser/login_follows_session/`.

use std::time::Duration;

use serde_json::{Value, json};
use showcall_sdk::CallType;
use showcall_tests::browser::Browsers;
use showcall_tests::cluster::{
    Etcd, NodeOptions, NodeProcess, eventually, shares, start_converged, user_in,
};
use showcall_tests::prometheus::scrape;

const SENT_ELSEWHERE: &str = "showcall_signaling_logins_sent_elsewhere_total";
const CONNECTIONS: &str = "showcall_signaling_connections";

/// Connects the page's web SDK to `url`, logs in with `token` and prepares for calls; records every
/// event and disconnection the app would hear in `window.seen` / `window.disconnects`.
const LOG_IN: &str = r#"
const [url, token] = arguments;
return (async () => {
  const { SignalClient } = await import('/showcall.js');
  const signal = await SignalClient.connect(url);
  window.seen = [];
  window.disconnects = 0;
  signal.addListener({
    onEvent: (ev) => window.seen.push(ev),
    onDisconnected: () => { window.disconnects += 1; },
  });
  const info = await signal.login(token);
  await signal.request('prepareForCall', {});
  window.signal = signal;
  return { userId: info.userId, connectedTo: signal._ws.url };
})();
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_connected_to_another_node_logs_in_where_its_session_is_and_is_rung_there() {
    let etcd = Etcd::start().await;
    let options = NodeOptions {
        announce_signal_url: true,
        ..NodeOptions::default()
    };
    let nodes = start_converged(&etcd, &["n1", "n2"], &options).await;
    let (n1, n2): (&NodeProcess, &NodeProcess) = (&nodes[0], &nodes[1]);
    let served = shares(&[n1, n2]).await;
    let fan_id = user_in("fan", &served["n2"], options.partitions);
    let caller_id = user_in("caller", &served["n1"], options.partitions);

    // The page comes from n1 and its SDK connects to n1; the fan's session is n2's.
    let browsers = Browsers::start("login_follows_session").await;
    let base = n1
        .signal_url
        .replace("ws://", "http://")
        .trim_end_matches("/signal")
        .to_owned();
    let page = browsers.open("fan", &format!("{base}/")).await;
    let login = page
        .eval(LOG_IN, vec![json!(n1.signal_url), json!(n1.token(&fan_id))])
        .await;
    assert_eq!(login["userId"], json!(fan_id), "{login}");
    let connected_to = login["connectedTo"].as_str().unwrap_or_default();
    assert!(
        connected_to.contains(&n2.signal_url.replace("ws://", "")),
        "the SDK is connected to n2 ({}): {connected_to}",
        n2.signal_url
    );

    // n1 sent it on once; n1 holds no connection of it, n2 one; the app heard no disconnection.
    assert_eq!(scrape(n1.http_addr).await.get(SENT_ELSEWHERE), 1.0);
    eventually(
        "the connection the SDK left is closed",
        Duration::from_secs(20),
        async || {
            let held = [
                scrape(n1.http_addr).await.get(CONNECTIONS),
                scrape(n2.http_addr).await.get(CONNECTIONS),
            ];
            if held == [0.0, 1.0] {
                Ok(())
            } else {
                Err(format!("connections on n1, n2: {held:?}"))
            }
        },
    )
    .await;
    assert_eq!(
        page.eval("return window.disconnects;", vec![]).await,
        json!(0)
    );

    // A caller on n1 rings the fan where its session and connection now are.
    let caller = n1.prepared_user(&caller_id).await;
    caller
        .api
        .call(&fan_id, CallType::Video, Default::default())
        .await
        .expect("call placed");
    page.wait_until("the fan's page is rung", async || {
        let seen = page.eval("return window.seen;", vec![]).await;
        seen.as_array().is_some_and(|events| {
            events.iter().any(|ev: &Value| {
                ev["callStateChanged"]["state"] == "CALL_STATE_CALLING"
                    && ev["callStateChanged"]["eventInfo"]["fromUserId"] == json!(caller_id)
            })
        })
    })
    .await;
    page.close().await;
}
