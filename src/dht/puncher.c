/* Holepuncher I/O shell (puncher.h). */
#include "puncher.h"

#include <stdlib.h>
#include <string.h>

#include "hyper_messages.h"

#define NAT_PINGS 4

struct hsp_dht_puncher {
  hsp_dht_io_t *io;
  hsp_dht_puncher_cbs_t cbs;
  bool initiator, destroyed, connected, punching;
  bool analyzed, analyzed_pending, abort_pending;
  bool sample_retried;
  int sockets[HSP_DHT_BIRTHDAY_SOCKETS]; /* [0] = main; birthday sockets after */
  size_t nsockets;
  hsp_dht_nat_classifier_t nat;
  long pings[NAT_PINGS * 2];
  size_t npings;
  int pending_pings;
  int remote_firewall;
  bool remote_punching;
  hsp_ipv4_addr_t remote[HSP_DHT_PUNCH_MAX_REMOTE];
  bool verified[HSP_DHT_PUNCH_MAX_REMOTE];
  size_t nremote;
  hsp_dht_punch_t plan;
  bool planned;
  bool randomized; /* counted in the io's random punch limit */
  hsp_dht_io_ticker_t ticker;
};

static void unrandomize(hsp_dht_puncher_t *p) {
  if (!p->randomized) return;
  p->randomized = false;
  hsp_dht_punch_limit_end(hsp_dht_io_punch_limit(p->io), hsp_dht_io_now(p->io));
}

static hsp_dht_puncher_t *of_ticker(hsp_dht_io_ticker_t *t) {
  return (hsp_dht_puncher_t *)((char *)t - offsetof(hsp_dht_puncher_t, ticker));
}

static void settle(hsp_dht_puncher_t *p) {
  if (p->analyzed) return;
  p->analyzed = true;
  p->analyzed_pending = true; /* reported from the ticker, never from inside a call */
  hsp_dht_io_wake(p->io);
}

static void raw(void *ctx, int socket, const hsp_ipv4_addr_t *from, const uint8_t *buf,
                size_t len) {
  hsp_dht_puncher_t *p = ctx;
  (void)buf;
  if (len != 1 || p->destroyed) return;
  if (!p->initiator) {
    /* The responder cannot connect a socket to many hosts: it echoes, the initiator picks. */
    hsp_dht_io_send_probe(p->io, socket, from, HSP_DHT_DEFAULT_TTL);
    return;
  }
  if (p->connected) return;
  p->connected = true;
  p->punching = false;
  hsp_dht_punch_stop(&p->plan);
  unrandomize(p);
  /* Keep only the socket that worked (as main), release the birthday sockets. */
  for (size_t i = 0; i < p->nsockets; i++)
    if (p->sockets[i] != socket) hsp_dht_io_socket_unref(p->io, p->sockets[i]);
  p->sockets[0] = socket;
  p->nsockets = 1;
  if (p->cbs.on_connect) p->cbs.on_connect(p->cbs.ctx, socket, from);
}

static void on_ping(void *ctx, const hsp_dht_reply_t *r, int err);

static int cmp_contact(const void *a, const void *b) {
  const hsp_dht_table_node_t *x = *(hsp_dht_table_node_t *const *)a;
  const hsp_dht_table_node_t *y = *(hsp_dht_table_node_t *const *)b;
  return x->contact < y->contact ? 1 : x->contact > y->contact ? -1 : 0;
}

static bool visited(const hsp_dht_puncher_t *p, const hsp_ipv4_addr_t *a) {
  for (size_t i = 0; i < p->nat.nvisited; i++)
    if (hsp_dht_addr_equal(&p->nat.visited[i], a)) return true;
  return false;
}

/* nat.js autoSample: ping the most recently seen nodes from our socket. */
static void auto_sample(hsp_dht_puncher_t *p, hsp_ipv4_addr_t *asked, size_t *nasked) {
  hsp_dht_node_t *node = hsp_dht_io_node(p->io);
  hsp_dht_table_t *t = hsp_dht_node_table(node);
  size_t n = t->size;
  hsp_dht_table_node_t **all = n ? malloc(n * sizeof(*all)) : NULL;
  if (n && !all) return;
  for (size_t i = 0; i < n; i++) all[i] = hsp_dht_table_at(t, i);
  qsort(all, n, sizeof(*all), cmp_contact);
  size_t skip = n >= 8 ? 5 : 0;
  for (size_t i = skip; i < n && p->nat.sampled + (size_t)p->pending_pings < NAT_PINGS &&
                        p->npings < sizeof(p->pings) / sizeof(p->pings[0]);
       i++) {
    bool seen = visited(p, &all[i]->addr);
    for (size_t j = 0; j < *nasked && !seen; j++) seen = hsp_dht_addr_equal(&asked[j], &all[i]->addr);
    if (seen) continue;
    asked[(*nasked)++] = all[i]->addr;
    hsp_dht_request_opts_t o;
    hsp_dht_request_opts_default(&o);
    o.to = all[i]->addr;
    o.internal = true;
    o.command = HSP_DHT_CMD_PING;
    o.socket = p->sockets[0];
    o.retries = 0;
    long h = hsp_dht_node_request(node, &o, on_ping, p);
    if (h > 0) {
      p->pings[p->npings++] = h;
      p->pending_pings++;
    }
  }
  free(all);
}

static void sample_round(hsp_dht_puncher_t *p) {
  hsp_ipv4_addr_t asked[NAT_PINGS * 2];
  size_t nasked = 0;
  auto_sample(p, asked, &nasked);
  if (p->pending_pings == 0) {
    if (!p->sample_retried) {
      p->sample_retried = true;
      auto_sample(p, asked, &nasked);
    }
    if (p->pending_pings == 0) settle(p);
  }
}

static void on_ping(void *ctx, const hsp_dht_reply_t *r, int err) {
  hsp_dht_puncher_t *p = ctx;
  p->pending_pings--;
  if (p->destroyed) return;
  if (!err && r) hsp_dht_puncher_sample(p, &r->to, &r->from);
  if (p->pending_pings == 0 && p->nat.sampled < HSP_DHT_NAT_MIN_SAMPLES && !p->analyzed) {
    if (!p->sample_retried) {
      p->sample_retried = true;
      hsp_ipv4_addr_t asked[NAT_PINGS * 2];
      size_t nasked = 0;
      auto_sample(p, asked, &nasked);
    }
    if (p->pending_pings == 0) settle(p);
  }
}

static uint64_t tick_deadline(hsp_dht_io_ticker_t *t) {
  hsp_dht_puncher_t *p = of_ticker(t);
  if (p->analyzed_pending || p->abort_pending) return 0;
  return p->planned ? hsp_dht_punch_deadline(&p->plan) : UINT64_MAX;
}

static void tick_advance(hsp_dht_io_ticker_t *t, uint64_t now) {
  hsp_dht_puncher_t *p = of_ticker(t);
  if (p->analyzed_pending) {
    p->analyzed_pending = false;
    if (p->cbs.on_analyzed) p->cbs.on_analyzed(p->cbs.ctx);
    return; /* the callback may have destroyed p */
  }
  if (p->abort_pending) {
    p->abort_pending = false;
    if (p->cbs.on_abort) p->cbs.on_abort(p->cbs.ctx);
    return;
  }
  hsp_dht_punch_action_t a;
  while (p->planned && hsp_dht_punch_next(&p->plan, now, &a)) {
    if (a.kind == HSP_DHT_PUNCH_DONE) {
      p->punching = false;
      if (!p->connected) {
        p->abort_pending = true;
        hsp_dht_io_wake(p->io);
      }
      return;
    }
    if (a.kind == HSP_DHT_PUNCH_OPEN_SOCKET) {
      /* Out of sockets: the probes planned for the missing ones are skipped below. */
      int id = p->nsockets < HSP_DHT_BIRTHDAY_SOCKETS ? hsp_dht_io_socket_open(p->io, raw, p) : -1;
      if (id >= 0) p->sockets[p->nsockets++] = id;
      continue;
    }
    if (a.socket < p->nsockets) hsp_dht_io_send_probe(p->io, p->sockets[a.socket], &a.to, a.ttl);
  }
}

int hsp_dht_puncher_create(hsp_dht_puncher_t **out, hsp_dht_io_t *io, bool initiator,
                           int remote_firewall, const hsp_dht_puncher_cbs_t *cbs) {
  hsp_dht_puncher_t *p = calloc(1, sizeof(*p));
  if (!p) return HSP_DHT_ENOMEM;
  p->io = io;
  p->cbs = *cbs;
  p->initiator = initiator;
  p->remote_firewall = remote_firewall;
  int id = hsp_dht_io_socket_open(io, raw, p);
  if (id < 0) {
    free(p);
    return id;
  }
  p->sockets[0] = id;
  p->nsockets = 1;
  hsp_dht_nat_classifier_init(&p->nat, hsp_dht_node_firewalled(hsp_dht_io_node(io)));
  p->ticker.deadline = tick_deadline;
  p->ticker.advance = tick_advance;
  hsp_dht_io_add_ticker(io, &p->ticker);
  if (p->nat.firewall == HSP_HYPER_FIREWALL_OPEN) settle(p);
  else sample_round(p);
  *out = p;
  return 0;
}

void hsp_dht_puncher_destroy(hsp_dht_puncher_t *p) {
  if (!p || p->destroyed) return;
  p->destroyed = true;
  unrandomize(p);
  hsp_dht_node_t *node = hsp_dht_io_node(p->io);
  for (size_t i = 0; i < p->npings; i++) hsp_dht_node_cancel(node, p->pings[i]);
  hsp_dht_io_remove_ticker(p->io, &p->ticker);
  /* A socket a connection still uses stays open; its probes must not reach us any more. */
  for (size_t i = 0; i < p->nsockets; i++) {
    hsp_dht_io_socket_set_raw(p->io, p->sockets[i], NULL, NULL);
    hsp_dht_io_socket_unref(p->io, p->sockets[i]);
  }
  free(p);
}

int hsp_dht_puncher_socket(const hsp_dht_puncher_t *p) { return p->sockets[0]; }
bool hsp_dht_puncher_analyzed(const hsp_dht_puncher_t *p) { return p->analyzed; }
int hsp_dht_puncher_firewall(const hsp_dht_puncher_t *p) { return p->nat.firewall; }
int hsp_dht_puncher_remote_firewall(const hsp_dht_puncher_t *p) { return p->remote_firewall; }
bool hsp_dht_puncher_remote_punching(const hsp_dht_puncher_t *p) { return p->remote_punching; }
bool hsp_dht_puncher_punching(const hsp_dht_puncher_t *p) { return p->punching; }
bool hsp_dht_puncher_connected(const hsp_dht_puncher_t *p) { return p->connected; }

const hsp_ipv4_addr_t *hsp_dht_puncher_addresses(const hsp_dht_puncher_t *p, size_t *count) {
  *count = p->nat.has_addresses ? p->nat.naddresses : 0;
  return *count ? p->nat.addresses : NULL;
}

bool hsp_dht_puncher_has_address(const hsp_dht_puncher_t *p, const hsp_ipv4_addr_t *a) {
  size_t n;
  const hsp_ipv4_addr_t *list = hsp_dht_puncher_addresses(p, &n);
  for (size_t i = 0; i < n; i++)
    if (hsp_dht_addr_equal(&list[i], a)) return true;
  return false;
}

void hsp_dht_puncher_sample(hsp_dht_puncher_t *p, const hsp_ipv4_addr_t *to,
                            const hsp_ipv4_addr_t *from) {
  if (hsp_dht_nat_classifier_add(&p->nat, to, from)) settle(p);
}

void hsp_dht_puncher_freeze(hsp_dht_puncher_t *p) { hsp_dht_nat_classifier_freeze(&p->nat); }

void hsp_dht_puncher_update_remote(hsp_dht_puncher_t *p, bool punching, int firewall,
                                   const uint8_t *addrs, size_t count,
                                   const uint8_t *verified_host) {
  hsp_ipv4_addr_t next[HSP_DHT_PUNCH_MAX_REMOTE];
  bool ver[HSP_DHT_PUNCH_MAX_REMOTE];
  if (count > HSP_DHT_PUNCH_MAX_REMOTE) count = HSP_DHT_PUNCH_MAX_REMOTE;
  for (size_t i = 0; i < count; i++) {
    next[i] = hsp_dht_addr_from_wire(addrs + 6 * i);
    ver[i] = verified_host && !memcmp(verified_host, next[i].host, 4);
    for (size_t j = 0; j < p->nremote && !ver[i]; j++)
      ver[i] = p->verified[j] && !memcmp(p->remote[j].host, next[i].host, 4);
  }
  memcpy(p->remote, next, count * sizeof(next[0]));
  memcpy(p->verified, ver, count * sizeof(ver[0]));
  p->nremote = count;
  p->remote_firewall = firewall;
  p->remote_punching = punching;
}

void hsp_dht_puncher_ping(hsp_dht_puncher_t *p, const hsp_ipv4_addr_t *to) {
  hsp_dht_io_send_probe(p->io, p->sockets[0], to, HSP_DHT_DEFAULT_TTL);
}

void hsp_dht_puncher_open_session(hsp_dht_puncher_t *p, const hsp_ipv4_addr_t *to) {
  hsp_dht_io_send_probe(p->io, p->sockets[0], to, HSP_DHT_HOLEPUNCH_TTL);
}

int hsp_dht_puncher_punch(hsp_dht_puncher_t *p) {
  if (p->planned) return p->plan.strategy;
  if (p->destroyed || p->connected || !p->nremote) return HSP_DHT_PUNCH_NONE;
  int s = hsp_dht_punch_init(&p->plan, p->nat.firewall, p->remote_firewall, p->remote,
                             p->verified, p->nremote, p->initiator, hsp_dht_io_now(p->io), NULL,
                             NULL);
  if (!s) return s;
  if (s != HSP_DHT_PUNCH_CONSISTENT) {
    p->randomized = true;
    hsp_dht_punch_limit_begin(hsp_dht_io_punch_limit(p->io));
  }
  p->planned = true;
  p->punching = true;
  hsp_dht_io_wake(p->io);
  return s;
}
