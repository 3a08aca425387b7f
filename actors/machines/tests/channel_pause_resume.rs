//! `ChannelMachine`: a live room with one broadcaster and its audience, paused while the host is in a
//! private call and resumed by that call alone; and a call's private channel, open to its two participants
//! only and closed for good when the call ends. A member the business server kicks is told why; a kick
//! from a call's channel ends the call.

use showcall_machines::channel::{ChannelEffect, ChannelReport, Member};
use showcall_machines::{
    CallId, ChannelError, ChannelInput, ChannelKind, ChannelMachine, ChannelUpdate, PublishState,
    Role,
};

const HOST: &str = "host";
const FAN: &str = "fan";
const FAN2: &str = "fan2";
const VIEWER: &str = "viewer";

fn live() -> ChannelMachine {
    ChannelMachine::new("live-host".into(), ChannelKind::Live)
}

fn call_channel() -> ChannelMachine {
    let kind = ChannelKind::Call {
        call: "c1".into(),
        participants: [VIEWER.into(), HOST.into()],
    };
    ChannelMachine::new("call-c1".into(), kind)
}

fn join(user: &str, role: Role, may_publish: bool) -> ChannelInput {
    ChannelInput::Join {
        user: user.into(),
        role,
        may_publish,
    }
}

fn pause(call: &str) -> ChannelInput {
    ChannelInput::PauseBroadcaster {
        host: HOST.into(),
        call: CallId::from(call),
    }
}

fn resume(call: &str) -> ChannelInput {
    ChannelInput::ResumeBroadcaster {
        host: HOST.into(),
        call: CallId::from(call),
    }
}

fn leave(user: &str) -> ChannelInput {
    ChannelInput::Leave { user: user.into() }
}

fn ok(m: &mut ChannelMachine, input: ChannelInput) -> Vec<String> {
    let what = format!("{input:?}");
    let fx = m.handle(input).unwrap_or_else(|e| panic!("{what}: {e}"));
    // Reports are checked on their own (`reports`).
    let shown = fx.iter().filter(|e| !matches!(e, ChannelEffect::Report(_)));
    shown.map(show).collect()
}

/// The business-server reports of one step.
fn reports(m: &mut ChannelMachine, input: ChannelInput) -> Vec<ChannelReport> {
    let what = format!("{input:?}");
    let fx = m.handle(input).unwrap_or_else(|e| panic!("{what}: {e}"));
    let reported = fx.into_iter().filter_map(|e| match e {
        ChannelEffect::Report(r) => Some(r),
        _ => None,
    });
    reported.collect()
}

/// A refused input returns exactly `err` and leaves the channel as it was.
fn refused(m: &mut ChannelMachine, input: ChannelInput, err: ChannelError) {
    let before = format!("{m:?}");
    assert_eq!(m.handle(input), Err(err));
    assert_eq!(
        format!("{m:?}"),
        before,
        "a refused input changed the channel"
    );
}

fn show(e: &ChannelEffect) -> String {
    let member = |m: &Member| format!("{:?}/{:?}", m.role, m.publish);
    match e {
        ChannelEffect::Deliver { to, update } => {
            let what = match update {
                ChannelUpdate::MemberJoined { user, member: m } => {
                    format!("{user} joined as {}", member(m))
                }
                ChannelUpdate::MemberLeft { user } => format!("{user} left"),
                ChannelUpdate::BroadcasterPaused { user } => format!("{user} paused"),
                ChannelUpdate::BroadcasterResumed { user } => format!("{user} resumed"),
                ChannelUpdate::MediaOffer { revision, .. } => format!("media offer {revision}"),
                ChannelUpdate::VideoPausedForBandwidth { paused } => {
                    format!("video paused for bandwidth: {paused}")
                }
            };
            format!("tell {to}: {what}")
        }
        ChannelEffect::CallMemberJoined { call, user } => format!("call {call}: {user} joined"),
        ChannelEffect::CallMemberLeft { call, user } => format!("call {call}: {user} left"),
        ChannelEffect::Removed { user } => format!("removed {user}"),
        ChannelEffect::Kicked { user, ban_seconds } => format!("kicked {user} ban {ban_seconds}"),
        ChannelEffect::EndCall { call, reason } => format!("end call {call}: {reason}"),
        ChannelEffect::RequestKeyframe { from } => format!("keyframe from {from}"),
        ChannelEffect::Forward { user, on: true } => format!("forward {user}"),
        ChannelEffect::Forward { user, on: false } => format!("hold back {user}"),
        ChannelEffect::Report(_) => unreachable!("filtered out by `ok`"),
        ChannelEffect::Stop => "stop".into(),
    }
}

fn lines(text: &str) -> Vec<String> {
    let lines = text.split(['\n', ';']).map(str::trim);
    lines.filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

fn publish(m: &ChannelMachine, user: &str) -> Option<PublishState> {
    m.member(&user.into()).map(|m| m.publish)
}

/// The host live and publishing, two fans watching.
fn live_room() -> ChannelMachine {
    let mut m = live();
    ok(&mut m, join(HOST, Role::Broadcaster, true));
    ok(&mut m, join(FAN, Role::Audience, false));
    ok(&mut m, join(FAN2, Role::Audience, false));
    m
}

#[test]
fn a_live_room_has_one_publishing_broadcaster_and_any_audience() {
    let mut m = live();
    // Nobody to subscribe to yet: no keyframe.
    assert_eq!(
        ok(&mut m, join(FAN, Role::Audience, false)),
        Vec::<String>::new()
    );
    let host = ok(&mut m, join(HOST, Role::Broadcaster, true));
    assert_eq!(
        host,
        lines("tell fan: host joined as Broadcaster/Publishing; keyframe from host")
    );
    let fan2 = ok(&mut m, join(FAN2, Role::Audience, false));
    let told = "tell fan: fan2 joined as Audience/None; tell host: fan2 joined as Audience/None
        keyframe from host";
    assert_eq!(
        fan2,
        lines(told),
        "a new subscriber gets a keyframe at once"
    );
    assert_eq!(publish(&m, HOST), Some(PublishState::Publishing));
    assert_eq!(m.view().members.len(), 3);
}

#[test]
fn broadcasting_needs_the_publish_grant_and_a_free_stage() {
    let mut m = live_room();
    refused(
        &mut m,
        join(VIEWER, Role::Broadcaster, true),
        ChannelError::HasBroadcaster,
    );
    refused(
        &mut m,
        join(FAN, Role::Broadcaster, true),
        ChannelError::HasBroadcaster,
    );
    let mut empty = live();
    refused(
        &mut empty,
        join(HOST, Role::Broadcaster, false),
        ChannelError::PublishNotGranted,
    );
    // The stage frees up when the broadcaster steps down.
    ok(&mut m, leave(HOST));
    assert_eq!(
        ok(&mut m, join(FAN, Role::Broadcaster, true))[0],
        "tell fan2: fan joined as Broadcaster/Publishing"
    );
}

#[test]
fn joining_again_with_the_same_standing_tells_nobody() {
    let mut m = live_room();
    assert_eq!(
        ok(&mut m, join(FAN, Role::Audience, false)),
        Vec::<String>::new()
    );
    assert_eq!(
        ok(&mut m, join(HOST, Role::Broadcaster, true)),
        Vec::<String>::new()
    );
}

#[test]
fn a_retried_join_of_a_call_channel_tells_the_call_again_and_no_member() {
    let mut m = call_channel();
    ok(&mut m, join(VIEWER, Role::Broadcaster, true));
    ok(&mut m, join(HOST, Role::Broadcaster, true));
    // The host's first join went through but its answer was lost; the client joins again.
    assert_eq!(
        ok(&mut m, join(HOST, Role::Broadcaster, true)),
        lines("call c1: host joined")
    );
}

#[test]
fn a_call_pauses_the_host_and_every_member_is_told() {
    let mut m = live_room();
    let paused = ok(&mut m, pause("c1"));
    assert_eq!(
        paused,
        lines(
            "hold back host; tell fan: host paused; tell fan2: host paused; tell host: host paused"
        )
    );
    assert_eq!(publish(&m, HOST), Some(PublishState::Paused));
    assert!(m.view().broadcaster_paused);
    // The room stays open: audiences still come and go, without a keyframe from a paused host.
    let viewer = ok(&mut m, join(VIEWER, Role::Audience, false));
    let told = "tell fan: viewer joined as Audience/None; tell fan2: viewer joined as Audience/None
        tell host: viewer joined as Audience/None";
    assert_eq!(viewer, lines(told));
}

#[test]
fn only_the_pausing_call_resumes_the_host_and_a_keyframe_is_requested() {
    let mut m = live_room();
    ok(&mut m, pause("c1"));
    assert_eq!(
        ok(&mut m, resume("c0")),
        Vec::<String>::new(),
        "a stale call"
    );
    assert_eq!(publish(&m, HOST), Some(PublishState::Paused));
    let resumed = ok(&mut m, resume("c1"));
    let told = "forward host; tell fan: host resumed; tell fan2: host resumed; tell host: host resumed; keyframe from host";
    assert_eq!(resumed, lines(told));
    assert_eq!(publish(&m, HOST), Some(PublishState::Publishing));
    assert!(!m.view().broadcaster_paused);
    assert_eq!(
        ok(&mut m, resume("c1")),
        Vec::<String>::new(),
        "resumed once"
    );
}

#[test]
fn the_hosts_next_call_takes_over_a_pause_whose_resume_is_late() {
    // Call c1 ended and c2 was accepted, but c2's pause reached the room before c1's resume (they come
    // from two call actors): the room must stay paused through c2.
    let mut m = live_room();
    ok(&mut m, pause("c1"));
    assert_eq!(
        ok(&mut m, pause("c2")),
        Vec::<String>::new(),
        "already paused: nobody is told twice"
    );
    assert_eq!(
        ok(&mut m, resume("c1")),
        Vec::<String>::new(),
        "the late resume of the earlier call is ignored"
    );
    assert_eq!(publish(&m, HOST), Some(PublishState::Paused));
    let resumed = ok(&mut m, resume("c2"));
    let told = "forward host; tell fan: host resumed; tell fan2: host resumed; tell host: host resumed; keyframe from host";
    assert_eq!(resumed, lines(told));
}

#[test]
fn a_host_who_rejoins_during_its_call_stays_paused_until_the_call_ends() {
    let mut m = live_room();
    ok(&mut m, pause("c1"));
    ok(&mut m, leave(HOST));
    assert!(
        !m.view().broadcaster_paused,
        "no paused broadcaster in the room"
    );
    let back = ok(&mut m, join(HOST, Role::Broadcaster, true));
    assert_eq!(
        back,
        lines(
            "hold back host; tell fan: host joined as Broadcaster/Paused; tell fan2: host joined as Broadcaster/Paused"
        )
    );
    assert_eq!(
        ok(&mut m, resume("c1")).last().map(String::as_str),
        Some("keyframe from host")
    );
}

#[test]
fn a_host_paused_before_it_is_in_the_room_joins_paused() {
    let mut m = live();
    ok(&mut m, join(FAN, Role::Audience, false));
    assert_eq!(
        ok(&mut m, pause("c1")),
        lines("hold back host"),
        "nobody to tell yet; the router holds the host back"
    );
    let host = ok(&mut m, join(HOST, Role::Broadcaster, true));
    assert_eq!(
        host,
        lines("hold back host; tell fan: host joined as Broadcaster/Paused"),
        "no keyframe from a paused host, and its new session is held back too"
    );
    assert_eq!(
        ok(&mut m, resume("c1")),
        lines("forward host; tell fan: host resumed; tell host: host resumed; keyframe from host")
    );
}

#[test]
fn an_empty_live_room_stops_but_not_while_its_host_is_paused_in_a_call() {
    let mut m = live_room();
    ok(&mut m, leave(FAN));
    ok(&mut m, leave(FAN2));
    assert_eq!(ok(&mut m, leave(HOST)), lines("stop"));

    let mut m = live_room();
    ok(&mut m, pause("c1"));
    ok(&mut m, leave(FAN));
    ok(&mut m, leave(FAN2));
    assert_eq!(
        ok(&mut m, leave(HOST)),
        Vec::<String>::new(),
        "kept for the resume"
    );
    assert_eq!(ok(&mut m, resume("c1")), lines("forward host; stop"));
}

#[test]
fn leaving_tells_the_others_and_needs_membership() {
    let mut m = live_room();
    assert_eq!(
        ok(&mut m, leave(FAN)),
        lines("tell fan2: fan left; tell host: fan left")
    );
    refused(&mut m, leave(FAN), ChannelError::NotInChannel);
}

#[test]
fn a_call_channel_admits_its_two_participants_only_both_publishing() {
    let mut m = call_channel();
    refused(
        &mut m,
        join(FAN, Role::Audience, false),
        ChannelError::NotAParticipant,
    );
    refused(
        &mut m,
        join(FAN, Role::Broadcaster, true),
        ChannelError::NotAParticipant,
    );
    // Publishing by right of the call: no grant needed, whatever role was asked.
    assert_eq!(
        ok(&mut m, join(VIEWER, Role::Audience, false)),
        lines("call c1: viewer joined")
    );
    let host = ok(&mut m, join(HOST, Role::Broadcaster, false));
    assert_eq!(
        host,
        lines("tell viewer: host joined as Broadcaster/Publishing; call c1: host joined")
    );
    assert_eq!(publish(&m, VIEWER), Some(PublishState::Publishing));
    assert_eq!(
        ok(&mut m, leave(VIEWER)),
        lines("tell host: viewer left; call c1: viewer left")
    );
    assert_eq!(
        ok(&mut m, leave(HOST)),
        lines("call c1: host left"),
        "empty, but open until the call ends"
    );
    assert_eq!(
        ok(&mut m, join(HOST, Role::Broadcaster, false)),
        lines("call c1: host joined")
    );
}

#[test]
fn closing_a_call_channel_removes_everyone_and_refuses_everything_after() {
    let mut m = call_channel();
    ok(&mut m, join(VIEWER, Role::Broadcaster, false));
    ok(&mut m, join(HOST, Role::Broadcaster, false));
    assert_eq!(
        ok(&mut m, ChannelInput::Close),
        lines("removed host; removed viewer; stop")
    );
    assert!(m.view().members.is_empty());
    refused(
        &mut m,
        join(HOST, Role::Broadcaster, false),
        ChannelError::Closed,
    );
    refused(&mut m, leave(HOST), ChannelError::Closed);
    refused(&mut m, ChannelInput::Close, ChannelError::Closed);
}

fn kick(user: &str, ban_seconds: u64) -> ChannelInput {
    ChannelInput::Kick {
        user: user.into(),
        ban_seconds,
    }
}

#[test]
fn a_kicked_member_is_told_why_and_a_kick_from_a_call_channel_ends_the_call() {
    let mut m = live_room();
    assert_eq!(
        ok(&mut m, kick(FAN, 600)),
        lines("tell fan2: fan left; tell host: fan left; kicked fan ban 600")
    );
    assert_eq!(m.member(&FAN.into()), None);
    refused(&mut m, kick(FAN, 0), ChannelError::NotInChannel);

    let mut call = call_channel();
    ok(&mut call, join(VIEWER, Role::Broadcaster, false));
    ok(&mut call, join(HOST, Role::Broadcaster, false));
    assert_eq!(
        ok(&mut call, kick(VIEWER, 0)),
        lines("tell host: viewer left; kicked viewer ban 0; end call c1: kicked: viewer")
    );
}

#[test]
fn the_channel_reports_members_and_the_hosts_pause_in_the_step_that_changed_them() {
    use ChannelReport::{HostPaused, HostResumed, MemberJoined, MemberLeft};
    let mut m = live();
    assert_eq!(
        reports(&mut m, join(HOST, Role::Broadcaster, true)),
        [MemberJoined {
            user: HOST.into(),
            role: Role::Broadcaster
        }]
    );
    assert_eq!(
        reports(&mut m, join(HOST, Role::Broadcaster, true)),
        [],
        "a rejoin is no new member"
    );
    assert_eq!(
        reports(&mut m, join(FAN, Role::Audience, false)),
        [MemberJoined {
            user: FAN.into(),
            role: Role::Audience
        }]
    );
    assert_eq!(
        reports(&mut m, pause("c1")),
        [HostPaused {
            host: HOST.into(),
            call: "c1".into()
        }]
    );
    assert_eq!(
        reports(&mut m, pause("c2")),
        [],
        "the next call takes over the pause: still paused"
    );
    assert_eq!(
        reports(&mut m, resume("c2")),
        [HostResumed { host: HOST.into() }]
    );
    assert_eq!(
        reports(&mut m, leave(FAN)),
        [MemberLeft {
            user: FAN.into(),
            role: Role::Audience
        }]
    );
}
