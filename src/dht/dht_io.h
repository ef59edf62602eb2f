/*
 * The libuv I/O layer of a DHT node: one hsp_dht node (dht.h) plus a hyperdht store (store.h)
 * on two hsp_udx sockets (server socket on the configured port, client socket on a random
 * one) of one hsp_udx_t, so hyperdht connections (hyper_conn.h) share the node's ports.
 *
 * DHT datagrams (first byte 0x03 / 0x13) reach the node through the sockets' recv callback
 * (UDX packets for live streams never get there); other raw datagrams are dropped. A uv
 * timer follows the node's next_deadline, and a uv_prepare handle flushes pending datagrams
 * and re-arms the timer before every poll, so callers may use the node (requests, queries,
 * hyper_client.h operations) from any callback of the loop without a "kick".
 *
 * Higher layers add their own deadlines as tickers (hsp_dht_io_ticker_t).
 */
#ifndef HSP_DHT_IO_H
#define HSP_DHT_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "dht.h"
#include "punch.h"
#include "store.h"
#include "udx.h"

/* The public HyperDHT bootstrap nodes (hyperdht constants.js), used when no list is given. */
#define HSP_DHT_PUBLIC_BOOTSTRAP \
  "node1.hyperdht.org:49737,node2.hyperdht.org:49737,node3.hyperdht.org:49737"

typedef struct hsp_dht_io hsp_dht_io_t;

typedef struct hsp_dht_io_opts {
  const char *host;      /* bind address, default "0.0.0.0" */
  uint16_t port;         /* server socket port, 0 = any */
  /* "host:port[,host:port...]"; NULL = the public nodes; "" = none: this node is the
   * bootstrapper (first node) of a private network, persistent from the start. */
  const char *bootstrap;
  int ephemeral;         /* as hsp_dht_config_t: 1, 0 (persistent) or -1 (adaptive, default) */
  bool firewalled;       /* start firewalled (default true) */
} hsp_dht_io_opts_t;

void hsp_dht_io_opts_default(hsp_dht_io_opts_t *o);

/* Parses a bootstrap list (hostnames resolved with getaddrinfo, IPv4 only). Returns the
 * number of addresses or a negative HSP_DHT_E* error. */
int hsp_dht_parse_bootstrap(const char *list, hsp_ipv4_addr_t *out, size_t max);

typedef struct hsp_dht_io_ticker hsp_dht_io_ticker_t;
struct hsp_dht_io_ticker {
  uint64_t (*deadline)(hsp_dht_io_ticker_t *t);    /* UINT64_MAX = none */
  void (*advance)(hsp_dht_io_ticker_t *t, uint64_t now);
  hsp_dht_io_ticker_t *next; /* private */
  unsigned pass;             /* private */
};

/* Binds the sockets and starts bootstrapping. Returns 0 or a negative error (HSP_DHT_E* or
 * HSP_UDX_E* for socket failures; both print with hsp_dht_io_strerror). */
int hsp_dht_io_create(hsp_dht_io_t **out, uv_loop_t *loop, const hsp_dht_io_opts_t *opts);
const char *hsp_dht_io_strerror(int err);

/* on_ready fires once bootstrapping finished (may be immediately for a bootstrapper). */
void hsp_dht_io_on_ready(hsp_dht_io_t *io, void (*cb)(hsp_dht_io_t *io, void *ctx), void *ctx);

hsp_dht_node_t *hsp_dht_io_node(hsp_dht_io_t *io);
hsp_dht_store_t *hsp_dht_io_store(hsp_dht_io_t *io);
hsp_udx_t *hsp_dht_io_udx(hsp_dht_io_t *io);
uv_loop_t *hsp_dht_io_loop(hsp_dht_io_t *io);
/* socket 0 = server, 1 = client, 2.. = pool sockets (NULL once closed). */
hsp_udx_socket_t *hsp_dht_io_socket(hsp_dht_io_t *io, int which);
/* The bound address of the server socket. */
hsp_ipv4_addr_t hsp_dht_io_address(const hsp_dht_io_t *io);
uint64_t hsp_dht_io_now(const hsp_dht_io_t *io);
bool hsp_dht_io_ready(const hsp_dht_io_t *io);

void hsp_dht_io_add_ticker(hsp_dht_io_t *io, hsp_dht_io_ticker_t *t);
void hsp_dht_io_remove_ticker(hsp_dht_io_t *io, hsp_dht_io_ticker_t *t);
/* Re-evaluate deadlines soon (after a ticker's deadline moved earlier). */
void hsp_dht_io_wake(hsp_dht_io_t *io);

/* Raw datagrams that are not DHT messages (e.g. 1-byte holepunch probes) go here. */
typedef void (*hsp_dht_io_raw_cb)(void *ctx, int socket, const hsp_ipv4_addr_t *from,
                                  const uint8_t *buf, size_t len);
void hsp_dht_io_on_raw(hsp_dht_io_t *io, hsp_dht_io_raw_cb cb, void *ctx);

/*
 * Pool sockets (hyperdht socket-pool.js): extra UDP sockets on the same hsp_udx_t, bound to
 * the node's host on a random port, used by holepunchers. The DHT node sends and receives on
 * them under their id (requests and replies with `socket` = id); 1-byte probes and other raw
 * datagrams go to the socket's raw callback. A socket lives while it has references: open
 * gives one, a connection started on it takes another (hyper_conn), the last unref closes it
 * (which destroys streams still connected to it).
 */
#define HSP_DHT_IO_MAX_SOCKETS 320 /* ids 2..319: room for one birthday punch (256) and more */
#define HSP_DHT_IO_DEFAULT_TTL 64
/* Returns the socket id (>= 2) or a negative error. */
int hsp_dht_io_socket_open(hsp_dht_io_t *io, hsp_dht_io_raw_cb raw, void *ctx);
void hsp_dht_io_socket_set_raw(hsp_dht_io_t *io, int id, hsp_dht_io_raw_cb raw, void *ctx);
void hsp_dht_io_socket_ref(hsp_dht_io_t *io, int id);
void hsp_dht_io_socket_unref(hsp_dht_io_t *io, int id);
/* Id of one of our sockets, -1 if unknown. */
int hsp_dht_io_socket_id(hsp_dht_io_t *io, const hsp_udx_socket_t *s);
/* A 1-byte holepunch probe (0x00) from socket id with IP TTL ttl (0 = default). */
int hsp_dht_io_send_probe(hsp_dht_io_t *io, int id, const hsp_ipv4_addr_t *to, uint8_t ttl);

/* The DHT instance's random punch limiter (shared by its clients and servers). */
hsp_dht_punch_limit_t *hsp_dht_io_punch_limit(hsp_dht_io_t *io);

/* connect.js relay address cache (dht._relayAddressesCache): the nodes that routed our last
 * successful connect to a target, so the next connect can send its handshake at once. */
#define HSP_DHT_IO_RELAY_CACHE 64
#define HSP_DHT_IO_CACHED_RELAYS 3
size_t hsp_dht_io_relay_cache_get(hsp_dht_io_t *io, const uint8_t target[32],
                                  hsp_ipv4_addr_t out[HSP_DHT_IO_CACHED_RELAYS]);
void hsp_dht_io_relay_cache_set(hsp_dht_io_t *io, const uint8_t target[32],
                                const hsp_ipv4_addr_t *relays, size_t n);

/* holepuncher.js localAddresses: our LAN addresses with the server socket's port: the bind
 * host if it is specific (e.g. 127.0.0.1), else every non-internal IPv4 interface, else
 * 127.0.0.1. Returns the count (at most max). */
size_t hsp_dht_io_local_addresses(hsp_dht_io_t *io, hsp_ipv4_addr_t *out, size_t max);

/* Application request hook run before the store (e.g. test commands); may be NULL. */
void hsp_dht_io_on_request(hsp_dht_io_t *io,
                           bool (*cb)(void *ctx, hsp_dht_node_t *node,
                                      const hsp_dht_incoming_t *req),
                           void *ctx);

/* Closes sockets and handles; cb (may be NULL) runs from the loop when everything is freed.
 * Every ticker user (servers, connections) must have been closed first. */
void hsp_dht_io_close(hsp_dht_io_t *io, void (*cb)(void *ctx), void *ctx);

#endif
