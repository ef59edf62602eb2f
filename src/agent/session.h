/*
 * A data-plane session: many TCP tunnels over one encrypted stream between a proxy and a
 * service instance, sans-I/O (frames and a millisecond clock in, frames out).
 *
 * It runs over an hsp_mux (protomux framing) with two protocols, both ends being ours:
 *
 *   "hyperseaport/session" (no id), opened by both sides at start; handshake: uint version.
 *     0 PING  uint nonce      answered with PONG; sent when nothing arrived for ping_ms
 *     1 PONG  uint nonce
 *     2 GOAWAY                the sender drains: open no new tunnels on this session
 *
 *   "hyperseaport/tcp", one channel per TCP connection, opened by the proxy with a unique
 *   8-byte id (its tunnel counter, little endian) so pairing never depends on order;
 *   handshake: uint version, uint window (bytes the opener may receive before it grants more).
 *   The service accepts with its own handshake (version, window), connects to its backend,
 *   then sends READY, or ERROR and closes the channel.
 *     0 DATA    bytes         at most the peer's remaining credit
 *     1 END                   no more DATA from the sender (TCP half-close)
 *     2 CREDIT  uint n        the receiver consumed n more bytes: the sender may send n more
 *     3 READY                 (service) the backend connection is up
 *     4 ERROR   uint code     (service) before READY: the backend refused, or the service is
 *                             draining; the channel close follows
 *   Flow control is per tunnel: a sender never has more than `window` bytes of DATA that the
 *   receiver has not consumed (written to its TCP socket), so a slow client or backend stalls
 *   its own tunnel only, and a session's buffering is bounded by the sum of its windows. DATA
 *   beyond the credit is a protocol violation that closes the tunnel (HSP_SESS_EFLOW).
 *
 * Liveness: any received frame counts. When nothing arrived for ping_ms a PING goes out
 * (and again every ping_ms); when nothing arrived for dead_ms the session is dead
 * (hsp_sess_is_dead): the owner ends the stream and frees the session, which closes every
 * tunnel with HSP_SESS_EDEAD. A kill -9 of the service is so noticed within dead_ms on
 * every session open to it, whether or not data was flowing.
 */
#ifndef HSP_AGENT_SESSION_H
#define HSP_AGENT_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mux.h"

#define HSP_SESS_PROTOCOL "hyperseaport/session"
#define HSP_SESS_TCP_PROTOCOL "hyperseaport/tcp"
#define HSP_SESS_VERSION 1
#define HSP_SESS_DEFAULT_WINDOW (1024u * 1024)
#define HSP_SESS_MAX_WINDOW (64u * 1024 * 1024)
/* A mux frame must fit one 64 KiB secret-stream message; DATA leaves room for its head. */
#define HSP_SESS_MAX_FRAME 65536u
#define HSP_SESS_MAX_DATA (60u * 1024)

enum hsp_sess_error {
  HSP_SESS_EPROTO = -1,   /* malformed message: the session ends */
  HSP_SESS_ENOMEM = -2,
  HSP_SESS_EINVAL = -3,   /* unknown channel, wrong side or state */
  HSP_SESS_EREFUSED = -4, /* the service could not connect to its backend */
  HSP_SESS_EGOAWAY = -5,  /* the service is draining */
  HSP_SESS_EDEAD = -6,    /* the session ended (liveness lost, stream closed) */
  HSP_SESS_EFLOW = -7,    /* the peer sent beyond its credit */
  HSP_SESS_ESEND = -8,    /* the send callback failed */
  HSP_SESS_EREJECTED = -9, /* the peer rejected the channel (not a hyperseaport service) */
};
const char *hsp_sess_strerror(int err);

/* ERROR codes on the wire */
enum { HSP_SESS_CODE_REFUSED = 1, HSP_SESS_CODE_GOAWAY = 2 };

typedef struct hsp_sess hsp_sess_t;

typedef struct hsp_sess_config {
  uint32_t window;  /* receive window per tunnel (0: HSP_SESS_DEFAULT_WINDOW) */
  uint64_t ping_ms; /* 0: 250 */
  uint64_t dead_ms; /* 0: 1000 */
} hsp_sess_config_t;

typedef struct hsp_sess_callbacks {
  /* One frame to write to the stream: a then b. Return 0 or negative. */
  int (*send)(void *ud, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
  /* Service side: the proxy opened a tunnel. Return the tunnel's user pointer (non-NULL) to
   * accept it, then call hsp_sess_ready or hsp_sess_refuse once the backend answered;
   * NULL refuses it at once (ERROR goaway). */
  void *(*on_accept)(void *ud, hsp_sess_t *s, uint32_t ch);
  /* Proxy side: the service's backend is connected; data may flow. */
  void (*on_ready)(void *ud, hsp_sess_t *s, uint32_t ch, void *user);
  void (*on_data)(void *ud, hsp_sess_t *s, uint32_t ch, void *user, const uint8_t *p, size_t n);
  void (*on_end)(void *ud, hsp_sess_t *s, uint32_t ch, void *user);
  /* Credit arrived for a tunnel whose last hsp_sess_write was cut short. */
  void (*on_writable)(void *ud, hsp_sess_t *s, uint32_t ch, void *user);
  /* The tunnel is gone (peer closed it, refused it, or the session ended); err is 0 for a
   * normal close by the peer. Not called for hsp_sess_close. */
  void (*on_close)(void *ud, hsp_sess_t *s, uint32_t ch, void *user, int err);
  void (*on_goaway)(void *ud, hsp_sess_t *s);
} hsp_sess_callbacks_t;

/* Returns NULL when out of memory. Sends the session channel's open at once. */
hsp_sess_t *hsp_sess_new(const hsp_sess_config_t *cfg, const hsp_sess_callbacks_t *cb, void *ud,
                         uint64_t now_ms);
/* Closes every tunnel (on_close with HSP_SESS_EDEAD) and frees the session. */
void hsp_sess_free(hsp_sess_t *s);
/* The same, but each proxy-side tunnel not yet READY is handed to `each` instead of failing
 * (to open it again on a new session); the others get on_close as above. */
void hsp_sess_free_detach(hsp_sess_t *s, void (*each)(void *ctx, void *user), void *ctx);

/* One frame from the stream. A negative return means the session is dead (malformed frame):
 * end the stream and free the session. Callbacks must not free the session. */
int hsp_sess_recv(hsp_sess_t *s, const uint8_t *frame, size_t len, uint64_t now_ms);
/* Pings and liveness; returns the time (absolute ms) by which to call it again. After it,
 * hsp_sess_is_dead tells whether the peer went silent for dead_ms: then end the stream and
 * free the session. */
uint64_t hsp_sess_tick(hsp_sess_t *s, uint64_t now_ms);

/* Proxy side: opens a tunnel; on_ready or on_close follows. */
int hsp_sess_open(hsp_sess_t *s, void *user, uint32_t *ch);
/* Service side: the backend answered. */
int hsp_sess_ready(hsp_sess_t *s, uint32_t ch);
int hsp_sess_refuse(hsp_sess_t *s, uint32_t ch, int code);

/* Sends up to len bytes as the credit allows; returns how many were taken (0 when there is
 * no credit: stop reading the TCP socket until on_writable), or a negative error. The proxy
 * may send only after READY. */
long hsp_sess_write(hsp_sess_t *s, uint32_t ch, const uint8_t *p, size_t len);
/* n received bytes were written out: grant the peer that much more credit (batched). */
int hsp_sess_consumed(hsp_sess_t *s, uint32_t ch, size_t n);
int hsp_sess_end(hsp_sess_t *s, uint32_t ch);
/* Closes a tunnel; no on_close follows for it. */
int hsp_sess_close(hsp_sess_t *s, uint32_t ch);
/* Tells the peer this side drains (service). */
int hsp_sess_goaway(hsp_sess_t *s);
void hsp_sess_cork(hsp_sess_t *s);
int hsp_sess_uncork(hsp_sess_t *s);

size_t hsp_sess_tunnels(const hsp_sess_t *s);
size_t hsp_sess_credit(const hsp_sess_t *s, uint32_t ch); /* bytes it may send now */
bool hsp_sess_peer_goaway(const hsp_sess_t *s);
bool hsp_sess_is_dead(const hsp_sess_t *s);
/* The last time a tunnel closed while none remained open (or creation): for idle close. */
uint64_t hsp_sess_idle_since(const hsp_sess_t *s);
void *hsp_sess_user(const hsp_sess_t *s, uint32_t ch);

#endif
