#include "secretstream.h"

#include <stdlib.h>
#include <string.h>

/* Frames before the stream is open are Noise XX messages (at most 96 bytes with the empty
 * payloads secret-stream sends) or the 56-byte header: refuse to buffer anything bigger. */
#define SETUP_MAX_FRAME 4096

_Static_assert(HSP_SS_ABYTES == crypto_secretstream_xchacha20poly1305_ABYTES, "ABYTES");
_Static_assert(HSP_SS_HEADERBYTES == crypto_secretstream_xchacha20poly1305_HEADERBYTES, "HEADER");

static void put_u24(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
}

/* ---- datagrams ---- */

void hsp_ss_dgram_init(hsp_ss_dgram_t *d, const uint8_t hash[64], bool is_initiator,
                       const uint8_t *initial_counter) {
  uint8_t in[64];
  memcpy(in, is_initiator ? HSP_NS_SS_INITIATOR : HSP_NS_SS_RESPONDER, 32);
  memcpy(in + 32, HSP_NS_SS_SEND, 32);
  hsp_crypto_hash_keyed(d->send_key, in, sizeof in, hash, 64);
  memcpy(in, is_initiator ? HSP_NS_SS_RESPONDER : HSP_NS_SS_INITIATOR, 32);
  hsp_crypto_hash_keyed(d->recv_key, in, sizeof in, hash, 64);
  if (initial_counter) memcpy(d->initial, initial_counter, 8);
  else randombytes_buf(d->initial, 8);
  memcpy(d->counter, d->initial, 8);
}

int hsp_ss_dgram_seal(hsp_ss_dgram_t *d, uint8_t *out, size_t out_cap, size_t *out_len,
                      const uint8_t *msg, size_t len) {
  if (len > SIZE_MAX - HSP_SS_DGRAM_OVERHEAD || out_cap < len + HSP_SS_DGRAM_OVERHEAD)
    return HSP_CRYPTO_EBUFSIZE;
  /* The counter is incremented before use; coming back to the start means every nonce of
   * this key was used once already. */
  sodium_increment(d->counter, 8);
  if (sodium_memcmp(d->counter, d->initial, 8) == 0) return HSP_CRYPTO_ENONCE;
  uint8_t nonce[crypto_secretbox_NONCEBYTES] = {0};
  memcpy(nonce, d->counter, 8);
  if (len) memmove(out + 8 + crypto_secretbox_MACBYTES, msg, len);
  crypto_secretbox_easy(out + 8, out + 8 + crypto_secretbox_MACBYTES, len, nonce, d->send_key);
  memcpy(out, d->counter, 8);
  *out_len = len + HSP_SS_DGRAM_OVERHEAD;
  return HSP_CRYPTO_OK;
}

int hsp_ss_dgram_open(const hsp_ss_dgram_t *d, uint8_t *out, size_t out_cap, size_t *out_len,
                      const uint8_t *in, size_t len) {
  if (len < HSP_SS_DGRAM_OVERHEAD) return HSP_CRYPTO_EMSGSIZE;
  size_t mlen = len - HSP_SS_DGRAM_OVERHEAD;
  if (out_cap < mlen) return HSP_CRYPTO_EBUFSIZE;
  uint8_t nonce[crypto_secretbox_NONCEBYTES] = {0};
  memcpy(nonce, in, 8);
  if (crypto_secretbox_open_easy(out, in + 8, len - 8, nonce, d->recv_key) != 0)
    return HSP_CRYPTO_EDECRYPT;
  *out_len = mlen;
  return HSP_CRYPTO_OK;
}

void hsp_ss_dgram_wipe(hsp_ss_dgram_t *d) { sodium_memzero(d, sizeof *d); }

/* ---- stream ---- */

static int fail(hsp_ss_t *ss, int err) {
  if (ss->phase != HSP_SS_DESTROYED) {
    hsp_ss_destroy(ss);
    ss->error = err;
  }
  return err;
}

void hsp_ss_destroy(hsp_ss_t *ss) {
  if (ss->phase == HSP_SS_DESTROYED) return;
  hsp_noise_wipe(&ss->noise);
  hsp_noise_wipe_result(&ss->keys);
  sodium_memzero(&ss->push, sizeof ss->push);
  sodium_memzero(&ss->pull, sizeof ss->pull);
  hsp_ss_dgram_wipe(&ss->dgram);
  if (ss->body) sodium_memzero(ss->body, ss->body_cap);
  if (ss->wbuf) sodium_memzero(ss->wbuf, ss->wbuf_cap);
  free(ss->body);
  free(ss->wbuf);
  ss->body = ss->wbuf = NULL;
  ss->body_cap = ss->wbuf_cap = 0;
  ss->phase = HSP_SS_DESTROYED;
  if (ss->error == 0) ss->error = HSP_CRYPTO_EDESTROYED;
}

int hsp_ss_init(hsp_ss_t *ss, const hsp_ss_config_t *cfg) {
  memset(ss, 0, sizeof *ss);
  ss->phase = HSP_SS_DESTROYED;
  ss->error = HSP_CRYPTO_EINVAL;
  if (!cfg || !cfg->write || !cfg->on_message || (!cfg->handshake && !cfg->keypair))
    return HSP_CRYPTO_EINVAL;
  if (cfg->handshake && cfg->handshake->is_initiator != cfg->is_initiator)
    return HSP_CRYPTO_EINVAL;
  if (cfg->max_frame > HSP_SS_MAX_FRAME) return HSP_CRYPTO_EINVAL;
  ss->cfg = *cfg;
  if (ss->cfg.max_frame == 0) ss->cfg.max_frame = HSP_SS_MAX_FRAME;
  if (ss->cfg.keepalive_ms) ss->cfg.filter_empty_messages = true;
  /* Pointers into the caller's memory are only needed until the keys are set up. */
  ss->cfg.handshake = NULL;
  ss->cfg.keypair = NULL;
  ss->cfg.remote_public_key = NULL;
  ss->cfg.test_ephemeral = NULL;
  ss->cfg.test_push_header = NULL;
  if (cfg->test_push_header) {
    memcpy(ss->test_header, cfg->test_push_header, HSP_SS_HEADERBYTES);
    ss->has_test_header = true;
  }
  ss->phase = HSP_SS_NEW;
  ss->error = 0;

  if (cfg->handshake) {
    ss->keys = *cfg->handshake;
  } else {
    ss->run_xx = true;
    int rc = hsp_noise_init(&ss->noise, HSP_NOISE_XX, cfg->is_initiator, cfg->keypair,
                            cfg->remote_public_key, NULL, 0);
    if (rc == 0 && cfg->test_ephemeral) rc = hsp_noise_set_ephemeral(&ss->noise, cfg->test_ephemeral);
    if (rc != 0) return fail(ss, rc);
  }
  return HSP_CRYPTO_OK;
}

static int emit(hsp_ss_t *ss, const uint8_t *data, size_t len) {
  if (ss->cfg.write(ss->cfg.user, data, len) < 0) return HSP_CRYPTO_ECALLBACK;
  ss->bytes_written += len;
  return HSP_CRYPTO_OK;
}

/* Keys are in ss->keys: set up both secretstream states and write our header frame. */
static int open_stream(hsp_ss_t *ss, uint64_t now_ms) {
  uint8_t frame[3 + HSP_SS_IDHEADERBYTES];
  put_u24(frame, HSP_SS_IDHEADERBYTES);
  hsp_crypto_stream_id(frame + 3, ss->keys.hash, ss->cfg.is_initiator);
  hsp_crypto_stream_id(ss->expected_remote_id, ss->keys.hash, !ss->cfg.is_initiator);
  uint8_t *header = frame + 3 + 32;
  if (ss->has_test_header) {
    /* init_pull with a chosen header yields the state init_push would have produced had it
     * drawn that header: reproducible frames for test vectors. */
    memcpy(header, ss->test_header, HSP_SS_HEADERBYTES);
    crypto_secretstream_xchacha20poly1305_init_pull(&ss->push, header, ss->keys.tx);
  } else {
    crypto_secretstream_xchacha20poly1305_init_push(&ss->push, header, ss->keys.tx);
  }
  hsp_ss_dgram_init(&ss->dgram, ss->keys.hash, ss->cfg.is_initiator, NULL);
  ss->phase = HSP_SS_OPEN;
  ss->last_write_ms = now_ms;
  int rc = emit(ss, frame, sizeof frame);
  if (rc != 0) return rc;
  if (ss->cfg.on_open && ss->cfg.on_open(ss->cfg.user, ss) < 0) return HSP_CRYPTO_ECALLBACK;
  return HSP_CRYPTO_OK;
}

static int write_noise(hsp_ss_t *ss) {
  uint8_t frame[3 + 128];
  size_t len;
  int rc = hsp_noise_write_message(&ss->noise, NULL, 0, frame + 3, sizeof frame - 3, &len);
  if (rc != 0) return rc;
  put_u24(frame, (uint32_t)len);
  return emit(ss, frame, 3 + len);
}

static int after_noise_step(hsp_ss_t *ss, uint64_t now_ms) {
  if (hsp_noise_is_complete(&ss->noise)) {
    int rc = hsp_noise_get_result(&ss->noise, &ss->keys);
    hsp_noise_wipe(&ss->noise);
    return rc ? rc : open_stream(ss, now_ms);
  }
  return HSP_CRYPTO_OK;
}

int hsp_ss_start(hsp_ss_t *ss, uint64_t now_ms) {
  if (ss->phase == HSP_SS_DESTROYED) return HSP_CRYPTO_EDESTROYED;
  if (ss->phase != HSP_SS_NEW) return HSP_CRYPTO_ESTATE;
  ss->last_read_ms = ss->last_write_ms = now_ms;
  int rc;
  if (!ss->run_xx) {
    rc = open_stream(ss, now_ms); /* the handshake happened elsewhere */
  } else {
    ss->phase = HSP_SS_HANDSHAKE;
    rc = ss->cfg.is_initiator ? write_noise(ss) : 0;
  }
  return rc ? fail(ss, rc) : HSP_CRYPTO_OK;
}

static int process_frame(hsp_ss_t *ss, uint8_t *body, size_t len, uint64_t now_ms) {
  if (ss->phase == HSP_SS_HANDSHAKE) {
    uint8_t payload[SETUP_MAX_FRAME];
    size_t plen;
    int rc = hsp_noise_read_message(&ss->noise, body, len, payload, sizeof payload, &plen);
    if (rc != 0) return rc;
    /* secret-stream sends empty payloads and ignores whatever a peer puts there. */
    if (!hsp_noise_is_complete(&ss->noise)) {
      rc = write_noise(ss);
      if (rc != 0) return rc;
    }
    return after_noise_step(ss, now_ms);
  }
  if (!ss->header_received) {
    if (len != HSP_SS_IDHEADERBYTES || !hsp_crypto_equal(body, ss->expected_remote_id, 32))
      return HSP_CRYPTO_EHEADER;
    if (crypto_secretstream_xchacha20poly1305_init_pull(&ss->pull, body + 32, ss->keys.rx) != 0)
      return HSP_CRYPTO_EHEADER;
    ss->header_received = true;
    return HSP_CRYPTO_OK;
  }
  if (len < HSP_SS_ABYTES) return HSP_CRYPTO_EMSGSIZE;
  unsigned long long mlen;
  unsigned char tag;
  /* In place: the plaintext lands one byte after the start of the ciphertext; libsodium
   * authenticates before it decrypts. */
  if (crypto_secretstream_xchacha20poly1305_pull(&ss->pull, body + 1, &mlen, &tag, body, len, NULL,
                                                 0) != 0)
    return HSP_CRYPTO_EDECRYPT;
  if (mlen == 0 && ss->cfg.filter_empty_messages) return HSP_CRYPTO_OK;
  if (ss->cfg.on_message(ss->cfg.user, body + 1, (size_t)mlen) < 0) return HSP_CRYPTO_ECALLBACK;
  return HSP_CRYPTO_OK;
}

static int ensure_cap(uint8_t **buf, size_t *cap, size_t need) {
  if (*cap >= need) return HSP_CRYPTO_OK;
  size_t n = *cap ? *cap : 4096;
  while (n < need) n *= 2;
  uint8_t *p = malloc(n);
  if (!p) return HSP_CRYPTO_ENOMEM;
  if (*buf) {
    sodium_memzero(*buf, *cap);
    free(*buf);
  }
  *buf = p;
  *cap = n;
  return HSP_CRYPTO_OK;
}

static void release_body(hsp_ss_t *ss) {
  sodium_memzero(ss->body, ss->body_cap);
  free(ss->body);
  ss->body = NULL;
  ss->body_cap = 0;
  ss->body_have = 0;
}

/* in_place: frames wholly inside `data` are decrypted where they are; otherwise every frame
 * is first copied into the stream's own buffer. */
static int recv_bytes(hsp_ss_t *ss, uint8_t *data, size_t len, uint64_t now_ms, bool in_place) {
  if (ss->phase == HSP_SS_DESTROYED) return HSP_CRYPTO_EDESTROYED;
  if (ss->phase == HSP_SS_NEW) return HSP_CRYPTO_ESTATE;
  if (ss->remote_ended) return fail(ss, HSP_CRYPTO_ESTATE);
  ss->last_read_ms = now_ms;
  ss->bytes_read += len;
  while (len > 0) {
    if (ss->len_have < 3) {
      ss->len_buf[ss->len_have++] = *data++;
      len--;
      if (ss->len_have < 3) continue;
      ss->frame_len = (uint32_t)ss->len_buf[0] | (uint32_t)ss->len_buf[1] << 8 |
                      (uint32_t)ss->len_buf[2] << 16;
      uint32_t cap = ss->phase == HSP_SS_OPEN && ss->header_received ? ss->cfg.max_frame
                                                                      : SETUP_MAX_FRAME;
      if (ss->frame_len > cap) return fail(ss, HSP_CRYPTO_EMSGSIZE);
      ss->body_have = 0;
    }
    size_t need = ss->frame_len - ss->body_have;
    uint8_t *body;
    if (need == 0 || (in_place && ss->body_have == 0 && len >= need)) {
      body = data; /* whole frame in the input (or empty): no copy */
    } else {
      int rc = ensure_cap(&ss->body, &ss->body_cap, ss->frame_len);
      if (rc != 0) return fail(ss, rc);
      size_t take = len < need ? len : need;
      memcpy(ss->body + ss->body_have, data, take);
      ss->body_have += take;
      data += take;
      len -= take;
      if (ss->body_have < ss->frame_len) break;
      body = ss->body;
      need = 0;
    }
    data += need;
    len -= need;
    ss->len_have = 0;
    int rc = process_frame(ss, body, ss->frame_len, now_ms);
    if (rc != 0) return fail(ss, rc);
    if (ss->phase == HSP_SS_DESTROYED) return ss->error; /* destroyed by a callback */
  }
  /* The frame buffer is only needed while a frame is split across inputs: an idle stream
   * (most of them, in a server with many connections) holds none. */
  if (ss->body && !(ss->len_have == 3 && ss->body_have < ss->frame_len)) release_body(ss);
  return HSP_CRYPTO_OK;
}

int hsp_ss_recv(hsp_ss_t *ss, uint8_t *data, size_t len, uint64_t now_ms) {
  return recv_bytes(ss, data, len, now_ms, true);
}

int hsp_ss_recv_const(hsp_ss_t *ss, const uint8_t *data, size_t len, uint64_t now_ms) {
  /* never written through: in_place is off */
  return recv_bytes(ss, (uint8_t *)data, len, now_ms, false);
}

int hsp_ss_recv_end(hsp_ss_t *ss) {
  if (ss->phase == HSP_SS_DESTROYED) return HSP_CRYPTO_EDESTROYED;
  if (ss->len_have != 0 || ss->phase != HSP_SS_OPEN || !ss->header_received)
    return fail(ss, HSP_CRYPTO_ETRUNCATED);
  ss->remote_ended = true;
  return HSP_CRYPTO_OK;
}

static int check_writable(hsp_ss_t *ss, size_t len) {
  if (ss->phase == HSP_SS_DESTROYED) return HSP_CRYPTO_EDESTROYED;
  if (ss->phase != HSP_SS_OPEN) return HSP_CRYPTO_ESTATE;
  if (ss->local_ended) return HSP_CRYPTO_EENDED;
  if (len > HSP_SS_MAX_MESSAGE) return HSP_CRYPTO_EMSGSIZE;
  return HSP_CRYPTO_OK;
}

static void seal_in_place(hsp_ss_t *ss, uint8_t *frame, size_t len, uint64_t now_ms) {
  put_u24(frame, (uint32_t)(len + HSP_SS_ABYTES));
  /* c = frame + 3 and m = frame + 4: libsodium writes c[0] (the encrypted tag) and then
   * XORs the keystream over c + 1 == m, so in-place sealing is exact. */
  crypto_secretstream_xchacha20poly1305_push(&ss->push, frame + 3, NULL, frame + 4, len, NULL, 0,
                                             crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
  ss->last_write_ms = now_ms;
}

int hsp_ss_seal(hsp_ss_t *ss, uint8_t *frame, size_t msg_len, uint64_t now_ms) {
  int rc = check_writable(ss, msg_len);
  if (rc != 0) return rc;
  seal_in_place(ss, frame, msg_len, now_ms);
  ss->bytes_written += msg_len + HSP_SS_FRAME_OVERHEAD;
  return HSP_CRYPTO_OK;
}

int hsp_ss_write(hsp_ss_t *ss, const uint8_t *msg, size_t len, uint64_t now_ms) {
  int rc = check_writable(ss, len);
  if (rc != 0) return rc;
  if (len && !msg) return HSP_CRYPTO_EINVAL;
  /* Small frames (keepalives, protocol messages) are sealed on the stack, so a stream
   * that only ever sends those keeps no write buffer. */
  uint8_t small[256];
  uint8_t *frame = small;
  if (len + HSP_SS_FRAME_OVERHEAD > sizeof small) {
    rc = ensure_cap(&ss->wbuf, &ss->wbuf_cap, len + HSP_SS_FRAME_OVERHEAD);
    if (rc != 0) return fail(ss, rc);
    frame = ss->wbuf;
  }
  if (len) memcpy(frame + HSP_SS_PLAINTEXT_OFFSET, msg, len);
  seal_in_place(ss, frame, len, now_ms);
  rc = emit(ss, frame, len + HSP_SS_FRAME_OVERHEAD);
  if (frame == small) sodium_memzero(small, len + HSP_SS_FRAME_OVERHEAD);
  return rc ? fail(ss, rc) : HSP_CRYPTO_OK;
}

uint64_t hsp_ss_next_deadline(const hsp_ss_t *ss) {
  uint64_t next = UINT64_MAX;
  if (ss->phase == HSP_SS_NEW || ss->phase == HSP_SS_DESTROYED) return next;
  if (ss->cfg.keepalive_ms && ss->phase == HSP_SS_OPEN && !ss->local_ended)
    next = ss->last_write_ms + ss->cfg.keepalive_ms;
  if (ss->cfg.timeout_ms && ss->last_read_ms + ss->cfg.timeout_ms < next)
    next = ss->last_read_ms + ss->cfg.timeout_ms;
  return next;
}

int hsp_ss_tick(hsp_ss_t *ss, uint64_t now_ms) {
  if (ss->phase == HSP_SS_DESTROYED) return HSP_CRYPTO_EDESTROYED;
  if (ss->phase == HSP_SS_NEW) return HSP_CRYPTO_OK;
  if (ss->cfg.timeout_ms && now_ms - ss->last_read_ms >= ss->cfg.timeout_ms)
    return fail(ss, HSP_CRYPTO_ETIMEDOUT);
  if (ss->cfg.keepalive_ms && ss->phase == HSP_SS_OPEN && !ss->local_ended &&
      now_ms - ss->last_write_ms >= ss->cfg.keepalive_ms)
    return hsp_ss_write(ss, NULL, 0, now_ms);
  return HSP_CRYPTO_OK;
}

int hsp_ss_end(hsp_ss_t *ss) {
  if (ss->phase == HSP_SS_DESTROYED) return HSP_CRYPTO_EDESTROYED;
  ss->local_ended = true;
  return HSP_CRYPTO_OK;
}

int hsp_ss_seal_datagram(hsp_ss_t *ss, uint8_t *out, size_t out_cap, size_t *out_len,
                         const uint8_t *msg, size_t len) {
  if (ss->phase == HSP_SS_DESTROYED) return HSP_CRYPTO_EDESTROYED;
  if (ss->phase != HSP_SS_OPEN) return HSP_CRYPTO_ESTATE;
  int rc = hsp_ss_dgram_seal(&ss->dgram, out, out_cap, out_len, msg, len);
  return rc == HSP_CRYPTO_ENONCE ? fail(ss, rc) : rc;
}

int hsp_ss_open_datagram(hsp_ss_t *ss, uint8_t *out, size_t out_cap, size_t *out_len,
                         const uint8_t *in, size_t len) {
  if (ss->phase == HSP_SS_DESTROYED) return HSP_CRYPTO_EDESTROYED;
  if (ss->phase != HSP_SS_OPEN) return HSP_CRYPTO_ESTATE;
  return hsp_ss_dgram_open(&ss->dgram, out, out_cap, out_len, in, len);
}
