// showcall web SDK: a dependency-free ES module for browsers.
//
// It mirrors the Rust SDK (sdk/rust) and Agora's CallAPI names so an app ports line by line:
// - SignalClient  ≈ CallRtmManager: connect, login/logout/renewToken, channels; listener onConnected,
//                   onDisconnected, onTokenPrivilegeWillExpire, onSessionClosed, onChannelEvent.
// - CallApi       ≈ CallAPI: initialize, prepareForCall, call, cancelCall, accept, reject, hangup,
//                   deinitialize, getCallId; listener onCallStateChanged, onCallEventChanged,
//                   onCallConnected, onCallDisconnected, onCallError, onTokenPrivilegeWillExpire.
// - MediaClient   one WebRTC session per channel membership: join(channel, role, {localStream}) sends a
//                   complete (non-trickle) SDP offer in JoinChannel and applies the node's answer.
//
// The wire is proto/signal/v1/signal.proto in the proto3 JSON mapping, one WebSocket TEXT frame per message:
// camelCase fields, enums as their names ("CALL_STATE_CALLING"), 64-bit integers as strings. Default values
// are omitted by the server, so every reader here supplies the default. Every command carries a fresh
// requestId and gets exactly one Response; events are pushed, numbered by `seq`.
//
// The server is the authority on call state: CallApi's state only ever changes on what the server said
// (a CallStateChanged event, a login snapshot, a successful PrepareForCall), never on the app's own commands.

// ---------------------------------------------------------------------------------------------------------
// Enumerations: names as in the Rust SDK, values as on the wire (the proto enum names).
// ---------------------------------------------------------------------------------------------------------

const enumOf = (prefix, names) =>
  Object.freeze(Object.fromEntries(names.map(([name, wire]) => [name, `${prefix}${wire}`])));

export const CallState = enumOf('CALL_STATE_', [
  ['Idle', 'IDLE'], ['Prepared', 'PREPARED'], ['Calling', 'CALLING'], ['Connecting', 'CONNECTING'],
  ['Connected', 'CONNECTED'], ['Failed', 'FAILED'],
]);

export const CallStateReason = enumOf('CALL_STATE_REASON_', [
  ['None', 'NONE'], ['JoinRtcFailed', 'JOIN_RTC_FAILED'], ['MessageFailed', 'MESSAGE_FAILED'],
  ['LocalRejected', 'LOCAL_REJECTED'], ['RemoteRejected', 'REMOTE_REJECTED'],
  ['RemoteAccepted', 'REMOTE_ACCEPTED'], ['LocalAccepted', 'LOCAL_ACCEPTED'],
  ['LocalHangup', 'LOCAL_HANGUP'], ['RemoteHangup', 'REMOTE_HANGUP'],
  ['LocalCancelled', 'LOCAL_CANCELLED'], ['RemoteCancelled', 'REMOTE_CANCELLED'],
  ['RecvRemoteFirstFrame', 'RECV_REMOTE_FIRST_FRAME'], ['CallingTimeout', 'CALLING_TIMEOUT'],
  ['CancelByCallerRecall', 'CANCEL_BY_CALLER_RECALL'], ['RemoteCallBusy', 'REMOTE_CALL_BUSY'],
  ['RemoteCallingTimeout', 'REMOTE_CALLING_TIMEOUT'], ['LocalVideoCall', 'LOCAL_VIDEO_CALL'],
  ['LocalAudioCall', 'LOCAL_AUDIO_CALL'], ['RemoteVideoCall', 'REMOTE_VIDEO_CALL'],
  ['RemoteAudioCall', 'REMOTE_AUDIO_CALL'], ['RemoteOffline', 'REMOTE_OFFLINE'],
  ['RemoteLeft', 'REMOTE_LEFT'], ['LocalLeft', 'LOCAL_LEFT'], ['GlareResolved', 'GLARE_RESOLVED'],
  ['BothJoined', 'BOTH_JOINED'], ['TokenExpired', 'TOKEN_EXPIRED'],
  ['RemoteLoggedOut', 'REMOTE_LOGGED_OUT'], ['EndedByServer', 'ENDED_BY_SERVER'],
  ['RefusedByPolicy', 'REFUSED_BY_POLICY'], ['MediaMoved', 'MEDIA_MOVED'],
]);

export const CallEvent = enumOf('CALL_EVENT_', [
  ['None', 'NONE'], ['Deinitialize', 'DEINITIALIZE'], ['CallingTimeout', 'CALLING_TIMEOUT'],
  ['RemoteCallingTimeout', 'REMOTE_CALLING_TIMEOUT'], ['JoinRtcSuccessed', 'JOIN_RTC_SUCCESSED'],
  ['StateMismatch', 'STATE_MISMATCH'], ['JoinRtcStart', 'JOIN_RTC_START'],
  ['RemoteUserRecvCall', 'REMOTE_USER_RECV_CALL'], ['LocalRejected', 'LOCAL_REJECTED'],
  ['RemoteRejected', 'REMOTE_REJECTED'], ['RemoteAccepted', 'REMOTE_ACCEPTED'],
  ['LocalAccepted', 'LOCAL_ACCEPTED'], ['LocalHangup', 'LOCAL_HANGUP'],
  ['RemoteHangup', 'REMOTE_HANGUP'], ['RemoteJoined', 'REMOTE_JOINED'], ['RemoteLeft', 'REMOTE_LEFT'],
  ['LocalCancelled', 'LOCAL_CANCELLED'], ['RemoteCancelled', 'REMOTE_CANCELLED'],
  ['LocalJoined', 'LOCAL_JOINED'], ['LocalLeft', 'LOCAL_LEFT'],
  ['RecvRemoteFirstFrame', 'RECV_REMOTE_FIRST_FRAME'], ['RemoteCallBusy', 'REMOTE_CALL_BUSY'],
  ['CaptureFirstLocalVideoFrame', 'CAPTURE_FIRST_LOCAL_VIDEO_FRAME'],
  ['PublishFirstLocalVideoFrame', 'PUBLISH_FIRST_LOCAL_VIDEO_FRAME'],
  ['PublishFirstLocalAudioFrame', 'PUBLISH_FIRST_LOCAL_AUDIO_FRAME'],
  ['LocalVideoCall', 'LOCAL_VIDEO_CALL'], ['LocalAudioCall', 'LOCAL_AUDIO_CALL'],
  ['RemoteVideoCall', 'REMOTE_VIDEO_CALL'], ['RemoteAudioCall', 'REMOTE_AUDIO_CALL'],
  ['RemoteReconnected', 'REMOTE_RECONNECTED'], ['RemoteOffline', 'REMOTE_OFFLINE'],
]);

export const CallErrorEvent = enumOf('CALL_ERROR_EVENT_', [
  ['NormalError', 'NORMAL_ERROR'], ['RtcOccurError', 'RTC_OCCUR_ERROR'],
  ['StartCaptureFail', 'START_CAPTURE_FAIL'], ['SendMessageFail', 'SEND_MESSAGE_FAIL'],
]);

export const CallErrorType = enumOf('CALL_ERROR_TYPE_', [
  ['Normal', 'NORMAL'], ['Rtc', 'RTC'], ['Message', 'MESSAGE'],
]);

export const CallType = enumOf('CALL_TYPE_', [['Video', 'VIDEO'], ['Audio', 'AUDIO']]);

export const ChannelRole = enumOf('CHANNEL_ROLE_', [
  ['Audience', 'AUDIENCE'], ['Broadcaster', 'BROADCASTER'],
]);

// Simulcast layers, best first: what a receiver may cap its video at (SignalClient.setVideoLayer).
export const VideoLayer = enumOf('VIDEO_LAYER_', [['High', 'HIGH'], ['Medium', 'MEDIUM'], ['Low', 'LOW']]);

export const PublishState = enumOf('PUBLISH_STATE_', [
  ['None', 'NONE'], ['Publishing', 'PUBLISHING'], ['Paused', 'PAUSED'],
]);

export const SessionCloseReason = enumOf('SESSION_CLOSE_REASON_', [
  ['Unspecified', 'UNSPECIFIED'], ['TokenExpired', 'TOKEN_EXPIRED'], ['Replaced', 'REPLACED'],
  ['LoggedOut', 'LOGGED_OUT'], ['ServerShutdown', 'SERVER_SHUTDOWN'],
]);

// Server error codes, plus three the SDK itself raises (no server code has these names).
export const ErrorCode = Object.freeze({
  ...enumOf('ERROR_CODE_', [
    ['Unspecified', 'UNSPECIFIED'], ['MalformedFrame', 'MALFORMED_FRAME'],
    ['Unauthenticated', 'UNAUTHENTICATED'], ['TokenInvalid', 'TOKEN_INVALID'],
    ['TokenExpired', 'TOKEN_EXPIRED'], ['PermissionDenied', 'PERMISSION_DENIED'],
    ['RateLimited', 'RATE_LIMITED'], ['InvalidArgument', 'INVALID_ARGUMENT'],
    ['NotPrepared', 'NOT_PREPARED'], ['AlreadyInCall', 'ALREADY_IN_CALL'],
    ['CallToSelf', 'CALL_TO_SELF'], ['NoSuchCall', 'NO_SUCH_CALL'], ['NotAllowed', 'NOT_ALLOWED'],
    ['NotAParticipant', 'NOT_A_PARTICIPANT'], ['NotInChannel', 'NOT_IN_CHANNEL'],
    ['ChannelHasBroadcaster', 'CHANNEL_HAS_BROADCASTER'], ['Unavailable', 'UNAVAILABLE'],
  ]),
  // The connection is closed (or closed while the command waited): nothing is known about its outcome.
  Disconnected: 'SDK_DISCONNECTED',
  // No response within SignalClient's requestTimeoutMs.
  Timeout: 'SDK_TIMEOUT',
  // The CallApi has no call (with that user) to act on, or is not initialized.
  NoCall: 'SDK_NO_CALL',
});

/** A refused command (then the server changed nothing) or an SDK-side failure; branch on `code`. */
export class SignalError extends Error {
  constructor(code, message) {
    super(`${code}: ${message || ''}`);
    this.name = 'SignalError';
    this.code = code;
    this.detail = message || '';
  }
}

// Accepts 'broadcaster' / 'audience' as well as the enum values.
function roleOf(role) {
  if (role === 'broadcaster' || role === ChannelRole.Broadcaster) return ChannelRole.Broadcaster;
  if (role === 'audience' || role === ChannelRole.Audience || role === undefined) return ChannelRole.Audience;
  throw new TypeError(`unknown channel role: ${role}`);
}

// Calls `name` on each listener that has it; a throwing listener is logged and does not stop the others.
function notify(listeners, name, ...args) {
  for (const l of [...listeners]) {
    if (typeof l[name] !== 'function') continue;
    try {
      l[name](...args);
    } catch (e) {
      console.error(`showcall: listener ${name} threw`, e);
    }
  }
}

// proto3 JSON omits defaults: give every EventInfo its full shape, with 64-bit times as numbers.
function eventInfoOf(raw) {
  const info = raw || {};
  const timing = {};
  for (const [k, v] of Object.entries(info.timing || {})) timing[k] = Number(v);
  return {
    callId: info.callId || '',
    fromUserId: info.fromUserId || '',
    fromRoomId: info.fromRoomId || '',
    remoteUserId: info.remoteUserId || '',
    callType: info.callType || CallType.Video,
    extension: { ...(info.extension || {}) },
    timing,
  };
}

function loginInfoOf(raw) {
  const r = raw || {};
  return {
    appId: r.appId || '',
    userId: r.userId || '',
    resumed: !!r.resumed,
    tokenExpiresAtMs: Number(r.tokenExpiresAtMs || 0),
    call: r.call
      ? {
          callId: r.call.callId || '',
          state: r.call.state || CallState.Idle,
          eventInfo: eventInfoOf(r.call.eventInfo),
        }
      : null,
    channels: r.channels || [],
    gracePeriodMs: r.gracePeriodMs || 0,
    iceServers: (r.iceServers || []).map((server) => ({
      urls: server.urls || [],
      username: server.username || '',
      credential: server.credential || '',
      expiresAtMs: Number(server.expiresAtMs || 0),
    })),
  };
}

/**
 * The RTCConfiguration a MediaClient opens its peer connection with: the app's own, plus the TURN
 * servers of the login (LoginInfo.iceServers) unless the app set iceServers itself. With them the
 * browser gathers a relay candidate, its way to the media when only TLS on 443 leaves its network.
 */
function rtcConfigurationFor(configuration, loginInfo) {
  if (configuration.iceServers || !loginInfo || loginInfo.iceServers.length === 0) return configuration;
  const iceServers = loginInfo.iceServers.map(({ urls, username, credential }) => ({
    urls,
    username,
    credential,
  }));
  return { ...configuration, iceServers };
}

function memberOf(raw) {
  const m = raw || {};
  return {
    userId: m.userId || '',
    role: m.role || ChannelRole.Audience,
    publishState: m.publishState || PublishState.None,
  };
}

function channelJoinedOf(raw) {
  const j = raw || {};
  return {
    channel: j.channel || '',
    role: j.role || ChannelRole.Audience,
    members: (j.members || []).map(memberOf),
    broadcasterPaused: !!j.broadcasterPaused,
    sdpAnswer: j.sdpAnswer || '',
  };
}

// A ChannelEvent as the listener sees it: { channel, kind, ... } with kind one of 'memberJoined' (member),
// 'memberLeft' (userId; this user's own id when the live room was given up — its node died and the room did
// not reopen within the grace period — so it is no longer a member), 'broadcasterPaused' (userId, reason), 'broadcasterResumed' (userId), 'mediaOffer'
// (sdpOffer, revision: the node renegotiates this member's media session; MediaClient answers it),
// 'videoPausedForBandwidth' (paused: the node stopped this member's video because its bandwidth carries no
// video layer — audio goes on — or, false, started it again).
function channelEventOf(raw) {
  const e = raw || {};
  const channel = e.channel || '';
  if (e.memberJoined) return { channel, kind: 'memberJoined', member: memberOf(e.memberJoined), raw: e };
  if ('memberLeft' in e) return { channel, kind: 'memberLeft', userId: e.memberLeft, raw: e };
  if (e.broadcasterPaused) {
    return {
      channel,
      kind: 'broadcasterPaused',
      userId: e.broadcasterPaused.userId || '',
      reason: e.broadcasterPaused.reason || '',
      raw: e,
    };
  }
  if ('broadcasterResumed' in e) {
    return { channel, kind: 'broadcasterResumed', userId: e.broadcasterResumed, raw: e };
  }
  if (e.mediaOffer) {
    return {
      channel,
      kind: 'mediaOffer',
      sdpOffer: e.mediaOffer.sdpOffer || '',
      revision: Number(e.mediaOffer.revision || 0),
      raw: e,
    };
  }
  if (e.videoPausedForBandwidth) {
    return {
      channel,
      kind: 'videoPausedForBandwidth',
      paused: !!e.videoPausedForBandwidth.paused,
      raw: e,
    };
  }
  return { channel, kind: 'unknown', raw: e };
}

// ---------------------------------------------------------------------------------------------------------
// SignalClient
// ---------------------------------------------------------------------------------------------------------

/** How long a login that follows its session waits for the session's node to accept a connection. */
export const FOLLOW_HOME_CONNECT_TIMEOUT_MS = 3000;

/**
 * A signaling session with a showcall node (≈ CallRtmManager). One WebSocket at a time.
 *
 * Listener methods (all optional): onConnected(loginInfo), onDisconnected(reason),
 * onTokenPrivilegeWillExpire(expiresAtMs), onSessionClosed(reason, message), onChannelEvent(event),
 * onEvent(rawEvent) (every pushed event, after duplicate removal).
 */
export class SignalClient {
  /** Opens a WebSocket to `url` (e.g. `ws://127.0.0.1:7800/signal`); resolves once it is open. */
  static async connect(url, options = {}) {
    const client = new SignalClient(url, options);
    await client.reconnect();
    return client;
  }

  constructor(url, { requestTimeoutMs = 20000, followHome = true } = {}) {
    this.url = url;
    this.requestTimeoutMs = requestTimeoutMs;
    // Whether a login asks to be sent to the node serving its session (see `login`).
    this.followHome = followHome;
    this.loginInfo = null;
    this._ws = null;
    this._nextRequestId = 1;
    this._pending = new Map();
    this._listeners = new Set();
    // Internal subscribers (CallApi): get events and session updates before app listeners.
    this._subscribers = new Set();
    this._lastSeq = 0;
  }

  addListener(listener) {
    this._listeners.add(listener);
  }

  removeListener(listener) {
    return this._listeners.delete(listener);
  }

  get isConnected() {
    return !!this._ws && this._ws.readyState === WebSocket.OPEN;
  }

  /**
   * Opens a new connection to the URL given to `connect` (the current one is closed first): a cluster's
   * entry, which sends the next login on to the session's node again. Log in again to resume.
   */
  async reconnect() {
    if (this._ws) this.close();
    this._adopt(await this._open(this.url));
  }

  /** A WebSocket to `url`, open; rejects when it cannot be opened within `timeoutMs` (0 = no limit). */
  _open(url, timeoutMs = 0) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const timer = timeoutMs > 0
        ? setTimeout(() => {
            ws.onopen = null;
            ws.onclose = null;
            ws.close();
            reject(new SignalError(ErrorCode.Disconnected, `no connection to ${url} within ${timeoutMs} ms`));
          }, timeoutMs)
        : null;
      ws.onopen = () => {
        if (timer) clearTimeout(timer);
        ws.onopen = null;
        ws.onclose = null;
        resolve(ws);
      };
      ws.onclose = () => {
        if (timer) clearTimeout(timer);
        reject(new SignalError(ErrorCode.Disconnected, `cannot connect to ${url}`));
      };
    });
  }

  /** Makes the open `ws` this client's connection. */
  _adopt(ws) {
    this._ws = ws;
    ws.onmessage = (msg) => {
      if (this._ws === ws) this._onText(msg.data);
    };
    ws.onclose = (ev) => {
      if (this._ws !== ws) return;
      this._ws = null;
      this._failPending(`connection closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ''})`);
      notify(this._listeners, 'onDisconnected', ev.reason || `closed with code ${ev.code}`);
    };
  }

  /** Closes the connection without logging out: the server keeps the session for its grace period. */
  close() {
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onmessage = null;
      ws.close(1000, 'client closed');
      this._failPending('connection closed by the client');
      notify(this._listeners, 'onDisconnected', 'closed by the client');
    }
  }

  /**
   * Sends one command — `name` is the ClientFrame field (`login`, `joinChannel`, ...), `body` its message —
   * and resolves with the Response (without `error`), or rejects with a SignalError.
   */
  request(name, body = {}) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new SignalError(ErrorCode.Disconnected, 'not connected'));
    }
    const requestId = String(this._nextRequestId++);
    return new Promise((resolve, reject) => {
      const timer = this.requestTimeoutMs > 0
        ? setTimeout(() => {
            this._pending.delete(requestId);
            reject(new SignalError(ErrorCode.Timeout, `no response to ${name}`));
          }, this.requestTimeoutMs)
        : null;
      this._pending.set(requestId, { name, resolve, reject, timer });
      ws.send(JSON.stringify({ requestId, [name]: body }));
    });
  }

  /**
   * Opens (or resumes) the session of the token's user. Resolves with the LoginInfo.
   *
   * In a cluster whose nodes announce their URLs, the node may answer that the session is served by
   * another node (`loginElsewhere`); with `followHome` (the default) the client then connects there within
   * FOLLOW_HOME_CONNECT_TIMEOUT_MS, leaves the first connection quietly (no onDisconnected: the app sees one
   * login) and logs in there, so its commands and events cross no node link. When that node cannot be
   * reached it logs in where it is, served from there as before.
   */
  async login(token) {
    if (!this.followHome) return loginInfoOf((await this.request('login', { token })).login);
    const r = await this.request('login', { token, followHome: true });
    if (!r.loginElsewhere) return loginInfoOf(r.login);
    const url = r.loginElsewhere.signalUrl || '';
    try {
      const ws = await this._open(url, FOLLOW_HOME_CONNECT_TIMEOUT_MS);
      const left = this._ws;
      this._adopt(ws);
      if (left) {
        left.onmessage = null;
        left.onclose = null;
        left.close(1000, 'logging in where the session is');
      }
    } catch (e) {
      console.warn(`showcall: the session's node (${url}) cannot be reached; logging in here`, e);
    }
    return loginInfoOf((await this.request('login', { token })).login);
  }

  /** Ends the session: a call in progress is hung up, channels are left; the server then closes. */
  async logout() {
    await this.request('logout', {});
  }

  /** Replaces the session's token without reconnecting (same app and user). */
  async renewToken(token) {
    await this.request('renewToken', { token });
  }

  /**
   * Joins a live channel or a call's private channel. With `sdpOffer` the node opens a WebRTC session and
   * answers in `sdpAnswer` (empty when the node moves no media). Resolves with the ChannelJoined.
   */
  async joinChannel(channel, role, sdpOffer) {
    const body = { channel, role: roleOf(role) };
    if (sdpOffer) body.sdpOffer = sdpOffer;
    const r = await this.request('joinChannel', body);
    return channelJoinedOf(r.channelJoined);
  }

  async leaveChannel(channel) {
    await this.request('leaveChannel', { channel });
  }

  /** Answers the node's renegotiation offer (a 'mediaOffer' channel event). MediaClient does this itself. */
  async answerMedia(channel, sdpAnswer, revision) {
    await this.request('answerMedia', { channel, sdpAnswer, revision: String(revision) });
  }

  /**
   * Restarts ICE on this user's media session in `channel` (RestartIce): `sdpOffer` is the session's offer
   * with new ICE credentials (createOffer({ iceRestart: true })). Resolves with the node's SDP answer.
   * MediaClient does this itself when its connection drops (see MediaClient.restartIce).
   */
  async restartIce(channel, sdpOffer) {
    const r = await this.request('restartIce', { channel, sdpOffer });
    return (r.iceRestarted && r.iceRestarted.sdpAnswer) || '';
  }

  /**
   * Caps the simulcast layer this user's media in `channel` receives (VideoLayer.*; a small window needs no
   * full-size picture). The node switches at that layer's next keyframe without a break; VideoLayer.High
   * lifts the cap. Rejects (nothing changes) outside the channel or without a media session.
   */
  async setVideoLayer(channel, maxLayer) {
    await this.request('setVideoLayer', { channel, maxLayer });
  }

  async ping() {
    await this.request('ping', {});
  }

  _subscribe(subscriber) {
    this._subscribers.add(subscriber);
    return () => this._subscribers.delete(subscriber);
  }

  _failPending(reason) {
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const p of pending) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(new SignalError(ErrorCode.Disconnected, reason));
    }
  }

  _onText(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (e) {
      console.warn('showcall: undecodable frame ignored', text);
      return;
    }
    if (frame.response) this._onResponse(frame.response);
    else if (frame.event) this._onEvent(frame.event);
  }

  _onResponse(r) {
    const id = r.requestId || '0';
    const waiter = this._pending.get(id);
    // A successful login (or prepare) changes the session before anything that follows it.
    if (!r.error && waiter) {
      if (waiter.name === 'login' && r.login) this._onLogin(loginInfoOf(r.login));
      if (waiter.name === 'prepareForCall') notify(this._subscribers, 'onPrepared');
    }
    if (!waiter) {
      console.warn('showcall: response to no pending request ignored', r);
      return;
    }
    this._pending.delete(id);
    if (waiter.timer) clearTimeout(waiter.timer);
    if (r.error) {
      waiter.reject(new SignalError(r.error.code || ErrorCode.Unspecified, r.error.message));
    } else {
      waiter.resolve(r);
    }
  }

  _onLogin(info) {
    if (!info.resumed) this._lastSeq = 0;
    this.loginInfo = info;
    notify(this._subscribers, 'onLogin', info);
    notify(this._listeners, 'onConnected', info);
  }

  _onEvent(ev) {
    const seq = Number(ev.seq || 0);
    if (seq !== 0) {
      // Events at or below the last seq are duplicates a server may resend after a resume.
      if (seq <= this._lastSeq) return;
      this._lastSeq = seq;
    }
    if (ev.sessionClosed) this.loginInfo = null;
    notify(this._subscribers, 'onEvent', ev);
    notify(this._listeners, 'onEvent', ev);
    if (ev.tokenWillExpire) {
      notify(this._listeners, 'onTokenPrivilegeWillExpire', Number(ev.tokenWillExpire.expiresAtMs || 0));
    } else if (ev.sessionClosed) {
      notify(this._listeners, 'onSessionClosed',
        ev.sessionClosed.reason || SessionCloseReason.Unspecified, ev.sessionClosed.message || '');
    } else if (ev.channelEvent) {
      notify(this._listeners, 'onChannelEvent', channelEventOf(ev.channelEvent));
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// CallApi
// ---------------------------------------------------------------------------------------------------------

const ACTIVE = new Set([CallState.Calling, CallState.Connecting, CallState.Connected]);

/** Whether a call exists in this state (calling, connecting, connected). */
export function isActive(state) {
  return ACTIVE.has(state);
}

/** The reason text deinitialize() sends with the reject/hangup it issues. */
export const DEINITIALIZE_REASON = 'deinitialize';

/** How long a command waits for the state event that confirms it, after the server's success response. */
const STATE_CONFIRM_TIMEOUT_MS = 5000;

/**
 * The 1v1 call API (≈ CallAPI). Listener methods (all optional):
 * onCallStateChanged(state, reason, eventReason, eventInfo), onCallEventChanged(event, eventReason),
 * onCallConnected(roomId, callUserId, currentUserId, timestampMs),
 * onCallDisconnected(roomId, hangupUserId, currentUserId, timestampMs, durationMs),
 * onCallError(errorEvent, errorType, errorCode, message), onTokenPrivilegeWillExpire().
 */
export class CallApi {
  constructor() {
    this._listeners = new Set();
    this._config = null;
    this._unsubscribe = null;
    this._waiters = new Set();
    this._reset();
  }

  _reset() {
    this.state = CallState.Idle;
    this.reason = CallStateReason.None;
    this._callId = null;
    /** What the server last said about the current or most recent call. */
    this.eventInfo = null;
    this._seen = [];
  }

  /** Binds to a logged-in SignalClient: `{ appId, userId, signal }`. */
  initialize(config) {
    if (this._unsubscribe) this._unsubscribe();
    this._config = { appId: config.appId, userId: config.userId, signal: config.signal };
    this._reset();
    const login = config.signal.loginInfo;
    if (login) this._applyLogin(login);
    this._unsubscribe = config.signal._subscribe({
      onEvent: (ev) => this._onEvent(ev),
      onLogin: (info) => {
        const before = [this.state, this._callId];
        this._applyLogin(info);
        if (before[0] !== this.state || before[1] !== this._callId) {
          const why = info.resumed ? 'session resumed' : 'new session';
          notify(this._listeners, 'onCallStateChanged', this.state, CallStateReason.None, why,
            this.eventInfo || eventInfoOf(null));
        }
        this._settle();
      },
      onPrepared: () => {
        if (this.state === CallState.Idle || this.state === CallState.Failed) {
          this.state = CallState.Prepared;
          this.reason = CallStateReason.None;
          notify(this._listeners, 'onCallStateChanged', CallState.Prepared, CallStateReason.None, '',
            eventInfoOf(null));
        }
        this._settle();
      },
    });
  }

  get isInitialized() {
    return !!this._config;
  }

  addListener(listener) {
    this._listeners.add(listener);
  }

  removeListener(listener) {
    return this._listeners.delete(listener);
  }

  /** The call in progress (calling, connecting or connected), or null. */
  getCallId() {
    return this._callId;
  }

  /** The private channel of the current or most recent call (EventInfo.fromRoomId), or ''. */
  callChannel() {
    return (this.eventInfo && this.eventInfo.fromRoomId) || '';
  }

  /**
   * Makes this user callable: `{ roomId, callTimeoutMillisecond, userExtension, firstFrameWaitingDisabled }`
   * (CallAPI's PrepareConfig names). Refused while a call is in progress.
   */
  async prepareForCall(prepare = {}) {
    const body = {};
    if (prepare.roomId) body.roomId = prepare.roomId;
    if (prepare.userExtension) body.userExtension = { ...prepare.userExtension };
    if (prepare.callTimeoutMillisecond !== undefined && prepare.callTimeoutMillisecond !== null) {
      body.callTimeoutMs = prepare.callTimeoutMillisecond;
    }
    if (prepare.firstFrameWaitingDisabled) body.firstFrameWaitingDisabled = true;
    await this._signal().request('prepareForCall', body);
  }

  /**
   * Calls `remoteUserId`. Resolves with `{ callId, channel }` once the server's first state event for the
   * new call (normally `calling`) has been reported to listeners.
   */
  async call(remoteUserId, callType = CallType.Video, extension = {}, callTimeoutMillisecond) {
    const body = { remoteUserId, callType, callExtension: { ...extension } };
    if (callTimeoutMillisecond !== undefined && callTimeoutMillisecond !== null) {
      body.callTimeoutMs = callTimeoutMillisecond;
    }
    const r = await this._signal().request('call', body);
    const created = { callId: r.callCreated.callId || '', channel: r.callCreated.channel || '' };
    await this._waitFor(() => this._seen.includes(created.callId));
    return created;
  }

  /** Withdraws the ringing call this user placed. */
  async cancelCall() {
    await this._signal().request('cancelCall', { callId: this._currentCall('') });
  }

  /** Accepts the ringing call from `remoteUserId` ('' = whoever is calling). */
  async accept(remoteUserId = '') {
    await this._signal().request('accept', { callId: this._currentCall(remoteUserId) });
  }

  /** Rejects the ringing call from `remoteUserId` ('' = whoever is calling). */
  async reject(remoteUserId = '', reason = '') {
    await this._signal().request('reject', { callId: this._currentCall(remoteUserId), reason });
  }

  /** Ends the accepted call with `remoteUserId` ('' = the current peer). */
  async hangup(remoteUserId = '', reason = '') {
    await this._signal().request('hangup', { callId: this._currentCall(remoteUserId), reason });
  }

  async renewToken(token) {
    await this._signal().renewToken(token);
  }

  /**
   * Ends the call in progress as CallAPI does (calling → cancel or reject, connecting/connected → hangup),
   * tells the server this user takes no more calls, then goes idle and reports CallEvent.Deinitialize.
   */
  async deinitialize() {
    if (!this._config) return;
    const signal = this._config.signal;
    let failure = null;
    try {
      for (let round = 0; round < 3; round++) {
        const callId = this._callId;
        const state = this.state;
        if (!callId || !isActive(state)) break;
        const caller = !this.eventInfo || this.eventInfo.fromUserId === this._config.userId;
        const ended = () => this._callId !== callId;
        try {
          if (state === CallState.Calling && caller) await signal.request('cancelCall', { callId });
          else if (state === CallState.Calling) {
            await signal.request('reject', { callId, reason: DEINITIALIZE_REASON });
          } else await signal.request('hangup', { callId, reason: DEINITIALIZE_REASON });
          await this._waitFor(ended);
          break;
        } catch (e) {
          if (e.code === ErrorCode.NoSuchCall) {
            await this._waitFor(ended);
            break;
          }
          if (e.code !== ErrorCode.NotAllowed) throw e;
          await this._waitFor(() => ended() || this.state !== state);
        }
      }
      await signal.request('deinitialize', {});
    } catch (e) {
      failure = e;
    }
    if (this._unsubscribe) this._unsubscribe();
    this._unsubscribe = null;
    this._config = null;
    const previous = this.state;
    const info = this.eventInfo || eventInfoOf(null);
    this._reset();
    if (previous !== CallState.Idle) {
      notify(this._listeners, 'onCallStateChanged', CallState.Idle, CallStateReason.None, '', info);
    }
    notify(this._listeners, 'onCallEventChanged', CallEvent.Deinitialize, '');
    this._settle();
    if (failure) throw failure;
  }

  _signal() {
    if (!this._config) throw new SignalError(ErrorCode.NoCall, 'CallApi is not initialized');
    return this._config.signal;
  }

  // The call id to act on for `remoteUserId`: the mirrored call, if it is with that user.
  _currentCall(remoteUserId) {
    const me = this._config ? this._config.userId : '';
    if (!this._callId) throw new SignalError(ErrorCode.NoCall, 'no call in progress');
    const info = this.eventInfo;
    if (remoteUserId && info) {
      const peer = info.fromUserId === me ? info.remoteUserId
        : info.remoteUserId === me ? info.fromUserId : null;
      if (peer !== null && peer !== remoteUserId) {
        throw new SignalError(ErrorCode.NoCall, `no call with ${remoteUserId}`);
      }
    }
    return this._callId;
  }

  _applyLogin(info) {
    if (info.call) {
      this.state = info.call.state;
      this.reason = CallStateReason.None;
      this._callId = isActive(this.state) && info.call.callId ? info.call.callId : null;
      this.eventInfo = info.call.eventInfo;
      if (info.call.callId) this._remember(info.call.callId);
    } else if (info.resumed) {
      if (isActive(this.state)) {
        this.state = CallState.Prepared;
        this.reason = CallStateReason.None;
        this._callId = null;
      }
    } else {
      this.state = CallState.Idle;
      this.reason = CallStateReason.None;
      this._callId = null;
    }
  }

  _remember(callId) {
    if (this._seen.includes(callId)) return;
    this._seen.push(callId);
    if (this._seen.length > 16) this._seen.shift();
  }

  _onEvent(ev) {
    if (ev.callStateChanged) {
      const c = ev.callStateChanged;
      const state = c.state || CallState.Idle;
      const reason = c.reason || CallStateReason.None;
      const callId = c.callId || '';
      // The server's "prepared" after PrepareForCall: apps hear it once, whichever of it and the
      // response came first (onPrepared does the same).
      const redundant = !callId && state === CallState.Prepared && this.state === CallState.Prepared
        && !this._callId;
      if (redundant) {
        this._settle();
        return;
      }
      this.state = state;
      this.reason = reason;
      this._callId = isActive(state) && callId ? callId : null;
      const info = c.eventInfo ? eventInfoOf(c.eventInfo) : (this.eventInfo || eventInfoOf(null));
      if (c.eventInfo && callId) this.eventInfo = info;
      if (callId) this._remember(callId);
      notify(this._listeners, 'onCallStateChanged', state, reason, c.eventReason || '', info);
      this._settle();
    } else if (ev.callEventChanged) {
      const e = ev.callEventChanged;
      // remoteUserRecvCall carries the callee's user extension to the caller while it rings.
      if (e.eventInfo && e.callId && e.callId === this._callId) this.eventInfo = eventInfoOf(e.eventInfo);
      notify(this._listeners, 'onCallEventChanged', e.event || CallEvent.None, e.eventReason || '');
    } else if (ev.callConnected) {
      const c = ev.callConnected;
      notify(this._listeners, 'onCallConnected', c.roomId || '', c.callUserId || '',
        c.currentUserId || '', Number(c.timestampMs || 0));
    } else if (ev.callDisconnected) {
      const d = ev.callDisconnected;
      notify(this._listeners, 'onCallDisconnected', d.roomId || '', d.hangupUserId || '',
        d.currentUserId || '', Number(d.timestampMs || 0), Number(d.durationMs || 0));
    } else if (ev.callError) {
      const e = ev.callError;
      notify(this._listeners, 'onCallError', e.errorEvent || CallErrorEvent.NormalError,
        e.errorType || CallErrorType.Normal, e.errorCode || 0, e.message || '');
    } else if (ev.tokenWillExpire) {
      notify(this._listeners, 'onTokenPrivilegeWillExpire');
    }
  }

  // Resolves waiters whose condition now holds.
  _settle() {
    for (const w of [...this._waiters]) {
      if (w.done()) {
        this._waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve();
      }
    }
  }

  // Waits (bounded) until the state reported to listeners satisfies `done`. Only a misbehaving server
  // makes the bound expire; the command has succeeded either way.
  _waitFor(done) {
    if (done()) return Promise.resolve();
    return new Promise((resolve) => {
      const w = { done, resolve };
      w.timer = setTimeout(() => {
        this._waiters.delete(w);
        console.warn('showcall: the server did not report the state change a command implies');
        resolve();
      }, STATE_CONFIRM_TIMEOUT_MS);
      this._waiters.add(w);
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// MediaClient
// ---------------------------------------------------------------------------------------------------------

/** Codecs offered by default, in preference order (others are left out to keep offers small and common). */
export const DEFAULT_VIDEO_CODECS = Object.freeze(['video/VP8', 'video/H264']);
export const DEFAULT_AUDIO_CODECS = Object.freeze(['audio/opus']);
// The simulcast layers a publisher sends (MediaClient option `simulcast`), best first: the node ranks
// layers in the order the offer lists their rids. A browser may send fewer (it drops layers a small
// camera picture cannot fill); the node forwards each receiver the best one that flows.
export const SIMULCAST_ENCODINGS = Object.freeze([
  Object.freeze({ rid: 'h' }),
  Object.freeze({ rid: 'm', scaleResolutionDownBy: 2 }),
  Object.freeze({ rid: 'l', scaleResolutionDownBy: 4 }),
]);

// Orders a transceiver's codecs: the preferred ones first (in the given order), then their retransmission
// (rtx) entries; everything else is dropped. A browser without setCodecPreferences keeps its default offer.
function preferCodecs(transceiver, kind, preferred) {
  if (!preferred || typeof transceiver.setCodecPreferences !== 'function') return;
  const caps = (RTCRtpReceiver.getCapabilities && RTCRtpReceiver.getCapabilities(kind)) || { codecs: [] };
  const chosen = [];
  for (const mime of preferred) {
    for (const c of caps.codecs) {
      if (c.mimeType.toLowerCase() === mime.toLowerCase()) chosen.push(c);
    }
  }
  if (chosen.length === 0) return;
  if (kind === 'video') chosen.push(...caps.codecs.filter((c) => c.mimeType.toLowerCase() === 'video/rtx'));
  try {
    transceiver.setCodecPreferences(chosen);
  } catch (e) {
    console.warn('showcall: codec preferences refused; the browser default offer is used', e);
  }
}

// The first a=ice-ufrag of an SDP ('' without one).
function iceUfragOf(sdp) {
  const m = /^a=ice-ufrag:(\S+)/m.exec(sdp || '');
  return m ? m[1] : '';
}

function iceGatheringComplete(pc, timeoutMs) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', onChange);
      resolve();
    };
    const onChange = () => {
      if (pc.iceGatheringState === 'complete') finish();
    };
    // Host candidates only (no STUN/TURN configured) gather at once; the bound only guards a stuck browser,
    // and the offer then carries whatever was gathered.
    const timer = setTimeout(finish, timeoutMs);
    pc.addEventListener('icegatheringstatechange', onChange);
  });
}

/**
 * One WebRTC session with the node's media router for one channel membership.
 *
 * join() makes an RTCPeerConnection with one audio and one video transceiver — sendrecv with the local
 * tracks for a broadcaster (and both call participants), recvonly for an audience — gathers every ICE
 * candidate (the node is ICE-lite: the full offer is sent once, no trickle), sends the offer in JoinChannel
 * and applies the node's answer. The node may renegotiate later ('mediaOffer' channel events: when the
 * channel's publisher leaves, its tracks end; when one joins, they come back); the client answers those by
 * itself. When the connection drops ('failed' at once; 'disconnected' that lasts `iceRestartDelayMs`) — the
 * network changed — it restarts ICE over the same signaling session (restartIce()): same tracks, same
 * membership, the call goes on. Listener methods (optional): onRemoteTrack(track, stream),
 * onRemoteTrackRemoved(track, stream), onConnectionStateChange(state), onIceRestarted(count),
 * onIceRestartFailed(error), onVideoPausedForBandwidth(paused) (the node stopped the video it sends this
 * member because the member's bandwidth does not carry even its lowest layer — audio goes on — or, false,
 * started it again: show "video paused for your connection" rather than a frozen picture).
 */
export class MediaClient {
  constructor(signal, options = {}) {
    this.signal = signal;
    this.options = {
      rtcConfiguration: { bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' },
      videoCodecs: DEFAULT_VIDEO_CODECS,
      audioCodecs: DEFAULT_AUDIO_CODECS,
      iceGatheringTimeoutMs: 5000,
      // How long a 'disconnected' connection may stay so before ICE is restarted (browsers often recover
      // from a short 'disconnected' by themselves; 'failed' restarts at once). null: never by itself.
      iceRestartDelayMs: 2000,
      // Publish video as SIMULCAST_ENCODINGS (three layers) rather than one encoding.
      simulcast: true,
      ...options,
    };
    /** ICE restarts the node answered and this client applied. */
    this.iceRestarts = 0;
    /** The node paused this member's video for its bandwidth (audio goes on); false again when it resumes. */
    this.videoPausedForBandwidth = false;
    this._restart = null;
    this._restartTimer = null;
    this.pc = null;
    this.channel = null;
    this.role = null;
    /** What the node said when joining (members, broadcasterPaused, sdpAnswer). */
    this.joined = null;
    this.offerSdp = '';
    /** Whether the node answered with media (false: signaling-only node, or not joined). */
    this.hasMedia = false;
    /** The remote audio and video tracks, as one stream for a <video> element. */
    this.remoteStream = new MediaStream();
    this._listeners = new Set();
    // Renegotiations run one after another, in the order the node sent them.
    this._renegotiation = Promise.resolve();
    this._signalListener = {
      onChannelEvent: (ev) => {
        if (ev.kind === 'videoPausedForBandwidth' && ev.channel === this.channel) {
          this.videoPausedForBandwidth = ev.paused;
          notify(this._listeners, 'onVideoPausedForBandwidth', ev.paused);
          return;
        }
        if (ev.kind !== 'mediaOffer' || ev.channel !== this.channel || !this.pc) return;
        this._renegotiation = this._renegotiation.then(() => this._answer(ev)).catch((e) => {
          console.warn('showcall: media renegotiation failed', e);
        });
      },
    };
  }

  /** Applies one node offer, answers it, and drops the remote tracks the node stopped sending. */
  async _answer(ev) {
    const pc = this.pc;
    if (!pc || ev.channel !== this.channel) return;
    // An offer made before our ICE restart reached the node names the node's old credentials: the node
    // dropped it (and offers again if it must). Applying it would restart ICE the other way.
    if (pc.remoteDescription && iceUfragOf(ev.sdpOffer) !== iceUfragOf(pc.remoteDescription.sdp)) return;
    await pc.setRemoteDescription({ type: 'offer', sdp: ev.sdpOffer });
    await pc.setLocalDescription(await pc.createAnswer());
    await this.signal.answerMedia(ev.channel, pc.localDescription.sdp, ev.revision);
    for (const t of pc.getTransceivers()) {
      const receiving = t.currentDirection === 'recvonly' || t.currentDirection === 'sendrecv';
      const track = t.receiver && t.receiver.track;
      if (!receiving && track && this.remoteStream.getTracks().includes(track)) {
        this.remoteStream.removeTrack(track);
        notify(this._listeners, 'onRemoteTrackRemoved', track, this.remoteStream);
      }
    }
  }

  addListener(listener) {
    this._listeners.add(listener);
  }

  removeListener(listener) {
    return this._listeners.delete(listener);
  }

  /**
   * Joins `channel` as `role` ('broadcaster' | 'audience' or ChannelRole.*). `localStream` is sent when
   * the role is broadcaster. Resolves with the ChannelJoined. A refused join closes the peer connection and
   * rejects with the server's SignalError.
   */
  async join(channel, role, { localStream = null } = {}) {
    if (this.pc) throw new Error(`already joined ${this.channel}; leave first`);
    const wireRole = roleOf(role);
    const sending = wireRole === ChannelRole.Broadcaster && !!localStream;
    const pc = new RTCPeerConnection(
      rtcConfigurationFor(this.options.rtcConfiguration, this.signal.loginInfo),
    );
    this.pc = pc;
    this.channel = channel;
    this.role = wireRole;
    this.remoteStream = new MediaStream();
    this.signal.addListener(this._signalListener);
    pc.ontrack = (ev) => {
      if (this.remoteStream.getTracks().includes(ev.track)) return;
      this.remoteStream.addTrack(ev.track);
      notify(this._listeners, 'onRemoteTrack', ev.track, this.remoteStream);
    };
    pc.onconnectionstatechange = () => {
      notify(this._listeners, 'onConnectionStateChange', pc.connectionState);
      this._watchConnection(pc);
    };
    for (const kind of ['audio', 'video']) {
      const track = sending ? localStream.getTracks().find((t) => t.kind === kind) : null;
      const init = { direction: 'sendrecv', streams: [localStream] };
      if (kind === 'video' && this.options.simulcast) {
        init.sendEncodings = SIMULCAST_ENCODINGS.map((e) => ({ ...e }));
      }
      const transceiver = track ? pc.addTransceiver(track, init) : pc.addTransceiver(kind, { direction: 'recvonly' });
      preferCodecs(transceiver, kind, kind === 'video' ? this.options.videoCodecs : this.options.audioCodecs);
    }
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await iceGatheringComplete(pc, this.options.iceGatheringTimeoutMs);
      /** The offer sent (for diagnostics). */
      this.offerSdp = pc.localDescription.sdp;
      const joined = await this.signal.joinChannel(channel, wireRole, this.offerSdp);
      this.joined = joined;
      if (joined.sdpAnswer) {
        await pc.setRemoteDescription({ type: 'answer', sdp: joined.sdpAnswer });
        this.hasMedia = true;
      } else {
        // The node moves no media (no media router): signaling only.
        console.warn(`showcall: no SDP answer for ${channel}; joined without media`);
        pc.close();
        this.pc = null;
      }
      return joined;
    } catch (e) {
      pc.close();
      this.pc = null;
      this.channel = null;
      this.signal.removeListener(this._signalListener);
      throw e;
    }
  }

  /**
   * The network changed: restarts ICE over the signaling session (RestartIce) — an offer with new ICE
   * credentials (createOffer({ iceRestart: true })), the node's answer applied. Media continues on the same
   * session once the new path's checks get through. Done by itself when the connection drops; an app may
   * call it when it knows sooner (e.g. on the window's 'online' event). One restart at a time (a second call
   * returns the first's promise); it waits for a renegotiation under way. A refusal rolls the offer back
   * and rejects with the server's SignalError.
   */
  restartIce() {
    const pc = this.pc;
    if (!pc || !this.hasMedia) return Promise.reject(new Error('showcall: no media session to restart'));
    if (this._restart) return this._restart;
    const channel = this.channel;
    const restart = this._renegotiation
      .catch(() => {})
      .then(async () => {
        if (pc !== this.pc) return;
        await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
        await iceGatheringComplete(pc, this.options.iceGatheringTimeoutMs);
        let answer;
        try {
          answer = await this.signal.restartIce(channel, pc.localDescription.sdp);
        } catch (e) {
          if (pc.signalingState === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' });
          throw e;
        }
        await pc.setRemoteDescription({ type: 'answer', sdp: answer });
        this.iceRestarts += 1;
        notify(this._listeners, 'onIceRestarted', this.iceRestarts);
      })
      .finally(() => {
        if (this._restart === restart) this._restart = null;
      });
    this._restart = restart;
    // Renegotiations queue behind it, so offer/answer states never interleave.
    this._renegotiation = restart.catch(() => {});
    return restart;
  }

  /** Restarts ICE when `pc`'s connection failed, or stayed disconnected for iceRestartDelayMs. */
  _watchConnection(pc) {
    clearTimeout(this._restartTimer);
    this._restartTimer = null;
    const delay = this.options.iceRestartDelayMs;
    if (pc !== this.pc || delay === null || delay === undefined) return;
    const restart = () => {
      if (pc !== this.pc || !['disconnected', 'failed'].includes(pc.connectionState)) return;
      this.restartIce().catch((e) => {
        console.warn('showcall: ICE restart failed', e);
        notify(this._listeners, 'onIceRestartFailed', e);
      });
    };
    if (pc.connectionState === 'failed') restart();
    else if (pc.connectionState === 'disconnected') this._restartTimer = setTimeout(restart, delay);
  }

  /** The inbound video frames decoded so far (getStats inbound-rtp framesDecoded); 0 without media. */
  async inboundVideoFramesDecoded() {
    if (!this.pc) return 0;
    const stats = await this.pc.getStats();
    let frames = 0;
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && (s.kind === 'video' || s.mediaType === 'video')) {
        frames += s.framesDecoded || 0;
      }
    });
    return frames;
  }

  /** Caps the simulcast layer this member receives (SignalClient.setVideoLayer for this channel). */
  async setVideoLayer(maxLayer) {
    if (!this.channel) throw new Error('not joined');
    await this.signal.setVideoLayer(this.channel, maxLayer);
  }

  /** Stops (false) or resumes (true) sending the local tracks without renegotiating. */
  async setPublishing(on) {
    if (!this.pc) return;
    for (const sender of this.pc.getSenders()) {
      if (!sender.track) continue;
      const params = sender.getParameters();
      if (!params.encodings || params.encodings.length === 0) continue;
      for (const e of params.encodings) e.active = !!on;
      try {
        await sender.setParameters(params);
      } catch (e) {
        console.warn('showcall: could not change publishing', e);
      }
    }
  }

  /**
   * Closes the peer connection and, unless `{ signal: false }`, leaves the channel (a channel the server
   * already closed — a call channel after the call — is not an error).
   */
  async leave({ signal = true } = {}) {
    const channel = this.channel;
    this.signal.removeListener(this._signalListener);
    clearTimeout(this._restartTimer);
    this._restartTimer = null;
    if (this.pc) this.pc.close();
    this.pc = null;
    this.channel = null;
    this.hasMedia = false;
    for (const t of this.remoteStream.getTracks()) t.stop();
    if (signal && channel) {
      try {
        await this.signal.leaveChannel(channel);
      } catch (e) {
        if (e.code !== ErrorCode.NotInChannel && e.code !== ErrorCode.Disconnected) throw e;
      }
    }
  }
}
