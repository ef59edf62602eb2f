/*
 * The proxy's session pool, sans-I/O: at most one session per instance, opened lazily when
 * the first tunnel wants it, kept while tunnels use it (liveness pings keep it warm and tell
 * when it died), closed after idle_ms without tunnels or once the service said GOAWAY and its
 * last tunnel ended.
 *
 * The caller does the I/O for the pool: `connect` asks for a stream to an instance (answer
 * with hsp_pool_connected or hsp_pool_failed), `send` writes one frame on it, `disconnect`
 * ends it. Frames read from a stream go to hsp_pool_recv; hsp_pool_tick runs the timers.
 *
 * Tunnels opened while the session is still connecting wait for it. When a session cannot be
 * opened or dies, every tunnel on it or waiting for it gets on_close with HSP_SESS_EDEAD (the
 * proxy retries those that had not forwarded anything on another instance), then
 * on_session_down tells the proxy to eject the instance.
 */
#ifndef HSP_AGENT_POOL_H
#define HSP_AGENT_POOL_H

#include "session.h"

#define HSP_POOL_KEY_BYTES 32

typedef struct hsp_pool hsp_pool_t;

typedef struct hsp_pool_config {
  hsp_sess_config_t sess;
  uint64_t idle_ms;            /* close a session this long without tunnels (0: 30000) */
  uint64_t connect_timeout_ms; /* give up connecting after this (0: 5000) */
} hsp_pool_config_t;

typedef struct hsp_pool_callbacks {
  void (*connect)(void *ud, const uint8_t key[HSP_POOL_KEY_BYTES]);
  /* End the stream (idle, dead, timed out, or the pool is freed); no call for it follows. */
  void (*disconnect)(void *ud, const uint8_t key[HSP_POOL_KEY_BYTES]);
  int (*send)(void *ud, const uint8_t key[HSP_POOL_KEY_BYTES], const uint8_t *a, size_t alen,
              const uint8_t *b, size_t blen);
  /* Tunnel events, as in hsp_sess_callbacks_t (send and on_accept are not used; the ud
   * given is the pool's). */
  hsp_sess_callbacks_t tunnel;
  /* A session was opened (connect latency in ms). */
  void (*on_session_up)(void *ud, const uint8_t key[HSP_POOL_KEY_BYTES], double latency_ms);
  /* A session could not be opened, or died. */
  void (*on_session_down)(void *ud, const uint8_t key[HSP_POOL_KEY_BYTES], int err);
  /* The instance drains: open nothing new on it. */
  void (*on_goaway)(void *ud, const uint8_t key[HSP_POOL_KEY_BYTES]);
} hsp_pool_callbacks_t;

hsp_pool_t *hsp_pool_new(const hsp_pool_config_t *cfg, const hsp_pool_callbacks_t *cb, void *ud);
/* Ends every session (disconnect) and fails every tunnel (on_close HSP_SESS_EDEAD). */
void hsp_pool_free(hsp_pool_t *p);

/* Opens a tunnel to the instance for `user` (non-NULL): on_ready, or on_close, follows. */
int hsp_pool_open(hsp_pool_t *p, const uint8_t key[HSP_POOL_KEY_BYTES], uint64_t now_ms,
                  void *user);
/* Forgets a tunnel still waiting for its session (the client went away). */
bool hsp_pool_cancel(hsp_pool_t *p, const uint8_t key[HSP_POOL_KEY_BYTES], void *user);

void hsp_pool_connected(hsp_pool_t *p, const uint8_t key[HSP_POOL_KEY_BYTES], uint64_t now_ms);
/* The connect failed or the stream closed (the caller needs no disconnect for it). */
void hsp_pool_failed(hsp_pool_t *p, const uint8_t key[HSP_POOL_KEY_BYTES], uint64_t now_ms,
                     int err);
int hsp_pool_recv(hsp_pool_t *p, const uint8_t key[HSP_POOL_KEY_BYTES], const uint8_t *frame,
                  size_t len, uint64_t now_ms);
/* Timers; returns the absolute time by which to call it again (UINT64_MAX: no session). */
uint64_t hsp_pool_tick(hsp_pool_t *p, uint64_t now_ms);

/* The open session to an instance (NULL while connecting or without one). */
hsp_sess_t *hsp_pool_session(const hsp_pool_t *p, const uint8_t key[HSP_POOL_KEY_BYTES]);
size_t hsp_pool_count(const hsp_pool_t *p); /* sessions, connecting ones included */

#endif
