/*
 * The data plane's libuv layer: the proxy's forwarding engine and the service's tunnel
 * endpoint, on top of the sans-I/O balancer, session pool, sessions and health checks.
 *
 * Proxy: a TCP listener. Each accepted connection gets an instance from the balancer and a
 * tunnel on the pool's session to it (one HyperDHT connection per instance, reused). Bytes
 * are read from the client only once the service's backend answered READY, so a tunnel that
 * fails before that (session refused or dead, backend refused) is retried on another
 * instance without the client noticing. With no instance available a connection waits up
 * to wait_ms for one to register (or come back from ejection), then is closed with a log
 * line. The registry side feeds the instance set (hsp_dp_proxy_sync, hsp_dp_proxy_remove).
 *
 * Service: hsp_dp_service_connection takes each incoming HyperDHT connection from the
 * caller's hyperdht server and runs a session on it; each tunnel connects to the target TCP
 * port. Health checks run on a timer and ask the caller to (de)register; drain deregisters,
 * sends GOAWAY, refuses new tunnels and reports when the open ones are done (or the drain
 * time ran out).
 */
#ifndef HSP_AGENT_DATAPLANE_H
#define HSP_AGENT_DATAPLANE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "balance.h"
#include "crypto.h"
#include "dht_io.h"
#include "health.h"
#include "hyper_conn.h"
#include "pool.h"

typedef void (*hsp_dp_log_fn)(void *ud, const char *line);

/* ---- links: the HyperDHT side of a session pool (shared by the proxy and the gateway) ---- */

/* One HyperDHT connection per session the pool asks for; frames read go to the pool. The
 * owner's pool callbacks forward connect, disconnect and send here. */
typedef struct hsp_dp_link hsp_dp_link_t;
/* The largest session frame sent in one secret-stream message (a mux batch is bounded to
 * fit, see hsp_mux_set_max_batch). */
#define HSP_DP_FRAME_MAX (65536 + 64)

typedef struct hsp_dp_links {
  uv_loop_t *loop;
  hsp_dht_io_t *io;
  hsp_crypto_keypair_t kp;
  hsp_pool_t *pool;
  const char *who; /* for log lines, e.g. "proxy: ROLE" */
  hsp_dp_log_fn log;
  void *log_ud;
  hsp_dp_link_t *head;
} hsp_dp_links_t;

void hsp_dp_links_connect(hsp_dp_links_t *l, const uint8_t key[32]);
void hsp_dp_links_disconnect(hsp_dp_links_t *l, const uint8_t key[32]);
int hsp_dp_links_send(hsp_dp_links_t *l, const uint8_t key[32], const uint8_t *a, size_t alen,
                      const uint8_t *b, size_t blen);
/* Forgets every link (their connections' callbacks free them); call after the pool is freed. */
void hsp_dp_links_release(hsp_dp_links_t *l);

/* ---- proxy ---- */

typedef struct hsp_dp_proxy hsp_dp_proxy_t;

typedef struct hsp_dp_proxy_config {
  const char *host;  /* listen address (default 127.0.0.1) */
  uint16_t port;     /* 0: any (see hsp_dp_proxy_port) */
  const char *role;  /* for log lines */
  hsp_bal_config_t balance;
  hsp_pool_config_t pool;
  uint64_t wait_ms;  /* hold a connection this long for an instance (0: fail at once) */
  hsp_dp_log_fn log;
  void *log_ud;
} hsp_dp_proxy_config_t;

typedef struct hsp_dp_proxy_stats {
  uint64_t accepted, forwarded, retried, failed, waited, timed_out;
} hsp_dp_proxy_stats_t;

/* Listens at once; returns 0 or a negative libuv/agent error. kp is the client key for
 * HyperDHT connects (copied). */
int hsp_dp_proxy_start(hsp_dp_proxy_t **out, uv_loop_t *loop, hsp_dht_io_t *io,
                       const hsp_crypto_keypair_t *kp, const hsp_dp_proxy_config_t *cfg);
uint16_t hsp_dp_proxy_port(const hsp_dp_proxy_t *p);
/* The instances of the role, in registry order (after every change the replica reports). */
int hsp_dp_proxy_sync(hsp_dp_proxy_t *p, const uint8_t (*keys)[32], size_t n);
/* The same with priority tiers (hsp_bal_sync_tiers): e.g. one per version, newest first. */
int hsp_dp_proxy_sync_tiers(hsp_dp_proxy_t *p, const uint8_t (*keys)[32], const uint32_t *tiers,
                            size_t n);
/* An instance deregistered or expired: no new connection goes there from now on. */
void hsp_dp_proxy_remove(hsp_dp_proxy_t *p, const uint8_t key[32]);
void hsp_dp_proxy_get_stats(const hsp_dp_proxy_t *p, hsp_dp_proxy_stats_t *out);
hsp_bal_t *hsp_dp_proxy_balancer(hsp_dp_proxy_t *p);
/* Stops listening, closes every connection and session; cb runs once all handles closed. */
void hsp_dp_proxy_close(hsp_dp_proxy_t *p, void (*cb)(void *ctx), void *ctx);

/* ---- service ---- */

typedef struct hsp_dp_service hsp_dp_service_t;

typedef struct hsp_dp_service_config {
  const char *target_host; /* default 127.0.0.1 (an address, not a name) */
  uint16_t target_port;
  const struct sockaddr *target_addr; /* when set, used instead of host and port */
  hsp_sess_config_t sess;
  hsp_health_config_t health;
  uint64_t drain_ms;       /* let open tunnels finish this long after a drain starts */
  /* Holds each READY this long: stands in for a distant or slow instance in tests and
   * benchmarks (0 in production). */
  uint64_t ready_delay_ms;
  /* The health checks' verdicts: register or deregister the instance. */
  void (*on_register)(void *ud);
  void (*on_deregister)(void *ud);
  void *ud;
  hsp_dp_log_fn log;
  void *log_ud;
} hsp_dp_service_config_t;

int hsp_dp_service_start(hsp_dp_service_t **out, uv_loop_t *loop,
                         const hsp_dp_service_config_t *cfg);
/* An incoming connection from the caller's hyperdht server (sets its callbacks). `first`
 * is a message already read from it (the caller looked at it to tell a session from a
 * plain connection), or NULL. */
void hsp_dp_service_connection(hsp_dp_service_t *s, hsp_dht_conn_t *conn, const uint8_t *first,
                               size_t first_len);
/* Whether a connection's first message opens a session (else it is a plain byte stream). */
bool hsp_dp_is_session_open(const uint8_t *msg, size_t len);
/* Starts draining (on_deregister is called, GOAWAY sent, new tunnels refused); done runs
 * once every tunnel ended or drain_ms passed (the rest are then cut). */
void hsp_dp_service_drain(hsp_dp_service_t *s, void (*done)(void *ctx), void *ctx);
size_t hsp_dp_service_tunnels(const hsp_dp_service_t *s);
bool hsp_dp_service_registered(const hsp_dp_service_t *s);
void hsp_dp_service_close(hsp_dp_service_t *s, void (*cb)(void *ctx), void *ctx);

#endif
