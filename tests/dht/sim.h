/*
 * Deterministic in-process network for sans-I/O DHT nodes: a simulated clock, per-datagram
 * latency and loss from a seeded PRNG. Node i owns 127.0.0.1:(10000+i) as its server socket
 * and 127.0.0.1:(20000+i) as its client socket; no real socket is ever opened.
 */
#ifndef HSP_TESTS_DHT_SIM_H
#define HSP_TESTS_DHT_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "dht.h"

#define SIM_MAX_NODES 256
#define SIM_SERVER_BASE 10000
#define SIM_CLIENT_BASE 20000

typedef struct sim_packet {
  uint64_t at, seq;
  int from_node, to_socket, to_node;
  hsp_ipv4_addr_t from;
  uint8_t *data;
  size_t len;
} sim_packet_t;

typedef struct sim_node {
  hsp_dht_node_t *dht;
  bool alive;  /* dead nodes drop everything */
  bool frozen; /* a sleeping machine: no timers, no input, resumes later */
  uint64_t rng;
  void *user;
} sim_node_t;

typedef struct sim {
  uint64_t now;
  uint64_t rng;
  uint32_t loss_permille;
  uint32_t latency_min, latency_max;
  sim_node_t nodes[SIM_MAX_NODES];
  int count;
  sim_packet_t *heap;
  size_t heap_len, heap_cap;
  uint64_t seq;
  uint64_t sent, dropped, delivered;
  /* Optional hook: return false to drop a datagram (after loss). */
  bool (*filter)(struct sim *s, const sim_packet_t *p);
  /* Optional extra state machine driven by the same clock (e.g. an announcer). */
  uint64_t (*extra_deadline)(void *ctx);
  void (*extra_advance)(void *ctx, uint64_t now);
  void *extra_ctx;
} sim_t;

void sim_init(sim_t *s, uint64_t seed);
void sim_free(sim_t *s);
uint64_t sim_rand(uint64_t *state);
hsp_ipv4_addr_t sim_server_addr(int i);
hsp_ipv4_addr_t sim_client_addr(int i);
/* Creates node i (= s->count) with cfg (server_port and random are filled in). */
int sim_add_node(sim_t *s, hsp_dht_config_t *cfg);
/* Flush every node's outgoing datagrams into the network. */
void sim_collect(sim_t *s);
/* Run the network until `until` (absolute ms) or until done(s, ctx) returns true. */
bool sim_run(sim_t *s, uint64_t until, bool (*done)(sim_t *s, void *ctx), void *ctx);

#endif
