/* Private structures shared by node.c (the dht-rpc node) and query.c (iterative lookups). */
#ifndef HSP_DHT_NODE_INTERNAL_H
#define HSP_DHT_NODE_INTERNAL_H

#include "dht.h"

struct hsp_dht_req;
struct hsp_dht_query;

/* Internal completion hooks of a request: done() fires once (reply or error); cycle() fires
 * at every send timeout before the retry decision (the query uses it to mark slow nodes). */
typedef void (*req_done_fn)(hsp_dht_node_t *n, struct hsp_dht_req *r, const hsp_dht_reply_t *reply,
                            int err);
typedef void (*req_cycle_fn)(hsp_dht_node_t *n, struct hsp_dht_req *r);

typedef struct hsp_dht_req {
  long handle;
  uint16_t tid;
  hsp_ipv4_addr_t to;
  bool to_has_id; /* the destination is a known node: a timeout removes it from the table */
  uint8_t to_id[HSP_DHT_ID_SIZE];
  int socket;
  uint8_t ttl;
  bool internal;
  uint64_t command;
  bool has_token, has_target, has_value;
  uint8_t token[HSP_DHT_TOKEN_SIZE], target[HSP_DHT_ID_SIZE];
  uint8_t *value;
  size_t value_len;
  uint8_t *buf; /* encoded on first send; retransmissions resend these bytes */
  size_t len;
  int retries, sent;
  uint32_t timeout_ms;
  bool force;
  bool armed;
  uint64_t deadline;
  bool queued; /* waiting in the congestion FIFO */
  req_done_fn done;
  req_cycle_fn cycle;
  /* Owner data. */
  void *ctx;
  struct hsp_dht_query *query;
  hsp_dht_response_cb user_cb;
  bool cycled;
  bool busy, cancelled; /* cancelled from inside its own cycle() hook: freed by the caller */
  uint64_t aux;                     /* e.g. last `seen` for checks */
  uint8_t aux_id[HSP_DHT_ID_SIZE];  /* e.g. the node under check */
  hsp_dht_table_node_t aux_node;    /* e.g. the newcomer waiting for a re-ping */
} hsp_dht_req_t;

typedef struct hsp_dht_outgoing {
  int socket;
  hsp_ipv4_addr_t to;
  uint8_t ttl;
  uint8_t *buf;
  size_t len;
} hsp_dht_outgoing_t;

typedef struct hsp_dht_delayed {
  uint64_t deadline;
  int socket;
  uint16_t tid;
  hsp_ipv4_addr_t to;
} hsp_dht_delayed_t;

/* dht-rpc CongestionWindow: 4 slots of 750 ms, at most max per slot and 2*max in total. */
typedef struct hsp_dht_congestion {
  size_t i;
  int total;
  int window[4];
  int max;
} hsp_dht_congestion_t;

struct hsp_dht_node {
  hsp_dht_config_t cfg;
  uint64_t now;

  hsp_dht_table_t table;
  hsp_dht_nat_sampler_t nat;
  hsp_dht_tokens_t tokens;
  hsp_dht_congestion_t congestion;
  uint64_t contact_seq; /* last-contact order of table nodes */
  uint64_t seen_seq;    /* strictly increasing "heard from" counter (see dht-rpc.md §5.3) */

  bool ephemeral, firewalled, adaptive, force_persistent, bootstrapped, destroyed;
  uint16_t tid;
  long next_handle;

  hsp_dht_req_t **inflight;
  size_t inflight_len, inflight_cap;
  hsp_dht_req_t **pending; /* congestion FIFO */
  size_t pending_len, pending_cap;

  hsp_dht_outgoing_t *out;
  size_t out_head, out_len, out_cap;
  uint8_t *out_last; /* buffer handed out by next_datagram, freed on the next call */

  hsp_dht_delayed_t *delayed;
  size_t delayed_len, delayed_cap;

  uint64_t next_tick, next_drain, last_tick_time;
  uint64_t tick;
  long refresh_ticks, stable_ticks;
  bool has_last_host;
  uint8_t last_host[4];
  int repinging, checks;
  int down_hints_sent;

  /* Id-less responders sampled so far (at most max(1, #bootstrap)). */
  hsp_ipv4_addr_t none_persistent[HSP_DHT_MAX_BOOTSTRAP];
  size_t none_persistent_len;

  struct hsp_dht_query **queries;
  size_t queries_len, queries_cap;
  bool queries_to_start;
  struct hsp_dht_query **dead; /* ended queries, freed when the node returns to its caller */
  size_t dead_len, dead_cap;

  /* Bootstrap sequence. */
  int boot_round;
  bool boot_running, boot_first, boot_test_nat;

  /* _updateNetworkState in progress. */
  bool net_active, net_only_firewall, net_for_bootstrap;
  uint8_t net_host[4];
  uint16_t net_port;
  size_t net_probe_pending;
  hsp_dht_firewall_probe_t probe;
};

/* Grow *arr (of elem-sized items, capacity *cap) to hold need items; false on OOM. */
bool hsp_dht__grow(void **arr, size_t *cap, size_t need, size_t elem);

/* node.c services used by query.c */
hsp_dht_req_t *hsp_dht__request_new(hsp_dht_node_t *n, const hsp_ipv4_addr_t *to,
                                    const uint8_t *to_id, bool internal, uint64_t command,
                                    const uint8_t *token, const uint8_t *target,
                                    const uint8_t *value, size_t value_len, bool has_value);
void hsp_dht__request_send(hsp_dht_node_t *n, hsp_dht_req_t *r);
void hsp_dht__request_cancel(hsp_dht_node_t *n, hsp_dht_req_t *r, bool notify);
void hsp_dht__down_hint(hsp_dht_node_t *n, const hsp_ipv4_addr_t *to, const hsp_ipv4_addr_t *down);
void hsp_dht__resolve_bootstrap(hsp_dht_node_t *n, size_t i, hsp_ipv4_addr_t *addr,
                                uint8_t id[HSP_DHT_ID_SIZE]);

/* query.c services used by node.c */
typedef void (*query_hook_fn)(hsp_dht_node_t *n, struct hsp_dht_query *q, const hsp_dht_reply_t *reply);
typedef void (*query_end_fn)(hsp_dht_node_t *n, struct hsp_dht_query *q, int err);
struct hsp_dht_query *hsp_dht__query_new(hsp_dht_node_t *n, const hsp_dht_query_opts_t *opts,
                                         const hsp_dht_query_cbs_t *cbs);
void hsp_dht__query_set_background(struct hsp_dht_query *q, size_t bg_concurrency,
                                   query_hook_fn on_data, query_end_fn on_end);
void hsp_dht__query_start(hsp_dht_node_t *n, struct hsp_dht_query *q);
void hsp_dht__query_destroy(hsp_dht_node_t *n, struct hsp_dht_query *q, int err);
long hsp_dht__query_handle(const struct hsp_dht_query *q);
bool hsp_dht__query_started(const struct hsp_dht_query *q);
void hsp_dht__query_set_concurrency(struct hsp_dht_query *q, size_t c);
void hsp_dht__query_reap(hsp_dht_node_t *n);

#endif
