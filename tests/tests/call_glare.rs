//! Glare: two users call each other at the same moment. The call placed by the user with the smaller user
//! id wins, whichever command reaches the server first: the other user's outgoing call ends for it with
//! glareResolved (103) — or, when the winning call already rang it, its own call is refused as
//! ALREADY_IN_CALL — and it rings for the winning call, which is the only one left and connects and ends
//! like any call. When the losing call rang the winner first, it ends for the winner with glareResolved
//! before the winner's own call starts.
//!
//! Each round sends both Call commands before reading anything, alternating which goes first, on a
//! multi-threaded runtime so the server's actors really race; every round asserts the outcome.

use std::collections::HashMap;

use showcall_sdk::{CallState, CallStateReason as R, CallType, ErrorCode, SdkError};
use showcall_tests::TestNode;
use showcall_tests::grace_helpers::{Party, connected_then_hung_up, hang_up};

const ROUNDS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smaller_id_wins_when_a_and_b_call_each_other() {
    let node = TestNode::start().await;
    let mut a = Party::prepared(&node, "a").await;
    let mut b = Party::prepared(&node, "b").await;
    for round in 0..ROUNDS {
        // Even rounds: the winner's Call is sent first; odd rounds: the loser's.
        glare_round(&mut a, &mut b, round % 2 == 0, round).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smaller_id_wins_when_y_and_x_call_each_other() {
    let node = TestNode::start().await;
    // Named so that the first user created (and, in even rounds, the first to send) is the loser.
    let mut y = Party::prepared(&node, "y").await;
    let mut x = Party::prepared(&node, "x").await;
    for round in 0..ROUNDS {
        glare_round(&mut x, &mut y, round % 2 == 1, round).await;
    }
}

/// One glare: `winner` (the smaller id) and `loser` call each other at once; `winner_first` says whose
/// Call command is sent first. Then the surviving call is accepted, connected and hung up.
async fn glare_round(winner: &mut Party, loser: &mut Party, winner_first: bool, round: usize) {
    assert!(winner.user < loser.user, "the test names the winner first");
    winner.log.clear();
    loser.log.clear();
    let what = format!(
        "round {round} ({} sent first)",
        if winner_first {
            &winner.user
        } else {
            &loser.user
        }
    );

    // Both commands leave before either response (or any event) is read.
    let w_call = winner
        .api
        .call(&loser.user, CallType::Video, HashMap::new());
    let l_call = loser
        .api
        .call(&winner.user, CallType::Video, HashMap::new());
    let (w_result, l_result) = if winner_first {
        tokio::join!(w_call, l_call)
    } else {
        let (l, w) = tokio::join!(l_call, w_call);
        (w, l)
    };

    let won =
        w_result.unwrap_or_else(|e| panic!("{what}: the smaller id's call must be placed: {e}"));
    let lost = match l_result {
        Ok(created) => Some(created.call_id),
        // The winning call rang the loser before its own Call arrived: it was already in a call.
        Err(SdkError::Refused {
            code: ErrorCode::AlreadyInCall,
            ..
        }) => None,
        Err(e) => panic!("{what}: the loser's call failed otherwise: {e}"),
    };
    let won_id = won.call_id.clone();

    // The loser rings for the winning call...
    let ring = loser.wait_state(&won_id, CallState::Calling).await;
    assert_eq!(ring.reason, R::RemoteVideoCall as i32, "{what}: {ring:?}");
    let info = ring.event_info.expect("a ring carries event info");
    assert_eq!(info.from_user_id, winner.user, "{what}");
    assert_eq!(info.remote_user_id, loser.user, "{what}");
    // ...after its own call ended for it with glareResolved, exactly once.
    if let Some(lost_id) = &lost {
        let seen = loser.states_of(lost_id);
        let ended = [(CallState::Prepared, R::GlareResolved)];
        let called_then_ended = [
            (CallState::Calling, R::LocalVideoCall),
            (CallState::Prepared, R::GlareResolved),
        ];
        assert!(
            seen == ended || seen == called_then_ended,
            "{what}: the loser's own call must end with glareResolved before the winner's rings; saw {seen:?}"
        );
        assert_ne!(lost_id, &won_id, "{what}");
    }
    // The winner's call is calling for the winner.
    winner.wait_state(&won_id, CallState::Calling).await;

    // The one surviving call: the loser accepts it, both join, it connects and ends normally.
    loser
        .api
        .accept_with_call_id(&won_id)
        .await
        .unwrap_or_else(|e| panic!("{what}: accepting the winning call: {e}"));
    winner.wait_state(&won_id, CallState::Connecting).await;
    loser.wait_state(&won_id, CallState::Connecting).await;
    winner.join(&won.channel).await;
    loser.join(&info.from_room_id).await;
    winner.wait_state(&won_id, CallState::Connected).await;
    loser.wait_state(&won_id, CallState::Connected).await;
    let winner_hangs_up = round % 4 < 2;
    if winner_hangs_up {
        hang_up(winner, loser, &won_id).await;
    } else {
        hang_up(loser, winner, &won_id).await;
    }

    assert_eq!(
        winner.states_of(&won_id),
        connected_then_hung_up(true, winner_hangs_up),
        "{what}: the winner's view of its call"
    );
    assert_eq!(
        loser.states_of(&won_id),
        connected_then_hung_up(false, !winner_hangs_up),
        "{what}: the loser's view of the winning call"
    );
    // The winner heard of the losing call only if it rang the winner before the winner's own Call arrived;
    // then it ended for the winner with glareResolved before the winner's call started.
    let winner_calls = winner.calls_seen();
    match (winner_calls.as_slice(), &lost) {
        ([only], _) => assert_eq!(only, &won_id, "{what}"),
        ([first, second], Some(lost_id)) if first == lost_id && second == &won_id => {
            // The ring may not have been shown yet when the winner's Call withdrew it; the end always is.
            let seen = winner.states_of(lost_id);
            let ended = [(CallState::Prepared, R::GlareResolved)];
            let rang_then_ended = [
                (CallState::Calling, R::RemoteVideoCall),
                (CallState::Prepared, R::GlareResolved),
            ];
            assert!(
                seen == ended || seen == rang_then_ended,
                "{what}: the losing call as the winner saw it: {seen:?}"
            );
        }
        _ => panic!(
            "{what}: the winner heard of {winner_calls:?}; saw {:#?}",
            winner.log
        ),
    }
    // The loser heard of its own call (if placed) and the winning one, nothing else.
    let mut expected: Vec<String> = lost.into_iter().collect();
    expected.push(won_id);
    assert_eq!(
        loser.calls_seen(),
        expected,
        "{what}: calls the loser heard of"
    );
}
