#include "sim.h"

#include <stdlib.h>
#include <string.h>

uint64_t sim_rand(uint64_t *x) { /* xorshift64* */
  *x ^= *x >> 12;
  *x ^= *x << 25;
  *x ^= *x >> 27;
  return *x * 0x2545F4914F6CDD1DULL;
}

static void node_random(void *ctx, uint8_t *buf, size_t len) {
  uint64_t *state = ctx;
  for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)(sim_rand(state) >> 56);
}

hsp_ipv4_addr_t sim_server_addr(int i) {
  return (hsp_ipv4_addr_t){{127, 0, 0, 1}, (uint16_t)(SIM_SERVER_BASE + i)};
}
hsp_ipv4_addr_t sim_client_addr(int i) {
  return (hsp_ipv4_addr_t){{127, 0, 0, 1}, (uint16_t)(SIM_CLIENT_BASE + i)};
}

void sim_init(sim_t *s, uint64_t seed) {
  memset(s, 0, sizeof(*s));
  s->rng = seed * 2654435761u + 1;
  s->latency_min = 5;
  s->latency_max = 40;
  s->now = 1000000;
}

void sim_free(sim_t *s) {
  for (int i = 0; i < s->count; i++) hsp_dht_node_destroy(s->nodes[i].dht);
  for (size_t i = 0; i < s->heap_len; i++) free(s->heap[i].data);
  free(s->heap);
}

int sim_add_node(sim_t *s, hsp_dht_config_t *cfg) {
  int i = s->count;
  if (i >= SIM_MAX_NODES) return -1;
  sim_node_t *sn = &s->nodes[i];
  sn->rng = sim_rand(&s->rng) | 1;
  cfg->server_port = (uint16_t)(SIM_SERVER_BASE + i);
  cfg->random = node_random;
  cfg->random_ctx = &sn->rng;
  if (hsp_dht_node_init(&sn->dht, cfg, s->now) != 0) return -1;
  sn->alive = true;
  s->count++;
  return i;
}

static bool before(const sim_packet_t *a, const sim_packet_t *b) {
  return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void heap_push(sim_t *s, sim_packet_t p) {
  if (s->heap_len == s->heap_cap) {
    s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 256;
    s->heap = realloc(s->heap, s->heap_cap * sizeof(*s->heap));
  }
  size_t i = s->heap_len++;
  s->heap[i] = p;
  while (i > 0 && before(&s->heap[i], &s->heap[(i - 1) / 2])) {
    sim_packet_t t = s->heap[i];
    s->heap[i] = s->heap[(i - 1) / 2];
    s->heap[(i - 1) / 2] = t;
    i = (i - 1) / 2;
  }
}

static sim_packet_t heap_pop(sim_t *s) {
  sim_packet_t top = s->heap[0];
  s->heap[0] = s->heap[--s->heap_len];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < s->heap_len && before(&s->heap[l], &s->heap[m])) m = l;
    if (r < s->heap_len && before(&s->heap[r], &s->heap[m])) m = r;
    if (m == i) break;
    sim_packet_t t = s->heap[i];
    s->heap[i] = s->heap[m];
    s->heap[m] = t;
    i = m;
  }
  return top;
}

void sim_collect(sim_t *s) {
  for (int i = 0; i < s->count; i++) {
    hsp_dht_datagram_t d;
    while (hsp_dht_node_next_datagram(s->nodes[i].dht, &d)) {
      s->sent++;
      if (!s->nodes[i].alive) continue;
      int to_node = -1, to_socket = 0;
      bool lo = d.to.host[0] == 127 && d.to.host[1] == 0 && d.to.host[2] == 0 && d.to.host[3] == 1;
      if (lo && d.to.port >= SIM_SERVER_BASE && d.to.port < SIM_SERVER_BASE + s->count) {
        to_node = d.to.port - SIM_SERVER_BASE;
        to_socket = HSP_DHT_SOCKET_SERVER;
      } else if (lo && d.to.port >= SIM_CLIENT_BASE && d.to.port < SIM_CLIENT_BASE + s->count) {
        to_node = d.to.port - SIM_CLIENT_BASE;
        to_socket = HSP_DHT_SOCKET_CLIENT;
      }
      if (to_node < 0 || sim_rand(&s->rng) % 1000 < s->loss_permille) {
        s->dropped++;
        continue;
      }
      uint32_t span = s->latency_max - s->latency_min + 1;
      sim_packet_t p = {.at = s->now + s->latency_min + sim_rand(&s->rng) % span,
                        .seq = s->seq++, .from_node = i, .to_socket = to_socket,
                        .to_node = to_node,
                        .from = d.socket == HSP_DHT_SOCKET_SERVER ? sim_server_addr(i)
                                                                  : sim_client_addr(i),
                        .len = d.len};
      if (s->filter && !s->filter(s, &p)) {
        s->dropped++;
        continue;
      }
      p.data = malloc(d.len);
      memcpy(p.data, d.data, d.len);
      heap_push(s, p);
    }
  }
}

bool sim_run(sim_t *s, uint64_t until, bool (*done)(sim_t *s, void *ctx), void *ctx) {
  sim_collect(s);
  for (;;) {
    if (done && done(s, ctx)) return true;
    uint64_t next = UINT64_MAX;
    if (s->heap_len) next = s->heap[0].at;
    for (int i = 0; i < s->count; i++) {
      if (s->nodes[i].frozen) continue;
      uint64_t d = hsp_dht_node_next_deadline(s->nodes[i].dht);
      if (d < next) next = d;
    }
    if (s->extra_deadline) {
      uint64_t d = s->extra_deadline(s->extra_ctx);
      if (d < next) next = d;
    }
    if (next > until) {
      s->now = until;
      return done ? done(s, ctx) : true;
    }
    if (next > s->now) s->now = next;
    while (s->heap_len && s->heap[0].at <= s->now) {
      sim_packet_t p = heap_pop(s);
      if (s->nodes[p.to_node].alive && !s->nodes[p.to_node].frozen) {
        s->delivered++;
        hsp_dht_node_recv(s->nodes[p.to_node].dht, p.to_socket, &p.from, p.data, p.len, s->now);
      } else {
        s->dropped++;
      }
      free(p.data);
      sim_collect(s);
    }
    for (int i = 0; i < s->count; i++)
      if (!s->nodes[i].frozen && hsp_dht_node_next_deadline(s->nodes[i].dht) <= s->now)
        hsp_dht_node_advance(s->nodes[i].dht, s->now);
    if (s->extra_advance && s->extra_deadline(s->extra_ctx) <= s->now) {
      s->extra_advance(s->extra_ctx, s->now);
      /* the extra machine may have queued requests on a node: let it start them */
      for (int i = 0; i < s->count; i++)
        if (!s->nodes[i].frozen) hsp_dht_node_advance(s->nodes[i].dht, s->now);
    }
    sim_collect(s);
  }
}
