/*
 * hyperseaport DHT node: dht-rpc v6 (docs/protocol/dht-rpc.md), sans-I/O.
 *
 * The node never touches a socket or a clock. A thin I/O layer (libuv + the UDX socket)
 * drives it:
 *
 *   bind two UDP sockets (server: the configured port, client: random), then
 *   hsp_dht_node_init(&node, &cfg, now)  with cfg.server_port = the bound server port
 *   hsp_dht_node_start(&node, now)       bootstrap
 *   loop:
 *     on datagram  -> hsp_dht_node_recv(&node, socket, &from, buf, len, now)
 *     on timer     -> hsp_dht_node_advance(&node, now)
 *     after either -> while (hsp_dht_node_next_datagram(&node, &d)) send d.data to d.to
 *                     from socket d.socket (with IP TTL d.ttl if non-zero);
 *                     re-arm the timer at hsp_dht_node_next_deadline(&node)
 *
 * Time is milliseconds on any monotonic clock. Only datagrams whose first byte is 0x03 or
 * 0x13 belong here (UDX packets start with 0xff; 1-byte datagrams are holepunch probes).
 * Results come back through callbacks, always invoked from inside recv/advance/start (never
 * from the call that created the request or query). Callbacks may start new requests and
 * queries, but must not destroy the node.
 *
 * Sockets are small integers: 0 = server socket, 1 = client socket; any other value is an
 * opaque id of an extra socket owned by the I/O layer (e.g. a hyperdht holepunch socket),
 * usable in request/reply options and in recv(). Requests leave from the client socket while
 * the node is firewalled and from the server socket once it is reachable; the node includes
 * its id only in what it sends from the server socket while persistent.
 */
#ifndef HSP_DHT_DHT_H
#define HSP_DHT_DHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "messages.h"
#include "nat.h"
#include "routing_table.h"
#include "tokens.h"

enum hsp_dht_socket { HSP_DHT_SOCKET_SERVER = 0, HSP_DHT_SOCKET_CLIENT = 1 };

/* dht-rpc constants (index.js, lib/io.js). */
#define HSP_DHT_TICK_MS 5000
#define HSP_DHT_DRAIN_MS 750
#define HSP_DHT_SLEEPING_MS 15000
#define HSP_DHT_REQUEST_TIMEOUT_MS 1000
#define HSP_DHT_DEFAULT_RETRIES 3
#define HSP_DHT_QUERY_RETRIES 5
#define HSP_DHT_DEFAULT_CONCURRENCY 10
#define HSP_DHT_MAX_WINDOW 80
#define HSP_DHT_MAX_PING_DELAY_MS 10000
#define HSP_DHT_MAX_BOOTSTRAP 16

typedef struct hsp_dht_node hsp_dht_node_t;

/* An outgoing datagram. `data` belongs to the node and stays valid until the next call of
 * hsp_dht_node_next_datagram() or hsp_dht_node_destroy(). */
typedef struct hsp_dht_datagram {
  int socket;
  hsp_ipv4_addr_t to;
  uint8_t ttl; /* 0 = OS default */
  const uint8_t *data;
  size_t len;
} hsp_dht_datagram_t;

/* A response as seen by the requester. Views are valid only during the callback. */
typedef struct hsp_dht_reply {
  hsp_ipv4_addr_t from;
  const uint8_t *from_id; /* NULL unless the responder sent an id matching its address */
  hsp_ipv4_addr_t to;     /* our address as the responder sees it */
  const uint8_t *token;
  const uint8_t *closer; /* wire form, 6 bytes each */
  size_t closer_count;
  uint64_t error;
  bool has_value;
  hsp_bytes_t value;
} hsp_dht_reply_t;

/* Outcome of a single request: err 0 and reply set, or err < 0 (ETIMEDOUT, EDESTROYED). */
typedef void (*hsp_dht_response_cb)(void *ctx, const hsp_dht_reply_t *reply, int err);

/* An incoming application request (internal flag clear). Plain data: copy it to answer
 * later. `value` is a view valid only during the on_request callback. */
typedef struct hsp_dht_incoming {
  int socket;
  uint16_t tid;
  hsp_ipv4_addr_t from;
  bool from_persistent; /* sender carried an id matching its address */
  uint8_t from_id[HSP_DHT_ID_SIZE];
  hsp_ipv4_addr_t to; /* where the sender thinks it sent this (our address as it sees us) */
  bool has_token;     /* a token was present and verified */
  uint8_t token[HSP_DHT_TOKEN_SIZE]; /* hyperdht signatures cover it */
  uint64_t command;
  bool has_target;
  uint8_t target[HSP_DHT_ID_SIZE];
  bool has_value;
  hsp_bytes_t value;
} hsp_dht_incoming_t;

enum hsp_dht_event {
  HSP_DHT_EVENT_READY = 1,      /* bootstrap finished */
  HSP_DHT_EVENT_PERSISTENT,     /* node now has a stable id and is stored by others */
  HSP_DHT_EVENT_EPHEMERAL,      /* adaptive node lost persistence after a sleep */
  HSP_DHT_EVENT_NAT_UPDATE,     /* sampled public address changed */
  HSP_DHT_EVENT_WAKEUP,
};

typedef struct hsp_dht_config {
  uint16_t server_port; /* the bound local port of the server socket */
  hsp_ipv4_addr_t bootstrap[HSP_DHT_MAX_BOOTSTRAP]; /* resolved bootstrap nodes */
  size_t bootstrap_count;
  /* ephemeral: 1 never persistent, 0 forced persistent after bootstrap, -1 adaptive. */
  int ephemeral;
  bool firewalled;      /* start sending requests from the client socket (default true) */
  bool quick_firewall;  /* PING_NAT the first bootstrap responder (default true) */
  /* DHT.bootstrapper(port, host): persistent from the start with id = hash(host, port). */
  bool bootstrapper;
  hsp_ipv4_addr_t bootstrapper_addr;
  size_t concurrency;   /* 0 = 10 */
  size_t k;             /* 0 = 20 */
  int down_hints_per_tick; /* 0 = 50, -1 = unlimited */
  bool no_down_hints;
  /* Randomness (ids, tids, token secrets, tick offsets); NULL = libsodium randombytes. */
  void (*random)(void *ctx, uint8_t *buf, size_t len);
  void *random_ctx;
  /* Application commands. Return true if handled (the handler replies now or later with
   * hsp_dht_node_reply, or deliberately never, so the requester times out); false makes
   * the node answer UNKNOWN_COMMAND, like a JS node without a `request` listener. */
  bool (*on_request)(void *ctx, hsp_dht_node_t *node, const hsp_dht_incoming_t *req);
  void (*on_event)(void *ctx, hsp_dht_node_t *node, int event);
  void *ctx;
} hsp_dht_config_t;

/* Fills the defaults described above (adaptive, firewalled, quick firewall on). */
void hsp_dht_config_default(hsp_dht_config_t *cfg);

/* A reply in a query's closest set (k closest responders with verified ids). */
typedef struct hsp_dht_closest_reply {
  hsp_ipv4_addr_t from;
  uint8_t id[HSP_DHT_ID_SIZE];
  bool has_token;
  uint8_t token[HSP_DHT_TOKEN_SIZE];
  hsp_ipv4_addr_t to;
} hsp_dht_closest_reply_t;

/* Query options: a lookup towards `target` with `command` (internal FIND_NODE or an
 * application command with an optional value), optionally committing to the k closest. */
typedef struct hsp_dht_query_opts {
  uint8_t target[HSP_DHT_ID_SIZE];
  bool internal;
  uint64_t command;
  const uint8_t *value; /* copied */
  size_t value_len;
  bool has_value;
  size_t concurrency;   /* 0 = node's */
  int retries;          /* <0 = default (5; 3 for DOWN_HINT) */
  bool commit;          /* auto-commit: {token, target, command, value} to each closest reply */
  /* Custom commit (e.g. hyperdht ANNOUNCE with a per-node signature): when set, each commit
   * request carries commit_command and the value this writes into buf (return its length,
   * or a negative error to skip that node). Implies commit. */
  long (*commit_value)(void *ctx, const struct hsp_dht_closest_reply *reply, uint8_t *buf,
                       size_t cap);
  uint64_t commit_command;
  void *commit_ctx;
  /* Seed nodes to start from instead of the routing table (e.g. a previous closest set). */
  const hsp_ipv4_addr_t *nodes;
  size_t node_count;
} hsp_dht_query_opts_t;

typedef struct hsp_dht_query_result {
  int err; /* 0, HSP_DHT_ETOOFEW, HSP_DHT_ENOTOKEN, HSP_DHT_EDESTROYED, ... */
  size_t successes, errors;
  const hsp_dht_closest_reply_t *closest; /* sorted by distance to target, at most k */
  size_t closest_count;
  size_t commits_ok;
} hsp_dht_query_result_t;

typedef struct hsp_dht_query_cbs {
  /* Each successful reply (error 0). May be NULL. */
  void (*on_reply)(void *ctx, const hsp_dht_reply_t *reply);
  /* Once, at the end (also on destroy). */
  void (*on_done)(void *ctx, const hsp_dht_query_result_t *result);
  void *ctx;
} hsp_dht_query_cbs_t;

/* Per-request options for hsp_dht_node_request. */
typedef struct hsp_dht_request_opts {
  hsp_ipv4_addr_t to;
  bool internal;
  uint64_t command;
  const uint8_t *token;  /* copied */
  const uint8_t *target; /* copied */
  const uint8_t *value;  /* copied */
  size_t value_len;
  bool has_value;
  int retries;     /* <0 = 3 */
  uint32_t timeout_ms; /* 0 = 1000 per send */
  bool force;      /* skip the congestion window, no retries */
  int socket;      /* -1 = the node's request socket */
  uint8_t ttl;
} hsp_dht_request_opts_t;

void hsp_dht_request_opts_default(hsp_dht_request_opts_t *o);

/* Reply options for hsp_dht_node_reply. */
typedef struct hsp_dht_reply_opts {
  uint64_t error;        /* 0 = success */
  const uint8_t *value;
  size_t value_len;
  bool has_value;
  bool token;            /* include a token (default for app replies: true) */
  bool closer_nodes;     /* include closer nodes when the request had a target (true) */
  const hsp_ipv4_addr_t *to; /* override destination (NULL = requester) */
  int socket;            /* -1 = the socket the request arrived on */
} hsp_dht_reply_opts_t;

void hsp_dht_reply_opts_default(hsp_dht_reply_opts_t *o);

/* Node lifecycle. init copies cfg; returns 0 or HSP_DHT_ENOMEM. */
int hsp_dht_node_init(hsp_dht_node_t **out, const hsp_dht_config_t *cfg, uint64_t now);
void hsp_dht_node_destroy(hsp_dht_node_t *node);
void hsp_dht_node_start(hsp_dht_node_t *node, uint64_t now);

/* I/O entry points. */
void hsp_dht_node_recv(hsp_dht_node_t *node, int socket, const hsp_ipv4_addr_t *from,
                       const uint8_t *buf, size_t len, uint64_t now);
void hsp_dht_node_advance(hsp_dht_node_t *node, uint64_t now);
uint64_t hsp_dht_node_next_deadline(const hsp_dht_node_t *node); /* UINT64_MAX = none */
bool hsp_dht_node_next_datagram(hsp_dht_node_t *node, hsp_dht_datagram_t *out);

/* State. */
bool hsp_dht_node_bootstrapped(const hsp_dht_node_t *node);
bool hsp_dht_node_ephemeral(const hsp_dht_node_t *node);
bool hsp_dht_node_firewalled(const hsp_dht_node_t *node);
/* Our id when persistent (NULL while ephemeral). */
const uint8_t *hsp_dht_node_id(const hsp_dht_node_t *node);
/* The routing table (its id is the table centre, random while ephemeral). */
hsp_dht_table_t *hsp_dht_node_table(hsp_dht_node_t *node);
const hsp_dht_nat_sampler_t *hsp_dht_node_nat(const hsp_dht_node_t *node);
/* Our public address if known, reachable and persistent-capable (dht-rpc remoteAddress()). */
bool hsp_dht_node_remote_address(const hsp_dht_node_t *node, hsp_ipv4_addr_t *out);
size_t hsp_dht_node_inflight(const hsp_dht_node_t *node);
/* The latest time the node was given (by init, recv or advance). */
uint64_t hsp_dht_node_now(const hsp_dht_node_t *node);
/* Add a known node (e.g. from a saved list); its id is derived from the address. */
void hsp_dht_node_add_node(hsp_dht_node_t *node, const hsp_ipv4_addr_t *addr);

/* Single request. Returns a positive handle or a negative error; cb fires exactly once. */
long hsp_dht_node_request(hsp_dht_node_t *node, const hsp_dht_request_opts_t *opts,
                          hsp_dht_response_cb cb, void *ctx);
/* Cancel a request by handle: cb fires with HSP_DHT_EDESTROYED. */
void hsp_dht_node_cancel(hsp_dht_node_t *node, long handle);
/* Answer an application request (copy of the hsp_dht_incoming_t is fine). */
int hsp_dht_node_reply(hsp_dht_node_t *node, const hsp_dht_incoming_t *req,
                       const hsp_dht_reply_opts_t *opts);
/* Forward a request to `to` with the same tid/command/target, a new value, no token. */
int hsp_dht_node_relay(hsp_dht_node_t *node, const hsp_dht_incoming_t *req, const uint8_t *value,
                       size_t value_len, bool has_value, const hsp_ipv4_addr_t *to, int socket);

/* Iterative lookup. Returns a positive handle or a negative error. The query starts at the
 * next hsp_dht_node_advance() (next_deadline reports it as due at once). */
long hsp_dht_node_query(hsp_dht_node_t *node, const hsp_dht_query_opts_t *opts,
                        const hsp_dht_query_cbs_t *cbs);
/* FIND_NODE lookup of target. */
long hsp_dht_node_find_node(hsp_dht_node_t *node, const uint8_t target[HSP_DHT_ID_SIZE],
                            const hsp_dht_query_cbs_t *cbs);
void hsp_dht_node_query_destroy(hsp_dht_node_t *node, long handle);

#endif
