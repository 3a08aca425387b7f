//! A Chromium viewer whose UDP cannot reach the node still watches the live room: Chromium falls back to
//! the node's passive ICE-TCP candidate by itself and decodes the host's video over a TCP connection to
//! the node's media port. The browser half of `media_viewer_without_udp_connects_over_tcp` (the Rust
//! SDK's fallback); nothing in the web SDK or the router is special for it.
//!
//! How UDP is made unreachable, without netem or firewall rules, as in the Rust test: the node's answer
//! reaches Chromium with its UDP host candidate pointing at a **black hole** — a UDP socket the test holds
//! and never answers from, so Chromium's UDP checks go out and nothing comes back, what a firewall that
//! drops UDP looks like to ICE. The TCP candidate is the node's real one. The rewrite is the one
//! artificial step: before the viewer clicks *Watch*, the test wraps the page's
//! `RTCPeerConnection.prototype.setRemoteDescription` so every remote description's UDP host candidates
//! name the black hole (the demo page and the web SDK run unchanged, and whatever they do, Chromium only
//! ever learns the black hole as the node's UDP address).
//!
//! What is checked is what a person and an operator see: the page decodes video (`getStats()` inbound-rtp
//! `framesDecoded`), the connection Chromium selected is TCP at both ends (the `candidate-pair` its
//! transport selected: local and remote candidate `protocol == "tcp"`, the remote one the node's ICE-TCP
//! port), Chromium did try UDP (its checks reached the black hole), and the node's `/metrics` shows an
//! open ICE-TCP connection carrying frames both ways.
//!
//! Chromium needs nothing special for this: with the harness's usual flags
//! (`--allow-loopback-in-peer-connection` among them) it gathers active TCP host candidates (`tcptype
//! active`, port 9) next to its UDP ones, pairs them with the node's passive candidate, checks UDP and
//! TCP pairs together and nominates the TCP pair when no UDP check is answered.
//!
//! The host is a Rust SDK client publishing the SDK's sample VP8 clip (its own UDP works, so it keeps no
//! TCP connection). Chromium and chromedriver must be installed (`./scripts/test` installs them); without
//! them this test fails, saying so. Screenshots go to `artifacts/browser/ice_tcp/`.

use serde_json::json;
use showcall_sdk::ChannelRole;
use showcall_tests::TestNode;
use showcall_tests::browser::{BROWSER_DEADLINE, Browsers};
use showcall_tests::cluster::eventually;
use showcall_tests::prometheus::scrape;
use showcall_tests::sdk_helpers::SdkUser;
use tokio::net::UdpSocket;

const HOST: &str = "host";
const LIVE: &str = "host_live";
/// Video frames the page must decode: a second of the host's 30 fps, past its first keyframe.
const FRAMES: u64 = 30;
const TCP_CONNECTIONS: &str = "showcall_media_tcp_connections";
const TCP_FRAMES: &str = "showcall_media_tcp_frames_total";

/// Wraps `setRemoteDescription` so every UDP host candidate of a remote description names
/// `arguments[0]:arguments[1]` (the black hole); TCP candidates stay. Keeps what the node sent in
/// `window.iceTcpTest.remote` for the test to read.
const BLACK_HOLE_UDP: &str = r#"
const [ip, port] = arguments;
const seen = (window.iceTcpTest = { remote: [] });
const original = RTCPeerConnection.prototype.setRemoteDescription;
RTCPeerConnection.prototype.setRemoteDescription = function (description, ...rest) {
  if (description && description.sdp) {
    seen.remote.push(description.sdp);
    const sdp = description.sdp
      .split('\r\n')
      .map((line) => {
        const f = line.split(' ');
        const udpHost = line.startsWith('a=candidate:') && f.length > 7
          && f[2].toLowerCase() === 'udp' && f[6] === 'typ' && f[7] === 'host';
        if (!udpHost) return line;
        f[4] = ip;
        f[5] = String(port);
        return f.join(' ');
      })
      .join('\r\n');
    description = { type: description.type, sdp };
  }
  return original.call(this, description, ...rest);
};
return true;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chromium_viewer_whose_udp_cannot_reach_the_node_watches_over_ice_tcp() {
    let node = TestNode::start().await;
    let host = SdkUser::login(&node, HOST).await;
    let _host_media = host.join_media(LIVE, ChannelRole::Broadcaster).await;

    // Where the viewer's UDP goes: a socket that never answers.
    let black_hole = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let nowhere = black_hole.local_addr().expect("local addr");

    let browsers = Browsers::start("browser/ice_tcp").await;
    let base = format!("http://{}", node.handle.signal_addr);
    let viewer = browsers
        .open("viewer", &format!("{base}/live.html?uid=fan-1&host={HOST}"))
        .await;
    let wrapped = viewer
        .eval(
            BLACK_HOLE_UDP,
            vec![json!(nowhere.ip().to_string()), json!(nowhere.port())],
        )
        .await;
    assert_eq!(wrapped, json!(true));

    viewer.click("watch").await;
    viewer.wait_state("live-state", "live").await;
    let answer = viewer
        .eval("return window.iceTcpTest.remote[0] || '';", vec![])
        .await;
    let answer = answer.as_str().unwrap_or_default();
    let node_tcp = passive_tcp_candidate(answer)
        .unwrap_or_else(|| panic!("the node offers a passive TCP candidate: {answer}"));

    // The person sees video: frames decoded, past the first keyframe.
    viewer.wait_frames_above("live", FRAMES).await;
    viewer.screenshot("watching-over-tcp").await;

    // Chromium's selected connection is ICE-TCP, to the node's TCP port.
    let pair = viewer.selected_pair("live").await;
    for end in ["local", "remote"] {
        assert_eq!(
            pair[end]["protocol"],
            json!("tcp"),
            "the {end} candidate of the selected pair is TCP: {pair}"
        );
    }
    assert_eq!(
        (&pair["remote"]["address"], &pair["remote"]["port"]),
        (&json!(node_tcp.0), &json!(node_tcp.1)),
        "the remote candidate is the node's ICE-TCP candidate: {pair}"
    );
    // The pair the transport selected and media flows on (its `state` may read "in-progress" while a
    // consent check on it runs: not what the person sees).
    assert_eq!(pair["nominated"], json!(true), "{pair}");
    assert!(pair["bytesReceived"].as_u64() > Some(0), "{pair}");

    // It did try UDP first: its checks reached the black hole (and nothing answered them).
    let mut buf = [0u8; 2048];
    let (n, _) = black_hole
        .try_recv_from(&mut buf)
        .expect("Chromium's UDP checks were sent");
    assert!(
        n >= 20 && buf[..2] == [0x00, 0x01],
        "a STUN binding request reached the black hole: {:02x?}",
        &buf[..n.min(20)]
    );

    // The operator sees it: ICE-TCP open on the node, carrying datagrams both ways. The host keeps no TCP
    // connection (its UDP works); Chromium connects once per local interface (here loopback and the
    // machine's address, both checked and answered; one nominated), and the unnominated one stays open for
    // a while (about 30 s in our runs) — so "at least one", not "exactly one".
    let page = eventually("an ICE-TCP connection open", BROWSER_DEADLINE, async || {
        let page = scrape(node.handle.http_addr).await;
        match page.get(TCP_CONNECTIONS) {
            open if open >= 1.0 => Ok(page),
            open => Err(format!("{open} open")),
        }
    })
    .await;
    for direction in ["in", "out"] {
        let frames = page.get(&format!("{TCP_FRAMES}{{direction=\"{direction}\"}}"));
        assert!(frames > 0.0, "datagrams {direction} over ICE-TCP: {frames}");
    }

    viewer.close().await;
    drop(browsers);
    node.handle.shutdown().await;
}

/// The address and port of the first passive TCP candidate
/// (`a=candidate:… tcp … <ip> <port> typ host tcptype passive`) of an SDP.
fn passive_tcp_candidate(sdp: &str) -> Option<(String, u16)> {
    sdp.lines().find_map(|line| {
        let fields: Vec<&str> = line.strip_prefix("a=candidate:")?.split(' ').collect();
        let passive_tcp = fields.get(2)?.eq_ignore_ascii_case("tcp")
            && fields.get(6..10)? == ["typ", "host", "tcptype", "passive"];
        passive_tcp.then(|| Some((fields[4].to_owned(), fields[5].parse().ok()?)))?
    })
}
