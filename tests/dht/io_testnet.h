/* A private DHT inside one test process: a bootstrapper plus `count - 1` more persistent
 * nodes on 127.0.0.1 (hsp_dht_io, one libuv loop), ready when io_testnet_ready() says so.
 * Peers (servers, clients) then join with io_testnet_peer(). */
#ifndef HSP_TESTS_IO_TESTNET_H
#define HSP_TESTS_IO_TESTNET_H

#include <stdbool.h>
#include <stddef.h>

#include "dht_io.h"

#define IO_TESTNET_MAX 8

typedef struct io_testnet {
  uv_loop_t *loop;
  hsp_dht_io_t *nodes[IO_TESTNET_MAX];
  size_t count;
  char bootstrap[32]; /* "127.0.0.1:port" of the first node */
} io_testnet_t;

/* Creates the nodes; returns 0 or a negative error. */
int io_testnet_start(io_testnet_t *t, uv_loop_t *loop, size_t count);
bool io_testnet_ready(const io_testnet_t *t);
/* A peer node (ephemeral, default firewall setting) bootstrapped from the testnet. */
int io_testnet_peer(const io_testnet_t *t, hsp_dht_io_t **out);
/* Closes every node (their close callbacks run from the loop). */
void io_testnet_close(io_testnet_t *t);
/* Runs the loop until done(ctx) or timeout_ms passed; returns done(ctx). */
bool io_testnet_run_until(uv_loop_t *loop, bool (*done)(void *ctx), void *ctx, uint64_t timeout_ms);
bool io_testnet_flag(void *flag); /* done() for a plain bool */
bool io_testnet_ready_cb(void *testnet);
/* Resident set size of this process in KiB (/proc/self/status VmRSS), or -1. */
long io_testnet_rss_kib(void);

#endif
