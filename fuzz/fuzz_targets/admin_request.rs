//! A business server's admin request, checked as `AdminService` checks it before anything changes: the
//! first byte picks the RPC, the rest is its protobuf request (as tonic would decode it), and the
//! RPC's checks run in the service's order (`request.rs`, `business.rs`), ending in the `tonic::Status`
//! a refusal becomes.
//!
//! Beyond "no panic": a `MintToken` request that passes its checks mints a token that verifies to the
//! requested user and grants; a page token the API hands out reads back as the key it continues after.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use showcall_admin::business;
use showcall_admin::{AdminError, MintToken};
use showcall_auth::{AppKeys, TokenIssuer, TokenVerifier};
use showcall_proto::admin as pb;

/// The node's clock for every request (tokens and bans are relative to it).
const NOW_UNIX: u64 = 1_700_000_000;
const NOW_MS: u64 = NOW_UNIX * 1000;

thread_local! {
    static KEYS: AppKeys = AppKeys::from_pairs([("demo", "demo-secret-0123456789")]);
}

fuzz_target!(|data: &[u8]| {
    let Some((&rpc, request)) = data.split_first() else {
        return;
    };
    KEYS.with(|keys| {
        if let Err(e) = check(rpc, request, keys) {
            let _ = tonic::Status::from(e);
        }
    });
});

/// Decodes `request` as RPC number `rpc`'s request (an undecodable one is INVALID_ARGUMENT in tonic
/// before the service sees it) and checks it.
fn check(rpc: u8, request: &[u8], keys: &AppKeys) -> Result<(), AdminError> {
    match rpc % 10 {
        0 => {
            let Ok(req) = pb::MintTokenRequest::decode(request) else {
                return Ok(());
            };
            let parsed = MintToken::parse(req, keys)?;
            assert_minted_token_verifies(&parsed, keys);
        }
        1 => {
            let Ok(req) = pb::GetUserRequest::decode(request) else {
                return Ok(());
            };
            business::app(&req.app_id, keys)?;
            business::user(&req.user_id)?;
        }
        2 => {
            let Ok(req) = pb::ListUsersRequest::decode(request) else {
                return Ok(());
            };
            business::app(&req.app_id, keys)?;
            page(req.page_size, &req.page_token)?;
        }
        3 => {
            let Ok(req) = pb::ListChannelsRequest::decode(request) else {
                return Ok(());
            };
            business::app(&req.app_id, keys)?;
            page(req.page_size, &req.page_token)?;
        }
        4 => {
            let Ok(req) = pb::GetChannelRequest::decode(request) else {
                return Ok(());
            };
            business::app(&req.app_id, keys)?;
            business::channel(&req.channel)?;
        }
        5 => {
            let Ok(req) = pb::KickUserRequest::decode(request) else {
                return Ok(());
            };
            business::app(&req.app_id, keys)?;
            business::channel(&req.channel)?;
            business::user(&req.user_id)?;
            if let Some(ban) = business::ban(&req, NOW_MS)? {
                assert!(ban.until > NOW_MS, "a ban ends after it starts");
                assert!(ban.join || ban.publish_audio || ban.publish_video);
            }
        }
        6 => {
            let Ok(req) = pb::UnbanUserRequest::decode(request) else {
                return Ok(());
            };
            business::app(&req.app_id, keys)?;
            business::channel(&req.channel)?;
            business::user(&req.user_id)?;
        }
        7 => {
            let Ok(req) = pb::GetCallRequest::decode(request) else {
                return Ok(());
            };
            business::app(&req.app_id, keys)?;
            business::call(&req.call_id)?;
        }
        8 => {
            let Ok(req) = pb::EndCallRequest::decode(request) else {
                return Ok(());
            };
            business::app(&req.app_id, keys)?;
            business::call(&req.call_id)?;
            business::reason(&req.reason)?;
        }
        _ => {
            // WatchEvents checks its app inline in the service: only that it is known when given.
            let Ok(req) = pb::WatchEventsRequest::decode(request) else {
                return Ok(());
            };
            if !req.app_id.is_empty() {
                business::app(&req.app_id, keys)?;
            }
        }
    }
    Ok(())
}

/// A page request, and the page token the API would hand out after the key it continues from.
fn page(size: u32, token: &str) -> Result<(), AdminError> {
    let (size, after) = business::page(size, token)?;
    assert!(size > 0 && size <= business::MAX_PAGE);
    if let Some(after) = after {
        let next = business::next_token(Some(&after), size, size);
        let (_, again) = business::page(0, &next).expect("a token the API made reads back");
        assert_eq!(again.as_deref(), Some(after.as_str()));
    }
    Ok(())
}

fn assert_minted_token_verifies(req: &MintToken, keys: &AppKeys) {
    let (token, exp) = TokenIssuer::mint(
        keys,
        &req.app_id,
        &req.user_id,
        req.ttl,
        req.grants.clone(),
        NOW_UNIX,
    )
    .expect("a checked MintToken request mints");
    let claims = TokenVerifier::verify(keys, &token, NOW_UNIX).expect("a minted token verifies");
    assert_eq!(claims.sub, req.user_id);
    assert_eq!(claims.grants, req.grants);
    assert_eq!(claims.exp, exp);
}
