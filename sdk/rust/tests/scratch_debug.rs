use showcall_sdk::{MediaOptions, MediaPeer};
use std::time::Duration;
#[tokio::test]
async fn scratch() {
    let mut a = MediaPeer::new(MediaOptions::default()).unwrap();
    let mut b = MediaPeer::new(MediaOptions::default()).unwrap();
    let offer = a.create_offer(false).unwrap();
    let answer = b.accept_offer(&offer).unwrap();
    println!("OFFER\n{offer}\nANSWER\n{answer}");
    a.accept_answer(&answer).unwrap();
    let (a, b) = (a.start().unwrap(), b.start().unwrap());
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("A {:?}\nB {:?}", a.stats(), b.stats());
}
