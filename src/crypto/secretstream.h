/*
 * @hyperswarm/secret-stream 6.x, sans-I/O: the caller pushes received transport bytes in and
 * gets plaintext messages out through a callback; ciphertext to send leaves through a small
 * write callback (or, zero-copy, is sealed in the caller's own buffer). The transport (TCP,
 * a UDX stream, a pipe) and the clock belong to the caller.
 *
 * Wire format (every frame on the transport):
 *
 *   frame  = len:uint24-LE ‖ body[len]
 *   XX     = the three Noise XX messages, one per frame (only without a prior handshake)
 *   header = body of 56 bytes: streamId(hash, sender's role)(32) ‖ secretstream header(24)
 *   data   = crypto_secretstream_xchacha20poly1305_push(msg, TAG_MESSAGE): 1 + len + 16 bytes
 *
 * Each direction starts with its header frame; data frames follow, each one a message whose
 * boundaries are preserved. Empty messages are keepalives. There is no encrypted end marker:
 * ending is the transport's business (hsp_ss_end / hsp_ss_recv_end).
 *
 * Errors are sticky and fail closed: after any failure the stream is destroyed, its keys are
 * wiped, and every later call returns HSP_CRYPTO_EDESTROYED (hsp_ss_error gives the cause).
 *
 * Use (hyperdht over UDX): run the IK handshake with noise.h, then
 *   hsp_ss_config_t cfg = {.is_initiator = r.is_initiator, .handshake = &r,
 *                          .keepalive_ms = HSP_SS_DEFAULT_KEEPALIVE_MS,
 *                          .write = udx_write, .on_message = deliver, .user = conn};
 *   hsp_ss_init(&ss, &cfg); ... once the UDX stream is connected: hsp_ss_start(&ss, now);
 *   UDX data -> hsp_ss_recv; UDX end -> hsp_ss_recv_end; timer at hsp_ss_next_deadline ->
 *   hsp_ss_tick; UDX datagrams -> hsp_ss_open_datagram. Standalone over TCP (no prior
 *   handshake): set .keypair instead of .handshake and the XX handshake runs in-band.
 * tests/crypto/ss_peer.c is a complete libuv TCP example.
 */
#ifndef HSP_CRYPTO_SECRETSTREAM_H
#define HSP_CRYPTO_SECRETSTREAM_H

#include "crypto.h"
#include "noise.h"

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HSP_SS_ABYTES 17     /* crypto_secretstream_xchacha20poly1305_ABYTES */
#define HSP_SS_HEADERBYTES 24
#define HSP_SS_IDHEADERBYTES (32 + HSP_SS_HEADERBYTES)
#define HSP_SS_MAX_FRAME 0xffffffu /* largest body a uint24 length can describe */
/* Largest plaintext of one message (the reference's "atomic write" limit). */
#define HSP_SS_MAX_MESSAGE (HSP_SS_MAX_FRAME - HSP_SS_ABYTES)
/* A sealed frame is the plaintext plus this many bytes; the plaintext sits at offset
 * HSP_SS_PLAINTEXT_OFFSET of the frame buffer (see hsp_ss_seal). */
#define HSP_SS_FRAME_OVERHEAD (3 + HSP_SS_ABYTES)
#define HSP_SS_PLAINTEXT_OFFSET 4
/* hyperdht's connectionKeepAlive. */
#define HSP_SS_DEFAULT_KEEPALIVE_MS 5000

/* Unordered datagrams (secret-stream send/trySend over UDX): counter(8, LE) ‖ secretbox. */
#define HSP_SS_DGRAM_OVERHEAD (8 + 16)

typedef struct hsp_ss_dgram {
  uint8_t send_key[32];
  uint8_t recv_key[32];
  uint8_t counter[8];
  uint8_t initial[8];
} hsp_ss_dgram_t;

/* Derives both keys from the handshake hash; initial_counter = NULL draws it at random (as
 * the reference does); a fixed one is for test vectors. */
void hsp_ss_dgram_init(hsp_ss_dgram_t *d, const uint8_t hash[64], bool is_initiator,
                       const uint8_t *initial_counter);
/* out needs len + HSP_SS_DGRAM_OVERHEAD bytes. ENONCE when the counter space is used up. */
int hsp_ss_dgram_seal(hsp_ss_dgram_t *d, uint8_t *out, size_t out_cap, size_t *out_len,
                      const uint8_t *msg, size_t len);
/* EMSGSIZE if too short, EDECRYPT if forged; the caller drops such datagrams silently. */
int hsp_ss_dgram_open(const hsp_ss_dgram_t *d, uint8_t *out, size_t out_cap, size_t *out_len,
                      const uint8_t *in, size_t len);
void hsp_ss_dgram_wipe(hsp_ss_dgram_t *d);

typedef struct hsp_ss hsp_ss_t;

/* Must send or copy the bytes before returning; a negative return destroys the stream. */
typedef int (*hsp_ss_write_cb)(void *user, const uint8_t *data, size_t len);
/* A decrypted message (writable, valid only during the call). A negative return destroys
 * the stream. The callback may call hsp_ss_write/hsp_ss_end/hsp_ss_destroy. */
typedef int (*hsp_ss_message_cb)(void *user, uint8_t *msg, size_t len);
/* The stream is open: the handshake is done and this side's header was written. */
typedef int (*hsp_ss_open_cb)(void *user, hsp_ss_t *ss);

typedef struct hsp_ss_config {
  bool is_initiator;
  /* Handshake mode (hyperdht): the Noise result; no Noise bytes go over the transport. */
  const hsp_noise_result_t *handshake;
  /* Otherwise XX over the transport with this static key pair (required), optionally
   * insisting on the peer's static key. */
  const hsp_crypto_keypair_t *keypair;
  const uint8_t *remote_public_key;
  uint32_t keepalive_ms;      /* 0 = off; also turns on dropping of empty messages */
  uint32_t timeout_ms;        /* 0 = off; destroy if nothing arrives this long */
  bool filter_empty_messages; /* drop empty messages even without keepalive */
  uint32_t max_frame;         /* receive cap on a frame body; 0 = HSP_SS_MAX_FRAME */
  hsp_ss_write_cb write;
  hsp_ss_message_cb on_message;
  hsp_ss_open_cb on_open; /* optional */
  void *user;
  /* Test vectors only: fixed ephemeral (XX) and fixed secretstream push header. */
  const hsp_crypto_keypair_t *test_ephemeral;
  const uint8_t *test_push_header;
} hsp_ss_config_t;

enum hsp_ss_phase { HSP_SS_NEW, HSP_SS_HANDSHAKE, HSP_SS_OPEN, HSP_SS_DESTROYED };

struct hsp_ss {
  hsp_ss_config_t cfg;
  enum hsp_ss_phase phase;
  int error;
  bool run_xx; /* the Noise XX handshake runs over this stream */
  hsp_noise_t noise;
  hsp_noise_result_t keys;
  bool has_test_header;
  uint8_t test_header[HSP_SS_HEADERBYTES];
  bool header_received;
  bool local_ended;
  bool remote_ended;
  crypto_secretstream_xchacha20poly1305_state push;
  crypto_secretstream_xchacha20poly1305_state pull;
  uint8_t expected_remote_id[32];
  hsp_ss_dgram_t dgram;
  /* frame parser */
  uint8_t len_buf[3];
  uint8_t len_have;
  uint32_t frame_len;
  uint8_t *body;
  size_t body_have;
  size_t body_cap;
  /* scratch for hsp_ss_write */
  uint8_t *wbuf;
  size_t wbuf_cap;
  /* clock */
  uint64_t last_write_ms;
  uint64_t last_read_ms;
  uint64_t bytes_read;
  uint64_t bytes_written;
};

int hsp_ss_init(hsp_ss_t *ss, const hsp_ss_config_t *cfg);
/* Begins: handshake mode writes the header frame and opens; XX initiator writes message 1. */
int hsp_ss_start(hsp_ss_t *ss, uint64_t now_ms);
/* Feeds received transport bytes. `data` is decrypted in place (clobbered). Not reentrant:
 * callbacks must not call hsp_ss_recv. */
int hsp_ss_recv(hsp_ss_t *ss, uint8_t *data, size_t len, uint64_t now_ms);
/* The same for input that must not be modified (costs one copy of every frame). */
int hsp_ss_recv_const(hsp_ss_t *ss, const uint8_t *data, size_t len, uint64_t now_ms);
/* The transport's read side ended (FIN). ETRUNCATED if inside a frame or before opening. */
int hsp_ss_recv_end(hsp_ss_t *ss);
/* Encrypts one message and hands the frame to the write callback. Only once open (ESTATE
 * before: unlike the JS stream nothing is queued; wait for on_open). EMSGSIZE above
 * HSP_SS_MAX_MESSAGE does not destroy the stream. */
int hsp_ss_write(hsp_ss_t *ss, const uint8_t *msg, size_t len, uint64_t now_ms);
/* Zero-copy: `frame` holds msg_len + HSP_SS_FRAME_OVERHEAD bytes with the plaintext at
 * frame + HSP_SS_PLAINTEXT_OFFSET; it is turned into the complete frame in place, and the
 * caller sends it. */
int hsp_ss_seal(hsp_ss_t *ss, uint8_t *frame, size_t msg_len, uint64_t now_ms);
/* Timers: sends a due keepalive, fails a timed-out stream. */
int hsp_ss_tick(hsp_ss_t *ss, uint64_t now_ms);
/* When hsp_ss_tick should next run, or UINT64_MAX. */
uint64_t hsp_ss_next_deadline(const hsp_ss_t *ss);
/* Stops writing (keepalives too); the caller then ends the transport's write side. */
int hsp_ss_end(hsp_ss_t *ss);
/* Destroys: wipes keys, frees buffers. Idempotent; safe inside callbacks. Call it when the
 * transport errors or closes before both directions ended (what the reference does). */
void hsp_ss_destroy(hsp_ss_t *ss);

/* Datagrams of an open stream (wrappers over ss->dgram; ENONCE destroys the stream). */
int hsp_ss_seal_datagram(hsp_ss_t *ss, uint8_t *out, size_t out_cap, size_t *out_len,
                         const uint8_t *msg, size_t len);
int hsp_ss_open_datagram(hsp_ss_t *ss, uint8_t *out, size_t out_cap, size_t *out_len,
                         const uint8_t *in, size_t len);

static inline bool hsp_ss_is_open(const hsp_ss_t *ss) { return ss->phase == HSP_SS_OPEN; }
static inline int hsp_ss_error(const hsp_ss_t *ss) { return ss->error; }
/* Both directions ended cleanly. */
static inline bool hsp_ss_is_finished(const hsp_ss_t *ss) {
  return ss->local_ended && ss->remote_ended;
}
/* Valid once open. */
static inline const uint8_t *hsp_ss_remote_public_key(const hsp_ss_t *ss) {
  return ss->keys.remote_public_key;
}
static inline const uint8_t *hsp_ss_handshake_hash(const hsp_ss_t *ss) { return ss->keys.hash; }

#endif
