/*
 * hyperdht message values (docs/protocol/hyperdht.md §1), byte-compatible with
 * hyperdht 6.34 lib/messages.js. These travel inside the `value` of dht-rpc messages.
 *
 * Decoding is zero-copy (views into the input). Address lists are kept in wire form:
 * `count` entries of 6 bytes (ipv4), 18 bytes (ipv6) or 12 bytes (relayInfo = relayAddress,
 * peerAddress); hsp_dht_addr_from_wire() reads one ipv4 entry. Encoders mirror the JS
 * encoders exactly, including which flags follow presence and which follow non-emptiness.
 */
#ifndef HSP_DHT_HYPER_MESSAGES_H
#define HSP_DHT_HYPER_MESSAGES_H

#include "messages.h"

enum hsp_dht_hyper_command {
  HSP_HYPER_PEER_HANDSHAKE = 0,
  HSP_HYPER_PEER_HOLEPUNCH = 1,
  HSP_HYPER_FIND_PEER = 2,
  HSP_HYPER_LOOKUP = 3,
  HSP_HYPER_ANNOUNCE = 4,
  HSP_HYPER_UNANNOUNCE = 5,
  HSP_HYPER_MUTABLE_PUT = 6,
  HSP_HYPER_MUTABLE_GET = 7,
  HSP_HYPER_IMMUTABLE_PUT = 8,
  HSP_HYPER_IMMUTABLE_GET = 9,
  HSP_HYPER_PLUGIN = 10,
};

enum hsp_dht_hyper_mode {
  HSP_HYPER_FROM_CLIENT = 0,
  HSP_HYPER_FROM_SERVER = 1,
  HSP_HYPER_FROM_RELAY = 2,
  HSP_HYPER_FROM_SECOND_RELAY = 3,
  HSP_HYPER_REPLY = 4,
};

enum hsp_dht_hyper_firewall {
  HSP_HYPER_FIREWALL_UNKNOWN = 0,
  HSP_HYPER_FIREWALL_OPEN = 1,
  HSP_HYPER_FIREWALL_CONSISTENT = 2,
  HSP_HYPER_FIREWALL_RANDOM = 3,
};

enum hsp_dht_hyper_error {
  HSP_HYPER_ERROR_NONE = 0,
  HSP_HYPER_ERROR_ABORTED = 1,
  HSP_HYPER_ERROR_VERSION_MISMATCH = 2,
  HSP_HYPER_ERROR_TRY_LATER = 3,
  HSP_HYPER_ERROR_SEQ_REUSED = 16,
  HSP_HYPER_ERROR_SEQ_TOO_LOW = 17,
};

#define HSP_DHT_RELAY_INFO_SIZE 12

typedef struct hsp_dht_addrs {
  const uint8_t *wire; /* count entries of the list's element size */
  size_t count;
} hsp_dht_addrs_t;

typedef struct hsp_dht_handshake {
  uint64_t mode;
  hsp_bytes_t noise;
  bool has_peer_address, has_relay_address;
  hsp_ipv4_addr_t peer_address, relay_address;
} hsp_dht_handshake_t;

typedef struct hsp_dht_holepunch {
  uint64_t mode;
  uint64_t id;
  hsp_bytes_t payload;
  bool has_peer_address;
  hsp_ipv4_addr_t peer_address;
} hsp_dht_holepunch_t;

/* noisePayload. Encoders always write version 1 (as the reference); a decoded version other
 * than 1 stops decoding: only `version` is then meaningful. */
typedef struct hsp_dht_noise_payload {
  uint64_t version;
  uint64_t error;
  uint64_t firewall;
  bool has_holepunch;
  uint64_t holepunch_id;
  hsp_dht_addrs_t holepunch_relays; /* relayInfo, 12 bytes each */
  hsp_dht_addrs_t addresses4;       /* flag only when non-empty */
  hsp_dht_addrs_t addresses6;       /* 18 bytes each; flag only when non-empty */
  bool has_udx;
  uint64_t udx_version; /* decoded; encoders write 1 */
  bool udx_reusable_socket;
  uint64_t udx_id, udx_seq;
  bool has_secret_stream;
  uint64_t secret_stream_version;
  bool has_relay_through;
  uint64_t relay_through_version;
  const uint8_t *relay_through_public_key; /* 32 */
  const uint8_t *relay_through_token;      /* 32 */
  bool has_relay_addresses;                /* flag follows presence, even if empty */
  hsp_dht_addrs_t relay_addresses;
} hsp_dht_noise_payload_t;

/* holepunchPayload (the plaintext inside PEER_HOLEPUNCH's encrypted payload). */
typedef struct hsp_dht_holepunch_payload {
  bool connected, punching;
  uint64_t error, firewall, round;
  bool has_addresses; /* flag follows presence */
  hsp_dht_addrs_t addresses;
  bool has_remote_address;
  hsp_ipv4_addr_t remote_address;
  const uint8_t *token;        /* 32 or NULL */
  const uint8_t *remote_token; /* 32 or NULL */
} hsp_dht_holepunch_payload_t;

/* peer record = publicKey(32) + array(ipv4) relayAddresses. */
typedef struct hsp_dht_peer {
  const uint8_t *public_key;
  hsp_dht_addrs_t relay_addresses;
} hsp_dht_peer_t;

/* lookupRawReply = array(raw peer) + uint bump (a missing bump decodes as 0; always encoded).
 * `peers` is the concatenation of `peer_count` encoded peer records. */
typedef struct hsp_dht_lookup_reply {
  size_t peer_count;
  hsp_bytes_t peers;
  uint64_t bump;
} hsp_dht_lookup_reply_t;

typedef struct hsp_dht_announce {
  bool has_peer;
  hsp_dht_peer_t peer;
  const uint8_t *refresh;   /* 32 or NULL */
  const uint8_t *signature; /* 64 or NULL */
  uint64_t bump;            /* 0 = absent */
} hsp_dht_announce_t;

typedef struct hsp_dht_mutable_put {
  const uint8_t *public_key; /* 32 */
  uint64_t seq;
  hsp_bytes_t value;
  const uint8_t *signature; /* 64 */
} hsp_dht_mutable_put_t;

/* mutableGetResponse; also the stored form of a mutable value. */
typedef struct hsp_dht_mutable_get_response {
  uint64_t seq;
  hsp_bytes_t value;
  const uint8_t *signature; /* 64 */
} hsp_dht_mutable_get_response_t;

typedef struct hsp_dht_plugin_request {
  hsp_bytes_t plugin; /* UTF-8, not NUL-terminated */
  uint64_t version, command;
  bool has_value;
  hsp_bytes_t value;
} hsp_dht_plugin_request_t;

/* Each codec: *_decode returns 0 or a negative hsp_dht_error (trailing bytes are ignored,
 * as in the reference); *_encode writes into buf and returns the length or a negative
 * error; passing buf == NULL returns the size needed. */
int hsp_dht_handshake_decode(hsp_dht_handshake_t *m, const uint8_t *buf, size_t len);
long hsp_dht_handshake_encode(uint8_t *buf, size_t len, const hsp_dht_handshake_t *m);
int hsp_dht_holepunch_decode(hsp_dht_holepunch_t *m, const uint8_t *buf, size_t len);
long hsp_dht_holepunch_encode(uint8_t *buf, size_t len, const hsp_dht_holepunch_t *m);
int hsp_dht_noise_payload_decode(hsp_dht_noise_payload_t *m, const uint8_t *buf, size_t len);
long hsp_dht_noise_payload_encode(uint8_t *buf, size_t len, const hsp_dht_noise_payload_t *m);
int hsp_dht_holepunch_payload_decode(hsp_dht_holepunch_payload_t *m, const uint8_t *buf,
                                     size_t len);
long hsp_dht_holepunch_payload_encode(uint8_t *buf, size_t len,
                                      const hsp_dht_holepunch_payload_t *m);
int hsp_dht_peer_decode(hsp_dht_peer_t *m, const uint8_t *buf, size_t len);
long hsp_dht_peer_encode(uint8_t *buf, size_t len, const hsp_dht_peer_t *m);
int hsp_dht_lookup_reply_decode(hsp_dht_lookup_reply_t *m, const uint8_t *buf, size_t len);
long hsp_dht_lookup_reply_encode(uint8_t *buf, size_t len, const hsp_dht_lookup_reply_t *m);
/* Iterate the peers of a decoded lookup reply: *offset starts at 0. Returns 0, or
 * HSP_DHT_EMALFORMED at the end / on error. */
int hsp_dht_lookup_reply_next(const hsp_dht_lookup_reply_t *m, size_t *offset,
                              hsp_dht_peer_t *peer);
int hsp_dht_announce_decode(hsp_dht_announce_t *m, const uint8_t *buf, size_t len);
long hsp_dht_announce_encode(uint8_t *buf, size_t len, const hsp_dht_announce_t *m);
int hsp_dht_mutable_put_decode(hsp_dht_mutable_put_t *m, const uint8_t *buf, size_t len);
long hsp_dht_mutable_put_encode(uint8_t *buf, size_t len, const hsp_dht_mutable_put_t *m);
int hsp_dht_mutable_get_response_decode(hsp_dht_mutable_get_response_t *m, const uint8_t *buf,
                                        size_t len);
long hsp_dht_mutable_get_response_encode(uint8_t *buf, size_t len,
                                         const hsp_dht_mutable_get_response_t *m);
int hsp_dht_plugin_request_decode(hsp_dht_plugin_request_t *m, const uint8_t *buf, size_t len);
long hsp_dht_plugin_request_encode(uint8_t *buf, size_t len, const hsp_dht_plugin_request_t *m);
/* mutableSignable = seq uint, value buffer (hashed for signatures, never sent). */
long hsp_dht_mutable_signable_encode(uint8_t *buf, size_t len, uint64_t seq, hsp_bytes_t value);

/* Decode `in` with the codec named as in messages.js ("handshake", "holepunch",
 * "noisePayload", "holepunchPayload", "peer", "lookupRawReply", "announce",
 * "mutablePutRequest", "mutableGetResponse", "pluginRequest") and encode it again into
 * out. Used by the differential tests and fuzzers. Returns the length or an error. */
long hsp_dht_hyper_roundtrip(const char *codec, const uint8_t *in, size_t len, uint8_t *out,
                             size_t cap);

#endif
