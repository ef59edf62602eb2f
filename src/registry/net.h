/*
 * The registry on the network: the libuv glue between the sans-I/O registry (server.h,
 * client.h, replica.h) and HyperDHT connections (hyper_server.h, hyper_conn.h). Messages
 * travel length-prefixed (frame.h).
 *
 * - hsp_reg_host: the registry itself, a HyperDHT server whose key pair is the registry key;
 *   only a peer that knows the public key can find it. Messages read in one loop iteration
 *   are handled as one group commit (hsp_reg_server_handle_many); leases expire on a timer.
 * - hsp_reg_session: a client's connection to the registry that comes back by itself: it
 *   reconnects with backoff when the registry or the DHT goes away, notices a dead registry
 *   within seconds (a heartbeat request when nothing was heard for a while), and reports
 *   an outage once, not once per retry.
 *
 * Registry time is Unix milliseconds (hsp_reg_clock_ms): leases and request timestamps are
 * compared across hosts. Timers are libuv timers on the DHT's loop.
 */
#ifndef HSP_REGISTRY_NET_H
#define HSP_REGISTRY_NET_H

#include "dht_io.h"
#include "hyper_crypto.h"
#include "registry.h"
#include "store.h"

/* Unix time in milliseconds. */
uint64_t hsp_reg_clock_ms(void);

/* ---- the registry ---- */

typedef struct hsp_reg_host hsp_reg_host_t;
/* One line of the registry's log (no newline): registrations, deregistrations, expiries,
 * dropped connections. */
typedef void (*hsp_reg_log_fn)(void *ud, const char *line);

/* Serves `store` (opened with the key pair's secret) on `io`, which must be ready. */
int hsp_reg_host_start(hsp_reg_host_t **out, hsp_dht_io_t *io, hsp_store_t *store,
                       const hsp_crypto_keypair_t *kp, hsp_reg_log_fn log, void *ud);
/* Unannounces, drops every connection, and calls cb (may be NULL) once all is released.
 * The store stays open (the caller's). */
void hsp_reg_host_close(hsp_reg_host_t *h, void (*cb)(void *ctx), void *ctx);

/* ---- a client's session ---- */

typedef struct hsp_reg_session hsp_reg_session_t;
typedef struct hsp_reg_session_cbs {
  /* Connected (again): whatever was in flight on the old connection is lost. */
  void (*on_up)(void *ud);
  /* The registry cannot be reached (err: hsp_dht_conn_strerror). Called once per outage:
   * after a connection was lost, or when the first attempt failed; retries are silent. */
  void (*on_down)(void *ud, int err);
  /* One message from the registry (heartbeat answers are not passed on). */
  void (*on_message)(void *ud, const uint8_t *msg, size_t len);
} hsp_reg_session_cbs_t;

/* Starts connecting to `registry` at once (io must be ready). */
int hsp_reg_session_start(hsp_reg_session_t **out, hsp_dht_io_t *io,
                          const uint8_t registry[HSP_REG_KEY_BYTES],
                          const hsp_reg_session_cbs_t *cbs, void *ud);
bool hsp_reg_session_up(const hsp_reg_session_t *s);
/* Sends one message; fails (HSP_DHT_CONN_EFAILED) while the session is down. */
int hsp_reg_session_send(hsp_reg_session_t *s, const uint8_t *msg, size_t len);
/* No callback runs after this; cb (may be NULL) runs once the connection is released. */
void hsp_reg_session_close(hsp_reg_session_t *s, void (*cb)(void *ctx), void *ctx);

#endif
