/*
 * The service's health checks and graceful drain, sans-I/O.
 *
 * Health: every interval_ms the service checks its backend: `tcp` connects to the local port,
 * `http:/path` sends GET /path and wants a 2xx or 3xx status. `fall` failures in a row
 * deregister the instance (proxies drop it at once, pushed by WATCH); once registered again
 * after `rise` successes in a row. A service starts unregistered and registers after its
 * first successful check, so a proxy never sees an instance whose backend is not up yet.
 * A check that does not answer within timeout_ms counts as a failure (the caller enforces
 * the timeout and reports it).
 *
 * Drain (SIGTERM): deregister, tell proxies GOAWAY, stop accepting; open connections go on
 * until they are all done or drain_ms passed, then the rest are closed and the service exits.
 */
#ifndef HSP_AGENT_HEALTH_H
#define HSP_AGENT_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

#define HSP_HEALTH_PATH_MAX 1024

typedef enum hsp_health_kind { HSP_HEALTH_TCP = 0, HSP_HEALTH_HTTP, HSP_HEALTH_NONE } hsp_health_kind_t;

typedef struct hsp_health_config {
  hsp_health_kind_t kind;
  char path[HSP_HEALTH_PATH_MAX + 1]; /* http: the request target, starting with '/' */
  uint64_t interval_ms;               /* 0: 5000 */
  uint64_t timeout_ms;                /* 0: 2000 */
  uint32_t fall;                      /* 0: 3 */
  uint32_t rise;                      /* 0: 1 */
} hsp_health_config_t;

/* "tcp", "none", or "http:/path" (path: visible ASCII, no spaces). 0 or -1. */
int hsp_health_parse(const char *spec, hsp_health_config_t *cfg);

typedef enum hsp_health_action {
  HSP_HEALTH_NOTHING = 0,
  HSP_HEALTH_REGISTER,
  HSP_HEALTH_DEREGISTER,
} hsp_health_action_t;

typedef struct hsp_health {
  hsp_health_config_t cfg;
  bool registered, ever_registered, checking;
  uint32_t fails, oks;
  uint64_t next_ms;
} hsp_health_t;

/* The first check is due at once. */
void hsp_health_init(hsp_health_t *h, const hsp_health_config_t *cfg, uint64_t now_ms);
/* True when a check should start now (then it is in progress until hsp_health_result). With
 * kind none it never is: the instance registers at once and stays registered. */
bool hsp_health_due(hsp_health_t *h, uint64_t now_ms);
hsp_health_action_t hsp_health_result(hsp_health_t *h, uint64_t now_ms, bool ok);
/* When to call hsp_health_due next (absolute ms). */
uint64_t hsp_health_next(const hsp_health_t *h);
/* With kind none: what to do at start (register). */
hsp_health_action_t hsp_health_start(hsp_health_t *h);

/* An HTTP check's exchange: the request to send and a parser for the answer. */
typedef struct hsp_health_http {
  hsp_http_parser_t parser;
  uint8_t scratch[4096];
  int status; /* final status once known, else 0 */
} hsp_health_http_t;

/* Writes the request for cfg->path with Host: host into out; its length, or -1 if too small. */
int hsp_health_http_request(const hsp_health_config_t *cfg, const char *host, char *out,
                            size_t cap);
void hsp_health_http_init(hsp_health_http_t *x);
/* Feeds response bytes: 1 healthy (2xx/3xx), 0 unhealthy, -1 need more bytes. Malformed
 * responses are unhealthy. Call with len 0 at end of stream. */
int hsp_health_http_feed(hsp_health_http_t *x, const uint8_t *p, size_t len);

typedef enum hsp_drain_state { HSP_DRAIN_RUNNING = 0, HSP_DRAIN_DRAINING, HSP_DRAIN_DONE } hsp_drain_state_t;

typedef enum hsp_drain_verdict {
  HSP_DRAIN_WAIT = 0, /* connections still open, time left */
  HSP_DRAIN_EXIT,     /* every connection finished */
  HSP_DRAIN_FORCE,    /* time is up: close what is left, then exit */
} hsp_drain_verdict_t;

typedef struct hsp_drain {
  hsp_drain_state_t state;
  uint64_t deadline_ms;
} hsp_drain_t;

/* Starts draining (once; true the first time): the caller deregisters, sends GOAWAY, stops
 * accepting. */
bool hsp_drain_start(hsp_drain_t *d, uint64_t now_ms, uint64_t drain_ms);
/* Called when a connection ends and on a timer. */
hsp_drain_verdict_t hsp_drain_poll(hsp_drain_t *d, uint64_t now_ms, size_t open_connections);
/* A draining service takes no new connection. */
static inline bool hsp_drain_accepting(const hsp_drain_t *d) { return d->state == HSP_DRAIN_RUNNING; }

#endif
