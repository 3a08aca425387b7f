// Helpers shared by the demo pages (host.html, viewer.html, live.html). Not part of the SDK: apps write
// their own UI; this only shows the SDK in use. Element ids are documented in sdk/web/README.md.

import { CallState, ChannelRole, MediaClient, SignalClient, isActive } from '../showcall.js';

export const params = new URLSearchParams(location.search);

export const $ = (id) => document.getElementById(id);

export function show(id, visible) {
  $(id).hidden = !visible;
}

/** Appends a line to #log (newest last) and to the console. */
export function log(...parts) {
  const line = parts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join(' ');
  const time = new Date().toISOString().slice(11, 23);
  const el = $('log');
  if (el) {
    el.textContent += `${time} ${line}\n`;
    el.scrollTop = el.scrollHeight;
  }
  console.log(`[showcall demo] ${line}`);
}

/** Shows a status line in #status; `error` marks it (data-error) so tests and people can tell. */
export function status(text, error = false) {
  const el = $('status');
  el.textContent = text;
  if (error) el.dataset.error = '1';
  else delete el.dataset.error;
  if (error) log('error:', text);
}

/** The signaling URL: ?signal=... or this page's own host (ws: for http:, wss: for https:). */
export function signalUrl() {
  if (params.get('signal')) return params.get('signal');
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/signal`;
}

/**
 * A token for `uid`: ?token=... when given, otherwise from the node's demo route (served only by a node
 * running with the built-in demo app secret; a production node answers 404).
 */
export async function fetchToken(uid, publish) {
  if (params.get('token')) return params.get('token');
  const r = await fetch(`/demo/token?uid=${encodeURIComponent(uid)}&publish=${publish ? 1 : 0}`,
    { cache: 'no-store' });
  if (r.status === 404) {
    throw new Error('this node mints no demo tokens (it has its own app secrets): '
      + 'open the page with ?token=<a token from your business server>');
  }
  if (!r.ok) throw new Error(`token refused: ${(await r.text()).trim()}`);
  return (await r.json()).token;
}

/** Connects, logs in and keeps the token fresh (renewed when the server warns it will expire). */
export async function connectAndLogin(uid, { publish }) {
  const signal = await SignalClient.connect(signalUrl());
  const login = await signal.login(await fetchToken(uid, publish));
  signal.addListener({
    onTokenPrivilegeWillExpire: async () => {
      try {
        await signal.renewToken(await fetchToken(uid, publish));
        log('token renewed');
      } catch (e) {
        log('token renewal failed:', String(e));
      }
    },
    onSessionClosed: (reason, message) => status(`session closed: ${reason} ${message}`, true),
    onDisconnected: (reason) => status(`disconnected: ${reason}`, true),
  });
  status(`logged in as ${login.userId}`);
  log('logged in', { userId: login.userId, appId: login.appId, resumed: login.resumed });
  return { signal, login };
}

/** The local camera and microphone. */
export async function openCamera() {
  return navigator.mediaDevices.getUserMedia({
    audio: true,
    video: { width: { ideal: 640 }, height: { ideal: 360 } },
  });
}

/** Plays `stream` in a <video>; falls back to muted when the browser refuses autoplay with sound. */
export function attach(video, stream, { muted = false } = {}) {
  video.srcObject = stream;
  video.muted = muted;
  video.play().catch(() => {
    video.muted = true;
    video.play().catch(() => {});
  });
}

/** `CALL_STATE_CONNECTED` → `connected`. */
export const shortName = (value, prefix) => (value || '').replace(prefix, '').toLowerCase();

/** Shows the call state in #call-state (data-state = idle|prepared|calling|connecting|connected|failed). */
export function showCallState(state, reason) {
  const el = $('call-state');
  const name = shortName(state, 'CALL_STATE_');
  el.dataset.state = name;
  el.textContent = reason && reason !== 'CALL_STATE_REASON_NONE'
    ? `${name} (${shortName(reason, 'CALL_STATE_REASON_').replaceAll('_', ' ')})`
    : name;
}

const LIVE_TEXT = {
  offline: 'waiting for the host',
  live: 'live',
  paused: 'host in a private call',
  resumed: 'host back',
};

/** Shows the live room's state in #live-state (data-state = offline|live|paused|resumed). */
export function showLiveState(state, text) {
  const el = $('live-state');
  el.dataset.state = state;
  el.textContent = text || LIVE_TEXT[state];
  const overlay = $('live-overlay');
  if (overlay) {
    overlay.hidden = state === 'live' || state === 'resumed';
    overlay.textContent = LIVE_TEXT[state];
  }
}

/**
 * Follows a live room as its audience sees it: the broadcaster present, paused for a private call, back.
 * Calls `onState(state)` with offline | live | paused | resumed.
 */
export function followLiveRoom(signal, channel, joined, onState) {
  const broadcaster = joined.members.find((m) => m.role === ChannelRole.Broadcaster);
  let current = joined.broadcasterPaused ? 'paused' : broadcaster ? 'live' : 'offline';
  let host = broadcaster ? broadcaster.userId : null;
  onState(current);
  signal.addListener({
    onChannelEvent: (ev) => {
      if (ev.channel !== channel) return;
      log('channel event', ev.raw);
      let next = current;
      if (ev.kind === 'memberJoined' && ev.member.role === ChannelRole.Broadcaster) {
        host = ev.member.userId;
        next = ev.member.publishState === 'PUBLISH_STATE_PAUSED' ? 'paused' : 'live';
      } else if (ev.kind === 'memberLeft' && ev.userId === host) {
        next = 'offline';
      } else if (ev.kind === 'broadcasterPaused') {
        next = 'paused';
      } else if (ev.kind === 'broadcasterResumed') {
        next = 'resumed';
      }
      if (next !== current) {
        current = next;
        onState(current);
      }
    },
  });
}

/**
 * The media of one call: joins the call's private channel with the local camera when the call reaches
 * `connecting`, shows both videos, and closes when the call ends. Guards against the call ending while
 * the join is still under way.
 */
export class CallMedia {
  constructor(signal, api) {
    this.signal = signal;
    this.api = api;
    this.media = null;
  }

  async start(channel, callId, localStream) {
    if (this.media) return;
    const media = new MediaClient(this.signal);
    this.media = media;
    window.demo.call = media;
    attach($('local-video'), localStream, { muted: true });
    show('call-view', true);
    try {
      await media.join(channel, 'broadcaster', { localStream });
      log(`joined call channel ${channel}`, mediaNote(media));
      attach($('remote-video'), media.remoteStream);
    } catch (e) {
      log('joining the call channel failed:', String(e));
    }
    if (this.media !== media || this.api.getCallId() !== callId) await media.leave({ signal: false });
  }

  async stop() {
    const media = this.media;
    this.media = null;
    show('call-view', false);
    $('remote-video').srcObject = null;
    // The server closes the call channel when the call ends; closing the peer connection is enough.
    if (media) await media.leave({ signal: false });
  }
}

/** "with media" or why not, and the offer's size (it must fit the node's max_frame_bytes). */
export function mediaNote(media) {
  const size = `offer ${media.offerSdp.length} bytes`;
  return media.hasMedia ? `with media (${size})` : `without media: the node answered no SDP (${size})`;
}

/** Describes how a call ended for #last-call. */
export function describeEnd(reason, eventReason) {
  const why = shortName(reason, 'CALL_STATE_REASON_').replaceAll('_', ' ');
  return `call ended: ${why}${eventReason ? ` ("${eventReason}")` : ''}`;
}

/**
 * What tests (and curious people, from the console) read: `window.demo.framesDecoded('live' | 'call')`
 * resolves with the inbound video frames decoded so far in that view; `mediaAnswered(which)` says whether
 * the node answered that join with SDP (false: a node without a media router); `mediaStatus(which)` says
 * where that media session stands; `videoSize(which)` the last decoded frame's size, `sentLayers(which)`
 * the simulcast layers sent, and `setVideoLayer(which, layer)` caps the layer received.
 */
window.demo = {
  live: null,
  call: null,
  async framesDecoded(which) {
    const m = this[which];
    return m ? m.inboundVideoFramesDecoded() : 0;
  },
  // The size of the last video frame that view decoded ({ width, height, framesDecoded }; zeros before one).
  async videoSize(which) {
    const m = this[which];
    const size = { width: 0, height: 0, framesDecoded: 0 };
    if (!m || !m.pc) return size;
    (await m.pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        size.width = s.frameWidth || 0;
        size.height = s.frameHeight || 0;
        size.framesDecoded = s.framesDecoded || 0;
      }
    });
    return size;
  },
  // Caps the simulcast layer that view receives (VideoLayer.* name, e.g. 'VIDEO_LAYER_LOW').
  async setVideoLayer(which, layer) {
    await this[which].setVideoLayer(layer);
  },
  // The rids of the video layers this page sends, with their frame sizes (outbound-rtp).
  async sentLayers(which) {
    const m = this[which];
    const layers = [];
    if (!m || !m.pc) return layers;
    (await m.pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        layers.push({ rid: s.rid || '', width: s.frameWidth || 0, framesSent: s.framesSent || 0 });
      }
    });
    return layers;
  },
  mediaAnswered(which) {
    const m = this[which];
    return !!(m && m.hasMedia);
  },
  // none | joining | no-answer (joined, but the node answered without SDP) | media:<connectionState> | left
  mediaStatus(which) {
    const m = this[which];
    if (!m) return 'none';
    if (m.pc && m.hasMedia) return `media:${m.pc.connectionState}`;
    if (m.channel && m.joined) return 'no-answer';
    if (m.channel) return 'joining';
    return 'left';
  },
  isActive,
  CallState,
};
