/*
 * The dht-rpc node as a sans-I/O state machine (docs/protocol/dht-rpc.md §1-§7): request
 * transport (tids, retries, congestion window), request handling, routing-table
 * maintenance, NAT sampling, persistence, bootstrap. Mirrors dht-rpc 6.27 index.js and
 * lib/io.js; deviations are noted where they are deliberate.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "node_internal.h"

#define RECENT_NODE 12
#define OLD_NODE 360
#define STABLE_TICKS 240
#define MORE_STABLE_TICKS (3 * STABLE_TICKS)
#define REFRESH_TICKS 60
#define MAX_CHECKS 10

static void user_done(hsp_dht_node_t *n, hsp_dht_req_t *r, const hsp_dht_reply_t *reply, int err);

static void emit_event(hsp_dht_node_t *n, int ev) {
  if (n->cfg.on_event) n->cfg.on_event(n->cfg.ctx, n, ev);
}

static void rnd(hsp_dht_node_t *n, void *buf, size_t len) {
  if (n->cfg.random) n->cfg.random(n->cfg.random_ctx, buf, len);
  else randombytes_buf(buf, len);
}

static uint32_t rnd32(hsp_dht_node_t *n) {
  uint32_t v;
  rnd(n, &v, sizeof(v));
  return v;
}

/* dht-rpc randomOffset(n) = n - floor(random * 0.5 * n): a value in (n/2, n]. */
static long random_offset(hsp_dht_node_t *n, long max) {
  double r = (double)rnd32(n) / 4294967296.0;
  return max - (long)(r * 0.5 * (double)max);
}

bool hsp_dht__grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return true;
  size_t c = *cap ? *cap * 2 : 8;
  while (c < need) c *= 2;
  void *p = realloc(*arr, c * elem);
  if (!p) return false;
  *arr = p;
  *cap = c;
  return true;
}

/* ---- congestion window (lib/io.js CongestionWindow) ---------------------------------- */

static bool cong_full(const hsp_dht_congestion_t *c) {
  return c->total >= 2 * c->max || c->window[c->i] >= c->max;
}
static void cong_send(hsp_dht_congestion_t *c) {
  c->total++;
  c->window[c->i]++;
}
static void cong_recv(hsp_dht_congestion_t *c) {
  if (c->window[c->i] > 0) {
    c->window[c->i]--;
    c->total--;
  }
}
static void cong_drain(hsp_dht_congestion_t *c) {
  c->i = (c->i + 1) & 3;
  c->total -= c->window[c->i];
  c->window[c->i] = 0;
}

/* ---- outgoing datagrams ------------------------------------------------------------------ */

static void emit_datagram(hsp_dht_node_t *n, int socket, const hsp_ipv4_addr_t *to, uint8_t ttl,
                          const uint8_t *buf, size_t len) {
  if (n->out_head > 0 && n->out_head == n->out_len) n->out_head = n->out_len = 0;
  if (!hsp_dht__grow((void **)&n->out, &n->out_cap, n->out_len + 1, sizeof(*n->out))) return;
  uint8_t *copy = malloc(len);
  if (!copy) return;
  memcpy(copy, buf, len);
  n->out[n->out_len++] = (hsp_dht_outgoing_t){socket, *to, ttl, copy, len};
}

bool hsp_dht_node_next_datagram(hsp_dht_node_t *n, hsp_dht_datagram_t *d) {
  free(n->out_last);
  n->out_last = NULL;
  if (n->out_head == n->out_len) {
    n->out_head = n->out_len = 0;
    return false;
  }
  hsp_dht_outgoing_t *o = &n->out[n->out_head++];
  n->out_last = o->buf;
  *d = (hsp_dht_datagram_t){o->socket, o->to, o->ttl, o->buf, o->len};
  return true;
}

/* ---- replies ----------------------------------------------------------------------------- */

static int request_socket(const hsp_dht_node_t *n) {
  return n->firewalled ? HSP_DHT_SOCKET_CLIENT : HSP_DHT_SOCKET_SERVER;
}

/* Request._sendReply: id only when persistent and answering from the server socket; closer
 * nodes (sorted by distance) only when the request had a target. */
static void send_reply(hsp_dht_node_t *n, int socket, uint16_t tid, const hsp_ipv4_addr_t *to,
                       uint64_t error, const uint8_t *value, size_t value_len, bool has_value,
                       bool token, const uint8_t *target, bool closer_nodes) {
  uint8_t tok[32], closer[HSP_DHT_K * 6];
  hsp_dht_response_t res = {.tid = tid, .to = *to, .error = error, .has_value = has_value,
                            .value = {value, value_len}};
  if (!n->ephemeral && socket == HSP_DHT_SOCKET_SERVER) res.id = n->table.id;
  if (token) {
    hsp_dht_token_create(&n->tokens, tok, to->host, 1);
    res.token = tok;
  }
  if (target && closer_nodes) {
    hsp_dht_table_node_t *near[HSP_DHT_K];
    size_t k = n->table.k < HSP_DHT_K ? n->table.k : HSP_DHT_K;
    size_t cnt = hsp_dht_table_closest(&n->table, target, near, k);
    for (size_t i = 0; i < cnt; i++) hsp_dht_addr_to_wire(closer + 6 * i, &near[i]->addr);
    res.closer = closer;
    res.closer_count = cnt;
  }
  uint8_t buf[2048];
  uint8_t *p = buf;
  long need = hsp_dht_response_size(&res);
  if (need < 0) return;
  if ((size_t)need > sizeof(buf) && !(p = malloc((size_t)need))) return;
  long len = hsp_dht_response_encode(p, (size_t)need, &res);
  if (len > 0) emit_datagram(n, socket, to, 0, p, (size_t)len);
  if (p != buf) free(p);
}

/* ---- requests ---------------------------------------------------------------------------- */

hsp_dht_req_t *hsp_dht__request_new(hsp_dht_node_t *n, const hsp_ipv4_addr_t *to,
                                    const uint8_t *to_id, bool internal, uint64_t command,
                                    const uint8_t *token, const uint8_t *target,
                                    const uint8_t *value, size_t value_len, bool has_value) {
  if (n->destroyed) return NULL;
  if (!hsp_dht__grow((void **)&n->inflight, &n->inflight_cap, n->inflight_len + 1, sizeof(void *)))
    return NULL;
  hsp_dht_req_t *r = calloc(1, sizeof(*r));
  if (!r) return NULL;
  if (has_value && value_len) {
    if (!(r->value = malloc(value_len))) {
      free(r);
      return NULL;
    }
    memcpy(r->value, value, value_len);
  }
  r->handle = ++n->next_handle;
  r->tid = n->tid++; /* uint16_t wraps at 65536 like the reference */
  r->to = *to;
  if (to_id) {
    r->to_has_id = true;
    memcpy(r->to_id, to_id, HSP_DHT_ID_SIZE);
  }
  r->socket = request_socket(n);
  r->internal = internal;
  r->command = command;
  if (token) {
    r->has_token = true;
    memcpy(r->token, token, 32);
  }
  if (target) {
    r->has_target = true;
    memcpy(r->target, target, 32);
  }
  r->has_value = has_value;
  r->value_len = value_len;
  r->retries = HSP_DHT_DEFAULT_RETRIES;
  n->inflight[n->inflight_len++] = r;
  return r;
}

static void send_now(hsp_dht_node_t *n, hsp_dht_req_t *r) {
  r->sent++;
  cong_send(&n->congestion);
  emit_datagram(n, r->socket, &r->to, r->ttl, r->buf, r->len);
  r->armed = true;
  r->deadline = n->now + (r->timeout_ms ? r->timeout_ms : HSP_DHT_REQUEST_TIMEOUT_MS);
}

void hsp_dht__request_send(hsp_dht_node_t *n, hsp_dht_req_t *r) {
  if (!r->buf) {
    hsp_dht_request_t m = {.tid = r->tid, .to = r->to, .internal = r->internal,
                           .command = r->command, .has_value = r->has_value,
                           .value = {r->value, r->value_len}};
    if (!n->ephemeral && r->socket == HSP_DHT_SOCKET_SERVER) m.id = n->table.id;
    if (r->has_token) m.token = r->token;
    if (r->has_target) m.target = r->target;
    long need = hsp_dht_request_size(&m);
    if (need > 0 && (r->buf = malloc((size_t)need)))
      r->len = (size_t)hsp_dht_request_encode(r->buf, (size_t)need, &m);
    if (!r->buf) { /* unencodable (value too large): fail like a timeout would, at once */
      r->armed = true;
      r->deadline = n->now;
      r->sent = r->retries + 1;
      return;
    }
  }
  if (!r->force && cong_full(&n->congestion)) {
    if (!r->queued && hsp_dht__grow((void **)&n->pending, &n->pending_cap, n->pending_len + 1, sizeof(void *))) {
      n->pending[n->pending_len++] = r;
      r->queued = true;
    }
    return;
  }
  send_now(n, r);
}

static void unqueue(hsp_dht_node_t *n, hsp_dht_req_t *r) {
  if (!r->queued) return;
  for (size_t i = 0; i < n->pending_len; i++) {
    if (n->pending[i] != r) continue;
    memmove(&n->pending[i], &n->pending[i + 1], (n->pending_len - i - 1) * sizeof(void *));
    n->pending_len--;
    break;
  }
  r->queued = false;
}

static bool detach(hsp_dht_node_t *n, hsp_dht_req_t *r) {
  for (size_t i = 0; i < n->inflight_len; i++) {
    if (n->inflight[i] != r) continue;
    n->inflight[i] = n->inflight[--n->inflight_len];
    unqueue(n, r);
    return true;
  }
  return false;
}

static void req_free(hsp_dht_req_t *r) {
  free(r->value);
  free(r->buf);
  free(r);
}

void hsp_dht__request_cancel(hsp_dht_node_t *n, hsp_dht_req_t *r, bool notify) {
  if (!detach(n, r)) return;
  cong_recv(&n->congestion);
  if (notify && r->done) r->done(n, r, NULL, HSP_DHT_EDESTROYED);
  if (r->busy) r->cancelled = true;
  else req_free(r);
}

static hsp_dht_req_t *find_tid(hsp_dht_node_t *n, uint16_t tid) {
  for (size_t i = 0; i < n->inflight_len; i++)
    if (n->inflight[i]->tid == tid) return n->inflight[i];
  return NULL;
}

/* ---- routing table maintenance ----------------------------------------------------------- */

static void nat_add(hsp_dht_node_t *n, const hsp_ipv4_addr_t *to) {
  bool had = n->nat.has_host;
  uint8_t host[4];
  memcpy(host, n->nat.host, 4);
  uint16_t port = n->nat.port;
  hsp_dht_nat_add(&n->nat, to->host, to->port);
  if (had == n->nat.has_host && port == n->nat.port && memcmp(host, n->nat.host, 4) == 0) return;
  emit_event(n, HSP_DHT_EVENT_NAT_UPDATE);
}

static void sample_bootstrap_maybe(hsp_dht_node_t *n, const hsp_ipv4_addr_t *from,
                                   const hsp_ipv4_addr_t *to) {
  size_t max = n->cfg.bootstrap_count > 1 ? n->cfg.bootstrap_count : 1;
  if (n->none_persistent_len >= max) return;
  for (size_t i = 0; i < n->none_persistent_len; i++)
    if (hsp_dht_addr_equal(&n->none_persistent[i], from)) return;
  n->none_persistent[n->none_persistent_len++] = *from;
  nat_add(n, to);
}

static void ping_done_reping(hsp_dht_node_t *n, hsp_dht_req_t *r, const hsp_dht_reply_t *reply,
                             int err);

static void add_node(hsp_dht_node_t *n, hsp_dht_table_node_t *node, const hsp_ipv4_addr_t *to);

/* dht-rpc _onfullrow: maybe evict the least recently pinged node of a full row. */
static void on_full_row(hsp_dht_node_t *n, const hsp_dht_table_node_t *newcomer) {
  if (!n->bootstrapped || n->repinging >= 3) return;
  hsp_dht_table_row_t *row = hsp_dht_table_row_of(&n->table, newcomer->id);
  hsp_dht_table_node_t *oldest = NULL;
  for (size_t i = 0; i < row->count; i++) {
    hsp_dht_table_node_t *x = &row->nodes[i];
    if (x->pinged == n->tick) continue;
    if (!oldest || oldest->pinged > x->pinged ||
        (oldest->pinged == x->pinged && oldest->added > x->added))
      oldest = x;
  }
  if (!oldest) return;
  if (n->tick - oldest->pinged < RECENT_NODE && n->tick - oldest->added > OLD_NODE) return;

  oldest->pinged = n->tick;
  hsp_dht_req_t *r = hsp_dht__request_new(n, &oldest->addr, NULL, true, HSP_DHT_CMD_PING, NULL,
                                          NULL, NULL, 0, false);
  if (!r) return;
  n->repinging++;
  r->aux = oldest->seen;
  memcpy(r->aux_id, oldest->id, HSP_DHT_ID_SIZE);
  r->aux_node = *newcomer;
  r->done = ping_done_reping;
  hsp_dht__request_send(n, r);
}

static void remove_node(hsp_dht_node_t *n, const uint8_t id[HSP_DHT_ID_SIZE]) {
  hsp_dht_table_remove(&n->table, id);
}

static void ping_done_reping(hsp_dht_node_t *n, hsp_dht_req_t *r, const hsp_dht_reply_t *reply,
                             int err) {
  n->repinging--;
  if (!err && reply) {
    hsp_dht_table_node_t *old = hsp_dht_table_get(&n->table, r->aux_id);
    if (old && old->seen > r->aux) return; /* it answered: keep it */
  }
  remove_node(n, r->aux_id);
  hsp_dht_table_node_t fresh = r->aux_node;
  add_node(n, &fresh, NULL);
}

/* dht-rpc _addNode. `to` is the address the node reported for us (NAT sample) or NULL. */
static void add_node(hsp_dht_node_t *n, hsp_dht_table_node_t *node, const hsp_ipv4_addr_t *to) {
  if (memcmp(node->id, n->table.id, HSP_DHT_ID_SIZE) == 0) return;
  if (hsp_dht_table_get(&n->table, node->id)) return;
  node->added = node->pinged = n->tick;
  node->seen = ++n->seen_seq;
  node->contact = ++n->contact_seq;
  node->sampled = 0;
  int rc = hsp_dht_table_add(&n->table, node);
  if (rc == HSP_DHT_TABLE_FULL) {
    on_full_row(n, node);
    return;
  }
  if (rc != HSP_DHT_TABLE_ADDED) return;
  if (to) {
    hsp_dht_table_node_t *in = hsp_dht_table_get(&n->table, node->id);
    if (in) in->sampled = n->tick;
    nat_add(n, to);
  }
}

void hsp_dht_node_add_node(hsp_dht_node_t *n, const hsp_ipv4_addr_t *addr) {
  hsp_dht_table_node_t node = {0};
  node.addr = *addr;
  hsp_dht_id_from_addr(node.id, addr);
  add_node(n, &node, NULL);
}

/* dht-rpc _addNodeFromNetwork: every message from a node with a verified id refreshes or
 * inserts it; id-less responders may only contribute NAT samples. */
static void add_from_network(hsp_dht_node_t *n, bool sample, const hsp_ipv4_addr_t *from,
                             const uint8_t *from_id, const hsp_ipv4_addr_t *to) {
  if (!from_id) {
    sample_bootstrap_maybe(n, from, to);
    return;
  }
  hsp_dht_table_node_t *old = hsp_dht_table_get(&n->table, from_id);
  if (old) {
    bool resample = sample && (old->sampled == 0 || n->tick - old->sampled >= OLD_NODE);
    if (resample) old->sampled = n->tick;
    old->pinged = n->tick;
    old->seen = ++n->seen_seq;
    old->contact = ++n->contact_seq;
    if (resample) nat_add(n, to); /* last: nat_add may emit an event */
    return;
  }
  hsp_dht_table_node_t node = {0};
  memcpy(node.id, from_id, HSP_DHT_ID_SIZE);
  node.addr = *from;
  add_node(n, &node, to);
}

static void check_done(hsp_dht_node_t *n, hsp_dht_req_t *r, const hsp_dht_reply_t *reply, int err) {
  (void)reply;
  n->checks--;
  hsp_dht_table_node_t *node = hsp_dht_table_get(&n->table, r->aux_id);
  if (!node) return;
  /* A reply only saves the node if it was heard from after the check started. */
  if (err || node->seen <= r->aux) remove_node(n, r->aux_id);
}

/* dht-rpc _check: ping a node and drop it unless it answers. */
static void check_node(hsp_dht_node_t *n, hsp_dht_table_node_t *node) {
  node->pinged = n->tick;
  hsp_dht_req_t *r = hsp_dht__request_new(n, &node->addr, NULL, true, HSP_DHT_CMD_PING, NULL,
                                          NULL, NULL, 0, false);
  if (!r) return;
  n->checks++;
  r->aux = node->seen;
  memcpy(r->aux_id, node->id, HSP_DHT_ID_SIZE);
  r->done = check_done;
  hsp_dht__request_send(n, r);
}

/* Table nodes ordered by last contact, oldest first (the time-ordered set of dht-rpc). */
static size_t nodes_by_contact(hsp_dht_node_t *n, hsp_dht_table_node_t **out, size_t max,
                               bool newest) {
  size_t cnt = 0;
  for (size_t r = 0; r < HSP_DHT_ROWS; r++) {
    for (size_t j = 0; j < n->table.rows[r].count; j++) {
      hsp_dht_table_node_t *x = &n->table.rows[r].nodes[j];
      bool before;
      if (cnt == max) {
        before = newest ? x->contact > out[cnt - 1]->contact : x->contact < out[cnt - 1]->contact;
        if (!before) continue;
      }
      size_t at = cnt < max ? cnt++ : cnt - 1;
      while (at > 0 && (newest ? x->contact > out[at - 1]->contact
                               : x->contact < out[at - 1]->contact)) {
        out[at] = out[at - 1];
        at--;
      }
      out[at] = x;
    }
  }
  return cnt;
}

static void refresh(hsp_dht_node_t *n);

static void ping_some(hsp_dht_node_t *n) {
  int cnt = n->inflight_len > 2 ? 3 : 5;
  hsp_dht_table_node_t *old[5];
  size_t m = nodes_by_contact(n, old, 5, false);
  if (!m) {
    refresh(n);
    return;
  }
  if (n->tick - old[0]->pinged < RECENT_NODE) cnt = 2;
  uint8_t ids[5][HSP_DHT_ID_SIZE];
  size_t nids = 0;
  /* Like the reference, stop advancing at a node already pinged this tick. */
  for (size_t i = 0; i < m && (int)i < cnt; i++) {
    if (n->tick == old[i]->pinged) break;
    memcpy(ids[nids++], old[i]->id, HSP_DHT_ID_SIZE);
  }
  for (size_t i = 0; i < nids; i++) {
    hsp_dht_table_node_t *node = hsp_dht_table_get(&n->table, ids[i]);
    if (node) check_node(n, node);
  }
}

/* ---- network state: persistence and firewall ------------------------------------------ */

static void boot_after_update(hsp_dht_node_t *n, bool ok);

static void net_finish(hsp_dht_node_t *n, bool ok) {
  bool for_boot = n->net_for_bootstrap;
  n->net_active = false;
  n->net_for_bootstrap = false;
  if (for_boot) boot_after_update(n, ok);
}

/* Second half of _updateNetworkState, once the firewall question is settled. */
static void net_apply(hsp_dht_node_t *n, hsp_dht_nat_sampler_t *fresh) {
  n->firewalled = false;
  hsp_dht_nat_sampler_t *s = fresh ? fresh : &n->nat;
  if (!n->ephemeral || !n->nat.has_host || memcmp(n->net_host, n->nat.host, 4) != 0 ||
      n->net_port != n->nat.port) {
    net_finish(n, false);
    return;
  }
  if (!s->has_host || memcmp(s->host, n->net_host, 4) != 0 || s->port == 0) {
    net_finish(n, false);
    return;
  }
  hsp_ipv4_addr_t pub;
  memcpy(pub.host, s->host, 4);
  pub.port = s->port;
  uint8_t id[HSP_DHT_ID_SIZE];
  hsp_dht_id_from_addr(id, &pub);
  if (!n->net_only_firewall) n->ephemeral = false;
  if (fresh) {
    bool changed = n->nat.port != fresh->port || memcmp(n->nat.host, fresh->host, 4) != 0 ||
                   n->nat.has_host != fresh->has_host;
    n->none_persistent_len = 0;
    n->nat = *fresh;
    if (changed) emit_event(n, HSP_DHT_EVENT_NAT_UPDATE);
  }
  if (memcmp(n->table.id, id, HSP_DHT_ID_SIZE) != 0) {
    hsp_dht_table_t old = n->table;
    hsp_dht_table_init(&n->table, id, old.k);
    for (size_t r = 0; r < HSP_DHT_ROWS; r++)
      for (size_t j = 0; j < old.rows[r].count; j++)
        if (memcmp(old.rows[r].nodes[j].id, id, HSP_DHT_ID_SIZE) != 0)
          hsp_dht_table_add(&n->table, &old.rows[r].nodes[j]); /* overflow is dropped */
    hsp_dht_table_free(&old);
    if (n->bootstrapped) refresh(n);
  }
  if (!n->ephemeral) emit_event(n, HSP_DHT_EVENT_PERSISTENT);
  net_finish(n, true);
}

static void probe_done(hsp_dht_node_t *n, hsp_dht_req_t *r, const hsp_dht_reply_t *reply, int err) {
  (void)r;
  if (!err && reply) hsp_dht_firewall_probe_reply(&n->probe, &reply->from, &reply->to);
  if (--n->net_probe_pending > 0) return;
  hsp_dht_nat_sampler_t fresh;
  bool open = hsp_dht_firewall_probe_open(&n->probe, &n->nat, n->cfg.server_port, &fresh);
  if (!open) {
    net_finish(n, false);
    return;
  }
  net_apply(n, &fresh);
}

/* dht-rpc _updateNetworkState. Completion goes to net_finish (bootstrap continues there). */
static void update_network_state(hsp_dht_node_t *n, bool only_firewall, bool for_bootstrap) {
  if (n->net_active || !n->ephemeral || (only_firewall && !n->firewalled)) {
    if (for_bootstrap) boot_after_update(n, false);
    return;
  }
  n->net_active = true;
  n->net_for_bootstrap = for_bootstrap;
  n->net_only_firewall = only_firewall;
  memcpy(n->net_host, n->nat.host, 4);
  n->net_port = n->nat.port;
  if (!only_firewall) {
    n->stable_ticks = MORE_STABLE_TICKS;
    n->has_last_host = n->nat.has_host;
    memcpy(n->last_host, n->nat.host, 4);
  }
  if (!n->nat.has_host || n->nat.port == 0) {
    net_finish(n, false);
    return;
  }
  if (!n->firewalled) {
    net_apply(n, NULL);
    return;
  }
  /* _checkIfFirewalled: the 5 most recently heard-from nodes, plus every bootstrap node if
   * that is fewer than 5. */
  hsp_ipv4_addr_t targets[HSP_DHT_FIREWALL_MAX_PROBES];
  size_t cnt = 0;
  hsp_dht_table_node_t *recent[5];
  size_t m = nodes_by_contact(n, recent, 5, true);
  for (size_t i = 0; i < m; i++) targets[cnt++] = recent[i]->addr;
  if (cnt < 5)
    for (size_t i = 0; i < n->cfg.bootstrap_count && cnt < HSP_DHT_FIREWALL_MAX_PROBES; i++)
      targets[cnt++] = n->cfg.bootstrap[i];
  if (cnt == 0) {
    net_finish(n, false);
    return;
  }
  hsp_dht_firewall_probe_init(&n->probe, cnt);
  uint8_t value[2] = {(uint8_t)(n->cfg.server_port & 0xff), (uint8_t)(n->cfg.server_port >> 8)};
  n->net_probe_pending = 0;
  for (size_t i = 0; i < cnt; i++) {
    hsp_dht_req_t *r = hsp_dht__request_new(n, &targets[i], NULL, true, HSP_DHT_CMD_PING_NAT,
                                            NULL, NULL, value, 2, true);
    if (!r) continue;
    r->done = probe_done;
    n->net_probe_pending++;
  }
  if (n->net_probe_pending == 0) {
    net_finish(n, false);
    return;
  }
  /* Send after creating all, so a synchronous failure cannot finish the probe early. */
  for (size_t i = 0; i < n->inflight_len; i++)
    if (n->inflight[i]->done == probe_done && !n->inflight[i]->buf)
      hsp_dht__request_send(n, n->inflight[i]);
}

/* ---- bootstrap --------------------------------------------------------------------------- */

static void boot_query(hsp_dht_node_t *n);

static void boot_finish(hsp_dht_node_t *n) {
  n->boot_running = false;
  if (n->bootstrapped) return;
  n->bootstrapped = true;
  emit_event(n, HSP_DHT_EVENT_READY);
}

static void boot_after_update(hsp_dht_node_t *n, bool ok) {
  if (!ok || ++n->boot_round >= 2) {
    boot_finish(n);
    return;
  }
  boot_query(n);
}

static void quick_nat_done(hsp_dht_node_t *n, hsp_dht_req_t *r, const hsp_dht_reply_t *reply,
                           int err) {
  (void)r;
  if (!err && reply) n->boot_test_nat = true;
}

static void boot_on_data(hsp_dht_node_t *n, struct hsp_dht_query *q, const hsp_dht_reply_t *reply) {
  (void)q;
  /* The quick firewall heuristic: one PING_NAT to the first responder. */
  if (!n->boot_first) return;
  n->boot_first = false;
  uint8_t value[2] = {(uint8_t)(n->cfg.server_port & 0xff), (uint8_t)(n->cfg.server_port >> 8)};
  hsp_dht_req_t *r = hsp_dht__request_new(n, &reply->from, NULL, true, HSP_DHT_CMD_PING_NAT,
                                          NULL, NULL, value, 2, true);
  if (!r) return;
  r->done = quick_nat_done;
  hsp_dht__request_send(n, r);
}

static void boot_on_end(hsp_dht_node_t *n, struct hsp_dht_query *q, int err) {
  (void)q;
  (void)err;
  if (n->bootstrapped || (!n->boot_test_nat && !n->force_persistent)) {
    boot_finish(n);
    return;
  }
  update_network_state(n, !n->force_persistent, true);
}

static struct hsp_dht_query *background_query(hsp_dht_node_t *n, const uint8_t target[32],
                                              query_hook_fn on_data, query_end_fn on_end) {
  n->refresh_ticks = REFRESH_TICKS;
  size_t con = n->cfg.concurrency / 8;
  if (con < 2) con = 2;
  if (con > n->cfg.concurrency) con = n->cfg.concurrency;
  hsp_dht_query_opts_t o = {.internal = true, .command = HSP_DHT_CMD_FIND_NODE,
                            .concurrency = con, .retries = -1};
  memcpy(o.target, target, 32);
  struct hsp_dht_query *q = hsp_dht__query_new(n, &o, NULL);
  if (q) hsp_dht__query_set_background(q, con, on_data, on_end);
  return q;
}

static void boot_query(hsp_dht_node_t *n) {
  if (!background_query(n, n->table.id, boot_on_data, boot_on_end)) boot_finish(n);
}

static void refresh(hsp_dht_node_t *n) {
  uint8_t target[32];
  memcpy(target, n->table.id, 32);
  if (n->table.size) {
    hsp_dht_table_node_t *x = hsp_dht_table_at(&n->table, rnd32(n) % n->table.size);
    if (x) memcpy(target, x->id, 32);
  }
  background_query(n, target, NULL, NULL);
}

void hsp_dht_node_start(hsp_dht_node_t *n, uint64_t now) {
  n->now = now;
  if (n->boot_running || n->bootstrapped) return;
  n->boot_running = true;
  n->boot_round = 0;
  n->boot_first = n->firewalled && n->cfg.quick_firewall && !n->force_persistent;
  n->boot_test_nat = false;
  boot_query(n);
  hsp_dht__query_reap(n);
}

/* ---- incoming requests ------------------------------------------------------------------- */

static void on_request(hsp_dht_node_t *n, int socket, const hsp_ipv4_addr_t *from,
                       const hsp_dht_request_t *req, const uint8_t *from_id, bool external) {
  if (req->token && !hsp_dht_token_verify(&n->tokens, req->token, from->host)) {
    send_reply(n, socket, req->tid, from, HSP_DHT_WIRE_INVALID_TOKEN, NULL, 0, false, true,
               req->target, true);
    return;
  }
  if (from_id) add_from_network(n, !external, from, from_id, &req->to);

  if (req->internal) {
    switch (req->command) {
    case HSP_DHT_CMD_PING:
      send_reply(n, socket, req->tid, from, 0, NULL, 0, false, false, NULL, false);
      return;
    case HSP_DHT_CMD_PING_NAT: {
      if (!req->has_value || req->value.len < 2) return;
      uint16_t port = (uint16_t)(req->value.data[0] | req->value.data[1] << 8);
      if (port == 0) return;
      hsp_ipv4_addr_t to = *from;
      to.port = port;
      send_reply(n, socket, req->tid, &to, 0, NULL, 0, false, false, NULL, false);
      return;
    }
    case HSP_DHT_CMD_FIND_NODE:
      if (!req->target) return;
      send_reply(n, socket, req->tid, from, 0, NULL, 0, false, false, req->target, true);
      return;
    case HSP_DHT_CMD_DOWN_HINT: {
      if (!req->has_value || req->value.len < 6) return;
      if (n->checks < MAX_CHECKS) {
        uint8_t id[32];
        hsp_crypto_hash(id, req->value.data, 6); /* the hinted node's id: H(its ipv4Address) */
        hsp_dht_table_node_t *node = hsp_dht_table_get(&n->table, id);
        if (node && (node->pinged < n->tick || node->down_hints == 0)) {
          node->down_hints++;
          check_node(n, node);
        }
      }
      send_reply(n, socket, req->tid, from, 0, NULL, 0, false, false, NULL, false);
      return;
    }
    case HSP_DHT_CMD_DELAYED_PING: {
      if (!req->has_value || req->value.len < 4) return;
      const uint8_t *v = req->value.data;
      uint32_t delay = (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24;
      if (delay > HSP_DHT_MAX_PING_DELAY_MS) return;
      if (!hsp_dht__grow((void **)&n->delayed, &n->delayed_cap, n->delayed_len + 1, sizeof(*n->delayed)))
        return;
      n->delayed[n->delayed_len++] = (hsp_dht_delayed_t){n->now + delay, socket, req->tid, *from};
      return;
    }
    default:
      send_reply(n, socket, req->tid, from, HSP_DHT_WIRE_UNKNOWN_COMMAND, NULL, 0, false, false,
                 req->target, true);
      return;
    }
  }

  hsp_dht_incoming_t in = {.socket = socket, .tid = req->tid, .from = *from, .to = req->to,
                           .has_token = req->token != NULL, .command = req->command,
                           .has_value = req->has_value, .value = req->value};
  if (req->token) memcpy(in.token, req->token, HSP_DHT_TOKEN_SIZE);
  if (from_id) {
    in.from_persistent = true;
    memcpy(in.from_id, from_id, 32);
  }
  if (req->target) {
    in.has_target = true;
    memcpy(in.target, req->target, 32);
  }
  if (!n->cfg.on_request || !n->cfg.on_request(n->cfg.ctx, n, &in))
    send_reply(n, socket, req->tid, from, HSP_DHT_WIRE_UNKNOWN_COMMAND, NULL, 0, false, false,
               req->target, true);
}

static const uint8_t *valid_id(const uint8_t *id, const hsp_ipv4_addr_t *from, uint8_t out[32]) {
  if (!id) return NULL;
  hsp_dht_id_from_addr(out, from);
  return memcmp(out, id, 32) == 0 ? out : NULL;
}

static void start_queries(hsp_dht_node_t *n);

static void recv_inner(hsp_dht_node_t *n, int socket, const hsp_ipv4_addr_t *from,
                       const uint8_t *buf, size_t len, uint64_t now) {
  if (now > n->now) n->now = now;
  start_queries(n);
  /* The firewall probe counts every datagram on the server socket, like a socket listener. */
  if (n->net_active && n->net_probe_pending && socket == HSP_DHT_SOCKET_SERVER)
    hsp_dht_firewall_probe_saw(&n->probe, from->host);
  if (n->destroyed || len < 2 || from->port == 0) return;
  bool external = socket != request_socket(n);
  uint8_t idbuf[32];

  if (buf[0] == HSP_DHT_TYPE_REQUEST) {
    hsp_dht_request_t req;
    if (hsp_dht_request_decode(&req, buf, len) != 0) return;
    on_request(n, socket, from, &req, valid_id(req.id, from, idbuf), external);
    return;
  }
  if (buf[0] != HSP_DHT_TYPE_RESPONSE) return;
  hsp_dht_response_t res;
  if (hsp_dht_response_decode(&res, buf, len) != 0) return;
  /* Matched by tid alone: PING_NAT answers and relayed replies come from elsewhere. */
  hsp_dht_req_t *r = find_tid(n, res.tid);
  if (!r) return;
  detach(n, r);
  cong_recv(&n->congestion);
  const uint8_t *from_id = valid_id(res.id, from, idbuf);
  add_from_network(n, !external, from, from_id, &res.to);
  hsp_dht_reply_t reply = {.from = *from, .from_id = from_id, .to = res.to, .token = res.token,
                           .closer = res.closer, .closer_count = res.closer_count,
                           .error = res.error, .has_value = res.has_value, .value = res.value};
  if (r->done) r->done(n, r, &reply, 0);
  req_free(r);
}

void hsp_dht_node_recv(hsp_dht_node_t *n, int socket, const hsp_ipv4_addr_t *from,
                       const uint8_t *buf, size_t len, uint64_t now) {
  recv_inner(n, socket, from, buf, len, now);
  hsp_dht__query_reap(n);
}

/* ---- timers ------------------------------------------------------------------------------ */

static void on_wakeup(hsp_dht_node_t *n) {
  n->tick += 2 * OLD_NODE;
  n->tick += 8 - (n->tick & 7) - 2;
  n->stable_ticks = MORE_STABLE_TICKS;
  n->refresh_ticks = 1;
  n->has_last_host = false;
  if (n->adaptive && !n->ephemeral) {
    n->ephemeral = true;
    emit_event(n, HSP_DHT_EVENT_EPHEMERAL);
  }
  emit_event(n, HSP_DHT_EVENT_WAKEUP);
}

static void on_tick(hsp_dht_node_t *n) {
  if (n->now - n->last_tick_time > HSP_DHT_SLEEPING_MS) on_wakeup(n);
  else n->tick++;
  n->last_tick_time = n->now;
  if (!n->bootstrapped) return;

  if (n->adaptive && n->ephemeral && --n->stable_ticks <= 0) {
    bool same = n->has_last_host == n->nat.has_host &&
                (!n->has_last_host || memcmp(n->last_host, n->nat.host, 4) == 0);
    if (same) n->stable_ticks = MORE_STABLE_TICKS;
    else update_network_state(n, false, false);
  }
  if ((n->tick & 7) == 0) ping_some(n);
  if (((n->tick & 63) == 0 && n->table.size < n->table.k) || --n->refresh_ticks <= 0) refresh(n);
  n->down_hints_sent = 0;
}

static void on_drain(hsp_dht_node_t *n) {
  hsp_dht_tokens_drain(&n->tokens);
  cong_drain(&n->congestion);
  while (!cong_full(&n->congestion) && n->pending_len) {
    hsp_dht_req_t *r = n->pending[0];
    memmove(&n->pending[0], &n->pending[1], (n->pending_len - 1) * sizeof(void *));
    n->pending_len--;
    r->queued = false;
    send_now(n, r);
  }
}

/* A send timed out: retry, or fail the request after retries + 1 sends. */
static void on_request_timeout(hsp_dht_node_t *n, hsp_dht_req_t *r) {
  r->armed = false;
  if (r->cycle) {
    r->busy = true;
    r->cycle(n, r);
    r->busy = false;
    if (r->cancelled) {
      req_free(r);
      return;
    }
  }
  if (r->sent > r->retries) {
    detach(n, r);
    cong_recv(&n->congestion);
    if (r->done) r->done(n, r, NULL, HSP_DHT_ETIMEDOUT);
    if (r->to_has_id) remove_node(n, r->to_id); /* dht-rpc _ontimeout */
    req_free(r);
    return;
  }
  hsp_dht__request_send(n, r);
}

uint64_t hsp_dht_node_next_deadline(const hsp_dht_node_t *n) {
  uint64_t d = n->next_tick < n->next_drain ? n->next_tick : n->next_drain;
  if (n->queries_to_start) d = n->now < d ? n->now : d;
  for (size_t i = 0; i < n->inflight_len; i++)
    if (n->inflight[i]->armed && n->inflight[i]->deadline < d) d = n->inflight[i]->deadline;
  for (size_t i = 0; i < n->delayed_len; i++)
    if (n->delayed[i].deadline < d) d = n->delayed[i].deadline;
  return d;
}

static void start_queries(hsp_dht_node_t *n) {
  while (n->queries_to_start) {
    n->queries_to_start = false;
    for (size_t i = 0; i < n->queries_len; i++) {
      if (hsp_dht__query_started(n->queries[i])) continue;
      hsp_dht__query_start(n, n->queries[i]);
      break; /* the list may have changed: rescan */
    }
    for (size_t i = 0; i < n->queries_len; i++)
      if (!hsp_dht__query_started(n->queries[i])) n->queries_to_start = true;
  }
}

static void advance_inner(hsp_dht_node_t *n, uint64_t now);

void hsp_dht_node_advance(hsp_dht_node_t *n, uint64_t now) {
  advance_inner(n, now);
  hsp_dht__query_reap(n);
}

static void advance_inner(hsp_dht_node_t *n, uint64_t now) {
  if (now > n->now) n->now = now;
  for (;;) {
    start_queries(n);
    if (n->destroyed) return;
    /* Fire the earliest due timer, one at a time, so handlers see a consistent order. */
    uint64_t best = UINT64_MAX;
    int kind = 0;
    hsp_dht_req_t *due = NULL;
    size_t delayed_i = 0;
    if (n->next_drain <= n->now && n->next_drain < best) best = n->next_drain, kind = 1;
    if (n->next_tick <= n->now && n->next_tick < best) best = n->next_tick, kind = 2;
    for (size_t i = 0; i < n->inflight_len; i++) {
      hsp_dht_req_t *r = n->inflight[i];
      if (r->armed && r->deadline <= n->now && r->deadline < best) best = r->deadline, kind = 3, due = r;
    }
    for (size_t i = 0; i < n->delayed_len; i++)
      if (n->delayed[i].deadline <= n->now && n->delayed[i].deadline < best)
        best = n->delayed[i].deadline, kind = 4, delayed_i = i;
    if (!kind) return;
    if (kind == 1) {
      /* Drains catch up on missed intervals (token lifetime is wall-clock time), but at
       * most 20 of them: two rotations already invalidate every token. Ticks do not catch
       * up: a late tick is how a wake-up from sleep is detected. */
      if (n->now - n->next_drain > 20 * HSP_DHT_DRAIN_MS) n->next_drain = n->now - 20 * HSP_DHT_DRAIN_MS;
      n->next_drain += HSP_DHT_DRAIN_MS;
      on_drain(n);
    } else if (kind == 2) {
      n->next_tick += HSP_DHT_TICK_MS;
      if (n->next_tick <= n->now) n->next_tick = n->now + HSP_DHT_TICK_MS;
      on_tick(n);
    } else if (kind == 3) {
      on_request_timeout(n, due);
    } else {
      hsp_dht_delayed_t d = n->delayed[delayed_i];
      n->delayed[delayed_i] = n->delayed[--n->delayed_len];
      send_reply(n, d.socket, d.tid, &d.to, 0, NULL, 0, false, false, NULL, false);
    }
  }
}

/* ---- public API -------------------------------------------------------------------------- */

void hsp_dht_config_default(hsp_dht_config_t *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->ephemeral = -1;
  cfg->firewalled = true;
  cfg->quick_firewall = true;
}

void hsp_dht_request_opts_default(hsp_dht_request_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->retries = -1;
  o->socket = -1;
}

void hsp_dht_reply_opts_default(hsp_dht_reply_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->token = true;
  o->closer_nodes = true;
  o->socket = -1;
}

int hsp_dht_node_init(hsp_dht_node_t **out, const hsp_dht_config_t *cfg, uint64_t now) {
  if (sodium_init() < 0) return HSP_DHT_ENOMEM;
  if (cfg->bootstrap_count > HSP_DHT_MAX_BOOTSTRAP) return HSP_DHT_EINVAL;
  hsp_dht_node_t *n = calloc(1, sizeof(*n));
  if (!n) return HSP_DHT_ENOMEM;
  n->cfg = *cfg;
  if (!n->cfg.concurrency) n->cfg.concurrency = HSP_DHT_DEFAULT_CONCURRENCY;
  if (!n->cfg.k) n->cfg.k = HSP_DHT_K;
  if (!n->cfg.down_hints_per_tick) n->cfg.down_hints_per_tick = 50;
  n->now = now;

  uint8_t id[32], seed[64];
  rnd(n, id, sizeof(id));
  hsp_dht_table_init(&n->table, id, n->cfg.k);
  hsp_dht_nat_init(&n->nat);
  rnd(n, seed, sizeof(seed));
  hsp_dht_tokens_init(&n->tokens, seed);
  sodium_memzero(seed, sizeof(seed));
  n->congestion.max = HSP_DHT_MAX_WINDOW;

  n->ephemeral = true;
  n->firewalled = cfg->firewalled;
  n->adaptive = cfg->ephemeral < 0;
  n->force_persistent = cfg->ephemeral == 0;
  uint16_t tid;
  rnd(n, &tid, sizeof(tid));
  n->tid = tid;
  n->tick = (uint64_t)random_offset(n, 100);
  n->refresh_ticks = random_offset(n, REFRESH_TICKS);
  n->stable_ticks = n->adaptive ? STABLE_TICKS : 0;
  n->last_tick_time = now;
  n->next_tick = now + HSP_DHT_TICK_MS;
  n->next_drain = now + HSP_DHT_DRAIN_MS;

  if (cfg->bootstrapper) {
    /* DHT.bootstrapper: never firewalled, persistent at once, NAT pre-seeded. */
    n->firewalled = false;
    n->force_persistent = true;
    n->adaptive = false;
    n->stable_ticks = 0;
    hsp_dht_nat_add(&n->nat, cfg->bootstrapper_addr.host, cfg->bootstrapper_addr.port);
  }
  *out = n;
  return 0;
}

void hsp_dht_node_destroy(hsp_dht_node_t *n) {
  if (!n) return;
  n->destroyed = true;
  while (n->queries_len) hsp_dht__query_destroy(n, n->queries[n->queries_len - 1], HSP_DHT_EDESTROYED);
  /* Only the application hears about its own requests; internal ones (checks, probes)
   * must not start new work on a node that is going away. */
  while (n->inflight_len) {
    hsp_dht_req_t *r = n->inflight[n->inflight_len - 1];
    hsp_dht__request_cancel(n, r, r->done == user_done);
  }
  for (size_t i = n->out_head; i < n->out_len; i++) free(n->out[i].buf);
  free(n->out_last);
  free(n->out);
  free(n->inflight);
  free(n->pending);
  free(n->delayed);
  hsp_dht__query_reap(n);
  free(n->dead);
  free(n->queries);
  hsp_dht_table_free(&n->table);
  hsp_dht_tokens_free(&n->tokens);
  free(n);
}

bool hsp_dht_node_bootstrapped(const hsp_dht_node_t *n) { return n->bootstrapped; }
bool hsp_dht_node_ephemeral(const hsp_dht_node_t *n) { return n->ephemeral; }
bool hsp_dht_node_firewalled(const hsp_dht_node_t *n) { return n->firewalled; }
const uint8_t *hsp_dht_node_id(const hsp_dht_node_t *n) { return n->ephemeral ? NULL : n->table.id; }
hsp_dht_table_t *hsp_dht_node_table(hsp_dht_node_t *n) { return &n->table; }
const hsp_dht_nat_sampler_t *hsp_dht_node_nat(const hsp_dht_node_t *n) { return &n->nat; }
size_t hsp_dht_node_inflight(const hsp_dht_node_t *n) { return n->inflight_len; }
uint64_t hsp_dht_node_now(const hsp_dht_node_t *n) { return n->now; }

bool hsp_dht_node_remote_address(const hsp_dht_node_t *n, hsp_ipv4_addr_t *out) {
  if (!n->nat.has_host || !n->nat.port || n->firewalled) return false;
  if (n->nat.port != n->cfg.server_port) return false;
  memcpy(out->host, n->nat.host, 4);
  out->port = n->nat.port;
  return true;
}

void hsp_dht__resolve_bootstrap(hsp_dht_node_t *n, size_t i, hsp_ipv4_addr_t *addr,
                                uint8_t id[HSP_DHT_ID_SIZE]) {
  *addr = n->cfg.bootstrap[i];
  hsp_dht_id_from_addr(id, addr);
}

static void user_done(hsp_dht_node_t *n, hsp_dht_req_t *r, const hsp_dht_reply_t *reply, int err) {
  (void)n;
  if (r->user_cb) r->user_cb(r->ctx, reply, err);
}

long hsp_dht_node_request(hsp_dht_node_t *n, const hsp_dht_request_opts_t *o,
                          hsp_dht_response_cb cb, void *ctx) {
  hsp_dht_req_t *r = hsp_dht__request_new(n, &o->to, NULL, o->internal, o->command, o->token,
                                          o->target, o->value, o->value_len, o->has_value);
  if (!r) return n->destroyed ? HSP_DHT_EDESTROYED : HSP_DHT_ENOMEM;
  if (o->socket >= 0) r->socket = o->socket;
  r->ttl = o->ttl;
  r->timeout_ms = o->timeout_ms;
  r->retries = o->retries >= 0 ? o->retries : HSP_DHT_DEFAULT_RETRIES;
  if (o->force) {
    r->force = true;
    r->retries = 0;
  }
  r->done = user_done;
  r->user_cb = cb;
  r->ctx = ctx;
  long handle = r->handle;
  hsp_dht__request_send(n, r);
  return handle;
}

void hsp_dht_node_cancel(hsp_dht_node_t *n, long handle) {
  for (size_t i = 0; i < n->inflight_len; i++) {
    if (n->inflight[i]->handle != handle) continue;
    hsp_dht__request_cancel(n, n->inflight[i], true);
    return;
  }
}

int hsp_dht_node_reply(hsp_dht_node_t *n, const hsp_dht_incoming_t *req,
                       const hsp_dht_reply_opts_t *o) {
  hsp_dht_reply_opts_t def;
  if (!o) {
    hsp_dht_reply_opts_default(&def);
    o = &def;
  }
  int socket = o->socket >= 0 ? o->socket : req->socket;
  const hsp_ipv4_addr_t *to = o->to ? o->to : &req->from;
  send_reply(n, socket, req->tid, to, o->error, o->value, o->value_len, o->has_value, o->token,
             req->has_target ? req->target : NULL, o->closer_nodes);
  return 0;
}

int hsp_dht_node_relay(hsp_dht_node_t *n, const hsp_dht_incoming_t *req, const uint8_t *value,
                       size_t value_len, bool has_value, const hsp_ipv4_addr_t *to, int socket) {
  if (socket < 0) socket = req->socket;
  hsp_dht_request_t m = {.tid = req->tid, .to = *to, .internal = false, .command = req->command,
                         .target = req->has_target ? req->target : NULL, .has_value = has_value,
                         .value = {value, value_len}};
  if (!n->ephemeral && socket == HSP_DHT_SOCKET_SERVER) m.id = n->table.id;
  long need = hsp_dht_request_size(&m);
  if (need < 0) return (int)need;
  uint8_t *buf = malloc((size_t)need);
  if (!buf) return HSP_DHT_ENOMEM;
  long len = hsp_dht_request_encode(buf, (size_t)need, &m);
  if (len > 0) emit_datagram(n, socket, to, 0, buf, (size_t)len);
  free(buf);
  return len < 0 ? (int)len : 0;
}

void hsp_dht__down_hint(hsp_dht_node_t *n, const hsp_ipv4_addr_t *to, const hsp_ipv4_addr_t *down) {
  if (n->cfg.down_hints_per_tick >= 0 && n->down_hints_sent >= n->cfg.down_hints_per_tick) return;
  n->down_hints_sent++;
  if (n->cfg.no_down_hints) return;
  uint8_t value[6];
  hsp_dht_addr_to_wire(value, down);
  hsp_dht_req_t *r = hsp_dht__request_new(n, to, NULL, true, HSP_DHT_CMD_DOWN_HINT, NULL, NULL,
                                          value, 6, true);
  if (r) hsp_dht__request_send(n, r);
}

long hsp_dht_node_query(hsp_dht_node_t *n, const hsp_dht_query_opts_t *opts,
                        const hsp_dht_query_cbs_t *cbs) {
  if (n->destroyed) return HSP_DHT_EDESTROYED;
  n->refresh_ticks = REFRESH_TICKS;
  struct hsp_dht_query *q = hsp_dht__query_new(n, opts, cbs);
  return q ? hsp_dht__query_handle(q) : HSP_DHT_ENOMEM;
}

long hsp_dht_node_find_node(hsp_dht_node_t *n, const uint8_t target[HSP_DHT_ID_SIZE],
                            const hsp_dht_query_cbs_t *cbs) {
  hsp_dht_query_opts_t o = {.internal = true, .command = HSP_DHT_CMD_FIND_NODE, .retries = -1};
  memcpy(o.target, target, 32);
  return hsp_dht_node_query(n, &o, cbs);
}

void hsp_dht_node_query_destroy(hsp_dht_node_t *n, long handle) {
  for (size_t i = 0; i < n->queries_len; i++) {
    if (hsp_dht__query_handle(n->queries[i]) != handle) continue;
    hsp_dht__query_destroy(n, n->queries[i], HSP_DHT_EDESTROYED);
    hsp_dht__query_reap(n);
    return;
  }
}
