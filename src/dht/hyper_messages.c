#include "hyper_messages.h"

#include <string.h>

/* One writer serves both sizing (buf == NULL) and encoding, so every layout is written once. */
static void w_uint(hsp_cenc_t *s, uint64_t v) {
  if (s->buf) hsp_cenc_encode_uint(s, v);
  else if (v > HSP_CENC_MAX_SAFE_INTEGER) s->error = HSP_CENC_ERANGE;
  else hsp_cenc_preencode_uint(s, v);
}
static void w_fixed(hsp_cenc_t *s, const uint8_t *b, size_t n) {
  if (s->buf) hsp_cenc_encode_fixed(s, b, n);
  else hsp_cenc_preencode_fixed(s, n);
}
static void w_buffer(hsp_cenc_t *s, hsp_bytes_t b) {
  w_uint(s, b.len);
  w_fixed(s, b.data, b.len);
}
static void w_addr(hsp_cenc_t *s, const hsp_ipv4_addr_t *a) {
  uint8_t wire[6];
  hsp_dht_addr_to_wire(wire, a);
  w_fixed(s, wire, 6);
}
static void w_addrs(hsp_cenc_t *s, hsp_dht_addrs_t a, size_t elem) {
  if (a.count > HSP_CENC_MAX_ARRAY) {
    s->error = HSP_CENC_ERANGE;
    return;
  }
  w_uint(s, a.count);
  w_fixed(s, a.wire, a.count * elem);
}

static hsp_dht_addrs_t r_addrs(hsp_cenc_t *s, size_t elem) {
  hsp_dht_addrs_t a = {NULL, 0};
  a.count = hsp_cenc_decode_array_length(s, elem);
  a.wire = hsp_cenc_decode_fixed(s, a.count * elem);
  return a;
}
static hsp_ipv4_addr_t r_addr(hsp_cenc_t *s) { return hsp_cenc_decode_ipv4_addr(s); }

typedef void (*writer_fn)(hsp_cenc_t *s, const void *m);

static long run_writer(writer_fn fn, uint8_t *buf, size_t len, const void *m) {
  hsp_cenc_t size = hsp_cenc_for_size();
  fn(&size, m);
  if (!hsp_cenc_ok(&size) || size.end > HSP_DHT_MAX_DATAGRAM) return HSP_DHT_ERANGE;
  if (!buf) return (long)size.end;
  if (size.end > len) return HSP_DHT_ENOBUFS;
  hsp_cenc_t s = hsp_cenc_for_encode(buf, len);
  fn(&s, m);
  if (!hsp_cenc_ok(&s)) return s.error == HSP_CENC_ETRUNCATED ? HSP_DHT_ENOBUFS : HSP_DHT_ERANGE;
  return (long)s.start;
}

static int done(const hsp_cenc_t *s) { return hsp_cenc_ok(s) ? 0 : HSP_DHT_EMALFORMED; }

/* handshake: flags uint (1 peerAddress, 2 relayAddress), mode uint, noise buffer, [peer], [relay] */
static void handshake_w(hsp_cenc_t *s, const void *p) {
  const hsp_dht_handshake_t *m = p;
  w_uint(s, (m->has_peer_address ? 1u : 0u) | (m->has_relay_address ? 2u : 0u));
  w_uint(s, m->mode);
  w_buffer(s, m->noise);
  if (m->has_peer_address) w_addr(s, &m->peer_address);
  if (m->has_relay_address) w_addr(s, &m->relay_address);
}
long hsp_dht_handshake_encode(uint8_t *buf, size_t len, const hsp_dht_handshake_t *m) {
  return run_writer(handshake_w, buf, len, m);
}
int hsp_dht_handshake_decode(hsp_dht_handshake_t *m, const uint8_t *buf, size_t len) {
  memset(m, 0, sizeof(*m));
  hsp_cenc_t s = hsp_cenc_for_decode(buf, len);
  uint64_t flags = hsp_cenc_decode_uint(&s);
  m->mode = hsp_cenc_decode_uint(&s);
  m->noise = hsp_cenc_decode_buffer(&s);
  if ((m->has_peer_address = flags & 1)) m->peer_address = r_addr(&s);
  if ((m->has_relay_address = flags & 2)) m->relay_address = r_addr(&s);
  return done(&s);
}

/* holepunch: flags uint (1 peerAddress), mode uint, id uint, payload buffer, [peer] */
static void holepunch_w(hsp_cenc_t *s, const void *p) {
  const hsp_dht_holepunch_t *m = p;
  w_uint(s, m->has_peer_address ? 1 : 0);
  w_uint(s, m->mode);
  w_uint(s, m->id);
  w_buffer(s, m->payload);
  if (m->has_peer_address) w_addr(s, &m->peer_address);
}
long hsp_dht_holepunch_encode(uint8_t *buf, size_t len, const hsp_dht_holepunch_t *m) {
  return run_writer(holepunch_w, buf, len, m);
}
int hsp_dht_holepunch_decode(hsp_dht_holepunch_t *m, const uint8_t *buf, size_t len) {
  memset(m, 0, sizeof(*m));
  hsp_cenc_t s = hsp_cenc_for_decode(buf, len);
  uint64_t flags = hsp_cenc_decode_uint(&s);
  m->mode = hsp_cenc_decode_uint(&s);
  m->id = hsp_cenc_decode_uint(&s);
  m->payload = hsp_cenc_decode_buffer(&s);
  if ((m->has_peer_address = flags & 1)) m->peer_address = r_addr(&s);
  return done(&s);
}

/* noisePayload: version, flags, error, firewall, then the flagged sections in bit order. */
static void noise_payload_w(hsp_cenc_t *s, const void *p) {
  const hsp_dht_noise_payload_t *m = p;
  bool a4 = m->addresses4.count > 0, a6 = m->addresses6.count > 0;
  uint64_t flags = (m->has_holepunch ? 1u : 0u) | (a4 ? 2u : 0u) | (a6 ? 4u : 0u) |
                   (m->has_udx ? 8u : 0u) | (m->has_secret_stream ? 16u : 0u) |
                   (m->has_relay_through ? 32u : 0u) | (m->has_relay_addresses ? 64u : 0u);
  w_uint(s, 1);
  w_uint(s, flags);
  w_uint(s, m->error);
  w_uint(s, m->firewall);
  if (m->has_holepunch) {
    w_uint(s, m->holepunch_id);
    w_addrs(s, m->holepunch_relays, HSP_DHT_RELAY_INFO_SIZE);
  }
  if (a4) w_addrs(s, m->addresses4, HSP_CENC_IPV4_ADDR_SIZE);
  if (a6) w_addrs(s, m->addresses6, HSP_CENC_IPV6_ADDR_SIZE);
  if (m->has_udx) {
    w_uint(s, 1);
    w_uint(s, m->udx_reusable_socket ? 1 : 0);
    w_uint(s, m->udx_id);
    w_uint(s, m->udx_seq);
  }
  if (m->has_secret_stream) w_uint(s, 1);
  if (m->has_relay_through) {
    w_uint(s, 1);
    w_uint(s, 0);
    w_fixed(s, m->relay_through_public_key, 32);
    w_fixed(s, m->relay_through_token, 32);
  }
  if (m->has_relay_addresses) w_addrs(s, m->relay_addresses, HSP_CENC_IPV4_ADDR_SIZE);
}
long hsp_dht_noise_payload_encode(uint8_t *buf, size_t len, const hsp_dht_noise_payload_t *m) {
  return run_writer(noise_payload_w, buf, len, m);
}
int hsp_dht_noise_payload_decode(hsp_dht_noise_payload_t *m, const uint8_t *buf, size_t len) {
  memset(m, 0, sizeof(*m));
  hsp_cenc_t s = hsp_cenc_for_decode(buf, len);
  m->version = hsp_cenc_decode_uint(&s);
  if (!hsp_cenc_ok(&s)) return HSP_DHT_EMALFORMED;
  if (m->version != 1) return 0; /* the caller answers VERSION_MISMATCH */
  uint64_t flags = hsp_cenc_decode_uint(&s);
  m->error = hsp_cenc_decode_uint(&s);
  m->firewall = hsp_cenc_decode_uint(&s);
  if ((m->has_holepunch = flags & 1)) {
    m->holepunch_id = hsp_cenc_decode_uint(&s);
    m->holepunch_relays = r_addrs(&s, HSP_DHT_RELAY_INFO_SIZE);
  }
  if (flags & 2) m->addresses4 = r_addrs(&s, HSP_CENC_IPV4_ADDR_SIZE);
  if (flags & 4) m->addresses6 = r_addrs(&s, HSP_CENC_IPV6_ADDR_SIZE);
  if ((m->has_udx = flags & 8)) {
    m->udx_version = hsp_cenc_decode_uint(&s);
    m->udx_reusable_socket = (hsp_cenc_decode_uint(&s) & 1) != 0;
    m->udx_id = hsp_cenc_decode_uint(&s);
    m->udx_seq = hsp_cenc_decode_uint(&s);
  }
  if ((m->has_secret_stream = flags & 16)) m->secret_stream_version = hsp_cenc_decode_uint(&s);
  if ((m->has_relay_through = flags & 32)) {
    m->relay_through_version = hsp_cenc_decode_uint(&s);
    hsp_cenc_decode_uint(&s); /* flags, unused in v1 */
    m->relay_through_public_key = hsp_cenc_decode_fixed(&s, 32);
    m->relay_through_token = hsp_cenc_decode_fixed(&s, 32);
  }
  if ((m->has_relay_addresses = flags & 64))
    m->relay_addresses = r_addrs(&s, HSP_CENC_IPV4_ADDR_SIZE);
  return done(&s);
}

/* holepunchPayload: flags, error, firewall, round, [addresses] [remoteAddress] [token] [remoteToken] */
static void holepunch_payload_w(hsp_cenc_t *s, const void *p) {
  const hsp_dht_holepunch_payload_t *m = p;
  w_uint(s, (m->connected ? 1u : 0u) | (m->punching ? 2u : 0u) | (m->has_addresses ? 4u : 0u) |
                (m->has_remote_address ? 8u : 0u) | (m->token ? 16u : 0u) |
                (m->remote_token ? 32u : 0u));
  w_uint(s, m->error);
  w_uint(s, m->firewall);
  w_uint(s, m->round);
  if (m->has_addresses) w_addrs(s, m->addresses, HSP_CENC_IPV4_ADDR_SIZE);
  if (m->has_remote_address) w_addr(s, &m->remote_address);
  if (m->token) w_fixed(s, m->token, 32);
  if (m->remote_token) w_fixed(s, m->remote_token, 32);
}
long hsp_dht_holepunch_payload_encode(uint8_t *buf, size_t len,
                                      const hsp_dht_holepunch_payload_t *m) {
  return run_writer(holepunch_payload_w, buf, len, m);
}
int hsp_dht_holepunch_payload_decode(hsp_dht_holepunch_payload_t *m, const uint8_t *buf,
                                     size_t len) {
  memset(m, 0, sizeof(*m));
  hsp_cenc_t s = hsp_cenc_for_decode(buf, len);
  uint64_t flags = hsp_cenc_decode_uint(&s);
  m->error = hsp_cenc_decode_uint(&s);
  m->firewall = hsp_cenc_decode_uint(&s);
  m->round = hsp_cenc_decode_uint(&s);
  m->connected = flags & 1;
  m->punching = flags & 2;
  if ((m->has_addresses = flags & 4)) m->addresses = r_addrs(&s, HSP_CENC_IPV4_ADDR_SIZE);
  if ((m->has_remote_address = flags & 8)) m->remote_address = r_addr(&s);
  if (flags & 16) m->token = hsp_cenc_decode_fixed(&s, 32);
  if (flags & 32) m->remote_token = hsp_cenc_decode_fixed(&s, 32);
  return done(&s);
}

/* peer = publicKey fixed32, relayAddresses array(ipv4) */
static void peer_w(hsp_cenc_t *s, const void *p) {
  const hsp_dht_peer_t *m = p;
  w_fixed(s, m->public_key, 32);
  w_addrs(s, m->relay_addresses, HSP_CENC_IPV4_ADDR_SIZE);
}
static void peer_r(hsp_cenc_t *s, hsp_dht_peer_t *m) {
  m->public_key = hsp_cenc_decode_fixed(s, 32);
  m->relay_addresses = r_addrs(s, HSP_CENC_IPV4_ADDR_SIZE);
}
long hsp_dht_peer_encode(uint8_t *buf, size_t len, const hsp_dht_peer_t *m) {
  return run_writer(peer_w, buf, len, m);
}
int hsp_dht_peer_decode(hsp_dht_peer_t *m, const uint8_t *buf, size_t len) {
  memset(m, 0, sizeof(*m));
  hsp_cenc_t s = hsp_cenc_for_decode(buf, len);
  peer_r(&s, m);
  return done(&s);
}

/* lookupRawReply = array(peer) (written from already-encoded records), bump uint */
static void lookup_reply_w(hsp_cenc_t *s, const void *p) {
  const hsp_dht_lookup_reply_t *m = p;
  w_uint(s, m->peer_count);
  w_fixed(s, m->peers.data, m->peers.len);
  w_uint(s, m->bump);
}
long hsp_dht_lookup_reply_encode(uint8_t *buf, size_t len, const hsp_dht_lookup_reply_t *m) {
  return run_writer(lookup_reply_w, buf, len, m);
}
int hsp_dht_lookup_reply_decode(hsp_dht_lookup_reply_t *m, const uint8_t *buf, size_t len) {
  memset(m, 0, sizeof(*m));
  hsp_cenc_t s = hsp_cenc_for_decode(buf, len);
  m->peer_count = hsp_cenc_decode_array_length(&s, 33);
  size_t begin = s.start;
  for (size_t i = 0; i < m->peer_count && hsp_cenc_ok(&s); i++) {
    hsp_dht_peer_t peer;
    peer_r(&s, &peer);
  }
  if (!hsp_cenc_ok(&s)) return HSP_DHT_EMALFORMED;
  m->peers = (hsp_bytes_t){buf + begin, s.start - begin};
  m->bump = s.start < s.end ? hsp_cenc_decode_uint(&s) : 0;
  return done(&s);
}
int hsp_dht_lookup_reply_next(const hsp_dht_lookup_reply_t *m, size_t *offset,
                              hsp_dht_peer_t *peer) {
  if (*offset >= m->peers.len) return HSP_DHT_EMALFORMED;
  hsp_cenc_t s = hsp_cenc_for_decode(m->peers.data, m->peers.len);
  s.start = *offset;
  peer_r(&s, peer);
  if (!hsp_cenc_ok(&s)) return HSP_DHT_EMALFORMED;
  *offset = s.start;
  return 0;
}

/* announce: flags (1 peer, 2 refresh, 4 signature, 8 bump), [peer] [refresh] [signature] [bump] */
static void announce_w(hsp_cenc_t *s, const void *p) {
  const hsp_dht_announce_t *m = p;
  w_uint(s, (m->has_peer ? 1u : 0u) | (m->refresh ? 2u : 0u) | (m->signature ? 4u : 0u) |
                (m->bump ? 8u : 0u));
  if (m->has_peer) peer_w(s, &m->peer);
  if (m->refresh) w_fixed(s, m->refresh, 32);
  if (m->signature) w_fixed(s, m->signature, 64);
  if (m->bump) w_uint(s, m->bump);
}
long hsp_dht_announce_encode(uint8_t *buf, size_t len, const hsp_dht_announce_t *m) {
  return run_writer(announce_w, buf, len, m);
}
int hsp_dht_announce_decode(hsp_dht_announce_t *m, const uint8_t *buf, size_t len) {
  memset(m, 0, sizeof(*m));
  hsp_cenc_t s = hsp_cenc_for_decode(buf, len);
  uint64_t flags = hsp_cenc_decode_uint(&s);
  if ((m->has_peer = flags & 1)) peer_r(&s, &m->peer);
  if (flags & 2) m->refresh = hsp_cenc_decode_fixed(&s, 32);
  if (flags & 4) m->signature = hsp_cenc_decode_fixed(&s, 64);
  if (flags & 8) m->bump = hsp_cenc_decode_uint(&s);
  return done(&s);
}

static void mutable_put_w(hsp_cenc_t *s, const void *p) {
  const hsp_dht_mutable_put_t *m = p;
  w_fixed(s, m->public_key, 32);
  w_uint(s, m->seq);
  w_buffer(s, m->value);
  w_fixed(s, m->signature, 64);
}
long hsp_dht_mutable_put_encode(uint8_t *buf, size_t len, const hsp_dht_mutable_put_t *m) {
  return run_writer(mutable_put_w, buf, len, m);
}
int hsp_dht_mutable_put_decode(hsp_dht_mutable_put_t *m, const uint8_t *buf, size_t len) {
  memset(m, 0, sizeof(*m));
  hsp_cenc_t s = hsp_cenc_for_decode(buf, len);
  m->public_key = hsp_cenc_decode_fixed(&s, 32);
  m->seq = hsp_cenc_decode_uint(&s);
  m->value = hsp_cenc_decode_buffer(&s);
  m->signature = hsp_cenc_decode_fixed(&s, 64);
  return done(&s);
}

static void mutable_get_w(hsp_cenc_t *s, const void *p) {
  const hsp_dht_mutable_get_response_t *m = p;
  w_uint(s, m->seq);
  w_buffer(s, m->value);
  w_fixed(s, m->signature, 64);
}
long hsp_dht_mutable_get_response_encode(uint8_t *buf, size_t len,
                                         const hsp_dht_mutable_get_response_t *m) {
  return run_writer(mutable_get_w, buf, len, m);
}
int hsp_dht_mutable_get_response_decode(hsp_dht_mutable_get_response_t *m, const uint8_t *buf,
                                        size_t len) {
  memset(m, 0, sizeof(*m));
  hsp_cenc_t s = hsp_cenc_for_decode(buf, len);
  m->seq = hsp_cenc_decode_uint(&s);
  m->value = hsp_cenc_decode_buffer(&s);
  m->signature = hsp_cenc_decode_fixed(&s, 64);
  return done(&s);
}

struct signable { uint64_t seq; hsp_bytes_t value; };
static void signable_w(hsp_cenc_t *s, const void *p) {
  const struct signable *m = p;
  w_uint(s, m->seq);
  w_buffer(s, m->value);
}
long hsp_dht_mutable_signable_encode(uint8_t *buf, size_t len, uint64_t seq, hsp_bytes_t value) {
  struct signable m = {seq, value};
  return run_writer(signable_w, buf, len, &m);
}

/* pluginRequest: plugin string, version uint, command uint, flags uint (1 value), [value] */
static void plugin_w(hsp_cenc_t *s, const void *p) {
  const hsp_dht_plugin_request_t *m = p;
  w_buffer(s, m->plugin);
  w_uint(s, m->version);
  w_uint(s, m->command);
  w_uint(s, m->has_value ? 1 : 0);
  if (m->has_value) w_buffer(s, m->value);
}
long hsp_dht_plugin_request_encode(uint8_t *buf, size_t len, const hsp_dht_plugin_request_t *m) {
  return run_writer(plugin_w, buf, len, m);
}
int hsp_dht_plugin_request_decode(hsp_dht_plugin_request_t *m, const uint8_t *buf, size_t len) {
  memset(m, 0, sizeof(*m));
  hsp_cenc_t s = hsp_cenc_for_decode(buf, len);
  m->plugin = hsp_cenc_decode_string(&s);
  m->version = hsp_cenc_decode_uint(&s);
  m->command = hsp_cenc_decode_uint(&s);
  uint64_t flags = hsp_cenc_decode_uint(&s);
  if ((m->has_value = flags & 1)) m->value = hsp_cenc_decode_buffer(&s);
  return done(&s);
}

#define ROUNDTRIP(name, type, prefix)                                                         \
  if (strcmp(codec, name) == 0) {                                                             \
    type m;                                                                                   \
    int err = prefix##_decode(&m, in, len);                                                   \
    return err ? err : prefix##_encode(out, cap, &m);                                         \
  }

long hsp_dht_hyper_roundtrip(const char *codec, const uint8_t *in, size_t len, uint8_t *out,
                             size_t cap) {
  ROUNDTRIP("handshake", hsp_dht_handshake_t, hsp_dht_handshake)
  ROUNDTRIP("holepunch", hsp_dht_holepunch_t, hsp_dht_holepunch)
  ROUNDTRIP("holepunchPayload", hsp_dht_holepunch_payload_t, hsp_dht_holepunch_payload)
  ROUNDTRIP("peer", hsp_dht_peer_t, hsp_dht_peer)
  ROUNDTRIP("lookupRawReply", hsp_dht_lookup_reply_t, hsp_dht_lookup_reply)
  ROUNDTRIP("announce", hsp_dht_announce_t, hsp_dht_announce)
  ROUNDTRIP("mutablePutRequest", hsp_dht_mutable_put_t, hsp_dht_mutable_put)
  ROUNDTRIP("mutableGetResponse", hsp_dht_mutable_get_response_t, hsp_dht_mutable_get_response)
  ROUNDTRIP("pluginRequest", hsp_dht_plugin_request_t, hsp_dht_plugin_request)
  if (strcmp(codec, "noisePayload") == 0) {
    hsp_dht_noise_payload_t m;
    int err = hsp_dht_noise_payload_decode(&m, in, len);
    if (err) return err;
    if (m.version != 1) return HSP_DHT_EVERSION;
    return hsp_dht_noise_payload_encode(out, cap, &m);
  }
  return HSP_DHT_EINVAL;
}
