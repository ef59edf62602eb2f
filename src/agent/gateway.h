/*
 * HTTP gateway: a reverse proxy from HTTP/1.1 clients to registered instances, on libuv.
 *
 * Routes (parsed by hsp_http_route_parse, see http.h):
 *   /role/NAME@RANGE/path?q  -> an instance satisfying RANGE (round robin over the healthy
 *                               ones, failing over to the next when a stream cannot be
 *                               opened), with /path?q passed on
 *   /instance/KEY/path?q     -> that instance
 *   /list/NAME@RANGE         -> JSON array of the matching instances
 *   /                        -> the dashboard (static page embedded in the binary)
 *   /events                  -> server-sent events feeding the dashboard
 *   /metrics                 -> Prometheus text format
 * Gateway errors are JSON {"error": "...", "status": N}: 400 bad range or route, 404 no such
 * role / instance / path, 502 the instance failed, 503 none healthy, 504 timeout, and the
 * parser's 4xx/5xx (hsp_http_error_status) for malformed requests.
 *
 * The gateway knows nothing of the registry's transport. It talks to an UPSTREAM, a small
 * vtable: instance lookups (from a replica, or a static table in tests) and open(KEY), which
 * gives a duplex byte stream to the instance (a HyperDHT connection, or a TCP socket in
 * tests). Streams are kept per instance for reuse after keep-alive responses.
 *
 * Memory per client connection is bounded: a read buffer, the parser scratch and the header
 * store, plus at most HSP_GW_HIGH_WATER bytes queued towards each side (plus one read).
 * Bodies and tunnels are streamed with back-pressure both ways, never buffered whole.
 *
 * The process must ignore SIGPIPE (libuv writes to sockets with write(2)): a client that
 * resets its connection would otherwise kill it.
 */
#ifndef HSP_AGENT_GATEWAY_H
#define HSP_AGENT_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "balance.h"
#include "dht_io.h"
#include "http.h"
#include "hyper_crypto.h"
#include "registry.h"
#include "replica.h"
#include "store.h"

enum hsp_gw_error {
  HSP_GW_OK = 0,
  HSP_GW_ENOMEM = -1,
  HSP_GW_EINVAL = -2,
  HSP_GW_ELISTEN = -3, /* bind or listen failed */
  HSP_GW_EOPEN = -4,   /* upstream stream could not be opened */
  HSP_GW_ECLOSED = -5, /* upstream stream broken or closed */
};
const char *hsp_gw_strerror(int err);

/* Bytes queued towards one side before reading from the other side stops. */
#define HSP_GW_HIGH_WATER (256 * 1024)
#define HSP_GW_LOW_WATER (64 * 1024)

/* ---- Upstream streams ------------------------------------------------------------------- */

typedef struct hsp_gw_stream hsp_gw_stream_t;

/* Events a stream reports to its owner (the gateway), with the ctx given at open. */
typedef struct hsp_gw_stream_events {
  void (*on_open)(void *ctx, int status);  /* connected (0) or failed (negative): once */
  void (*on_data)(void *ctx, const uint8_t *bytes, size_t len);
  void (*on_end)(void *ctx);               /* the instance finished sending */
  void (*on_drain)(void *ctx);             /* pending() fell to HSP_GW_LOW_WATER or below */
  void (*on_error)(void *ctx, int err);    /* broken; only close() may follow */
} hsp_gw_stream_events_t;

typedef struct hsp_gw_stream_ops {
  /* Queues bytes (copied). Returns 0 or a negative error. */
  int (*write)(hsp_gw_stream_t *s, const uint8_t *bytes, size_t len);
  size_t (*pending)(const hsp_gw_stream_t *s); /* bytes queued, not yet sent */
  void (*shutdown)(hsp_gw_stream_t *s);       /* no more writes: half-close */
  void (*set_reading)(hsp_gw_stream_t *s, bool on); /* back-pressure on on_data */
  void (*close)(hsp_gw_stream_t *s);          /* no event follows; the stream frees itself */
} hsp_gw_stream_ops_t;

struct hsp_gw_stream {
  const hsp_gw_stream_ops_t *ops;
};

/* ---- Upstream: where instances come from ------------------------------------------------ */

typedef enum hsp_gw_health { HSP_GW_HEALTHY = 0, HSP_GW_FAILED = 1 } hsp_gw_health_t;

typedef struct hsp_gw_upstream {
  void *ud;
  /* Instances named `name` satisfying `range` (valid), best first; as hsp_reg_index_query:
   * returns the total number of matches (may exceed cap) or a negative error. */
  long (*query)(void *ud, const char *name, const char *range, hsp_reg_instance_t *out,
                size_t cap);
  bool (*get)(void *ud, const uint8_t key[HSP_REG_KEY_BYTES], hsp_reg_instance_t *out);
  void (*each)(void *ud, void (*cb)(void *arg, const hsp_reg_instance_t *inst), void *arg);
  uint64_t (*seq)(void *ud); /* registry log sequence held; NULL: 0 */
  /* Passive health: NULL means every instance is healthy. */
  hsp_gw_health_t (*health)(void *ud, const uint8_t key[HSP_REG_KEY_BYTES]);
  /* The gateway could not use this instance (failover moves on); may be NULL. */
  void (*mark_failed)(void *ud, const uint8_t key[HSP_REG_KEY_BYTES], int err);
  /* Starts opening a stream to the instance; events go to ev with ctx, beginning with
   * on_open, which must come from the loop, never from inside open(). Returns 0 with *out
   * set, or a negative error (no event follows). */
  int (*open)(void *ud, const uint8_t key[HSP_REG_KEY_BYTES], const hsp_gw_stream_events_t *ev,
              void *ctx, hsp_gw_stream_t **out);
  /* Balancing, may be NULL (round robin): moves the instance to try first among the healthy
   * candidates of name@range to cands[0]; the others stay as the failover order. */
  void (*choose)(void *ud, const char *name, const char *range, hsp_reg_instance_t *cands,
                 size_t n);
  /* Connections to instances open now (sessions), for /metrics; may be NULL. */
  size_t (*sessions)(void *ud);
} hsp_gw_upstream_t;

/* ---- The gateway ------------------------------------------------------------------------ */

typedef struct hsp_gw_config {
  uint64_t header_timeout_ms;   /* a request head must be complete within this (slowloris) */
  uint64_t idle_timeout_ms;     /* keep-alive idle, and no progress while a body flows */
  uint64_t upstream_timeout_ms; /* open; then the response head once the request is sent: 504 */
  uint64_t tunnel_timeout_ms;   /* an upgraded tunnel with no traffic either way */
  size_t max_connections;       /* further clients are refused */
  size_t pool_per_instance;     /* idle upstream streams kept per instance */
  hsp_http_limits_t limits;     /* request line, header section (414, 431) */
  const char *proto;            /* X-Forwarded-Proto: "http" */
  bool trust_forwarded;         /* extend X-Forwarded-* from clients (behind another proxy) */
} hsp_gw_config_t;

/* 10 s head, 60 s idle, 30 s upstream, 10 min tunnel, 1024 clients, 64 pooled per instance. */
hsp_gw_config_t hsp_gw_default_config(void);

typedef struct hsp_gw hsp_gw_t;

/* The upstream is copied; its ud must outlive the gateway. */
int hsp_gw_new(hsp_gw_t **out, uv_loop_t *loop, const hsp_gw_config_t *cfg,
               const hsp_gw_upstream_t *up);
/* Binds and listens (host "127.0.0.1", "0.0.0.0", "::"); port 0 picks one. */
int hsp_gw_listen(hsp_gw_t *gw, const char *host, int port);
int hsp_gw_port(const hsp_gw_t *gw);
/* The upstream's instance set or health changed: dashboards get an update shortly. */
void hsp_gw_changed(hsp_gw_t *gw);
/* Closes the idle pooled streams to an instance (it drains: they would hold it open). */
void hsp_gw_drop_idle(hsp_gw_t *gw, const uint8_t key[HSP_REG_KEY_BYTES]);
/* Closes every connection and handle; cb (may be NULL) runs once all are closed, after
 * which the gateway is freed. */
void hsp_gw_close(hsp_gw_t *gw, void (*cb)(void *ud), void *ud);

/* ---- A static upstream: instances mapped to TCP ports (tests, benchmarks) ---------------- */

typedef struct hsp_gw_static hsp_gw_static_t;

/* fail_ms: how long an instance marked failed stays unhealthy. */
int hsp_gw_static_new(hsp_gw_static_t **out, uv_loop_t *loop, uint64_t fail_ms);
void hsp_gw_static_free(hsp_gw_static_t *s);
/* Adds or replaces an instance reachable at host:port (IPv4 literal). */
int hsp_gw_static_add(hsp_gw_static_t *s, const hsp_reg_instance_t *inst, const char *host,
                      int port);
int hsp_gw_static_remove(hsp_gw_static_t *s, const uint8_t key[HSP_REG_KEY_BYTES]);
void hsp_gw_static_upstream(hsp_gw_static_t *s, hsp_gw_upstream_t *out);

/* Instances added with host NULL are reached over HyperDHT by their key through io, as kp. */
void hsp_gw_static_set_dht(hsp_gw_static_t *s, hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp);

/* Opens a TCP stream to host:port as an hsp_gw_stream (what the static upstream uses). */
int hsp_gw_tcp_open(uv_loop_t *loop, const char *host, int port,
                    const hsp_gw_stream_events_t *ev, void *ctx, hsp_gw_stream_t **out);

/* Opens an encrypted HyperDHT connection to the instance's key as an hsp_gw_stream. */
int hsp_gw_dht_open(hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp,
                    const uint8_t key[HSP_REG_KEY_BYTES], const hsp_gw_stream_events_t *ev,
                    void *ctx, hsp_gw_stream_t **out);

/* ---- The registry upstream: instances from a replica or the store, on the data plane ---- */

/* Streams are channels on the data plane's sessions (one encrypted HyperDHT connection per
 * instance, pool.h), and /role/ requests pick their instance with the proxy's balancer
 * (balance.h, one per NAME@RANGE): a failing instance is ejected and probed, a draining one
 * (GOAWAY) gets no new requests. */
typedef struct hsp_gw_registry hsp_gw_registry_t;

/* Exactly one of replica and store: a gateway of its own looks instances up in its replica
 * (kept in step by the caller, see follow.h), the gateway inside the registry process in the
 * registry's store. All arguments must outlive it; call hsp_gw_changed when they change.
 * bal may be NULL (defaults: p2c). */
int hsp_gw_registry_new(hsp_gw_registry_t **out, hsp_reg_replica_t *replica, hsp_store_t *store,
                        hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp,
                        const hsp_bal_config_t *bal);
/* The gateway on this upstream, told to drop idle streams to a draining instance. */
void hsp_gw_registry_set_gateway(hsp_gw_registry_t *g, hsp_gw_t *gw);
/* Ends every session; cb runs once its handles are closed (after the gateway closed). */
void hsp_gw_registry_close(hsp_gw_registry_t *g, void (*cb)(void *ctx), void *ctx);
void hsp_gw_registry_upstream(hsp_gw_registry_t *g, hsp_gw_upstream_t *out);

#endif
