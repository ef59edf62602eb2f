#include "announcer.h"

#include <sodium.h>
#include <string.h>

#include "hyper_messages.h"

enum { IDLE, QUERYING, COMMITTING, PINGING, SLEEPING, STOPPING, DONE };

static void run_update(hsp_dht_announcer_t *a);
static void background(hsp_dht_announcer_t *a);

/* At most ~20 requests are ever in flight (3 announces, pings and unannounces of at most 8
 * relays), so a ring of the last 64 handles covers every live one. */
static void track(hsp_dht_announcer_t *a, long h) {
  if (h <= 0) return;
  a->handles[a->next_handle++ % (sizeof(a->handles) / sizeof(a->handles[0]))] = h;
}

static bool in_gen(const hsp_dht_announcer_t *a, int g, const hsp_ipv4_addr_t *x) {
  for (size_t i = 0; i < a->gen_len[g]; i++)
    if (hsp_dht_addr_equal(&a->gens[g][i], x)) return true;
  return false;
}

bool hsp_dht_announcer_is_relay(const hsp_dht_announcer_t *a, const hsp_ipv4_addr_t *addr) {
  return in_gen(a, 0, addr) || in_gen(a, 1, addr) || in_gen(a, 2, addr);
}

int hsp_dht_announcer_init(hsp_dht_announcer_t *a, hsp_dht_node_t *node,
                           const hsp_crypto_keypair_t *kp, const uint8_t target[32]) {
  memset(a, 0, sizeof(*a));
  a->node = node;
  a->kp = *kp;
  memcpy(a->target, target, 32);
  a->phase = IDLE;
  a->deadline = UINT64_MAX;
  return 0;
}

/* ---- unannounce: FIND_PEER for a token, then a signed UNANNOUNCE ----------------------- */

static void unannounce_settled(hsp_dht_announcer_t *a) {
  if (a->unannouncing > 0) a->unannouncing--;
  if (a->unannouncing == 0 && a->phase == STOPPING) {
    /* on_stopped may free the announcer: nothing touches it afterwards. */
    a->phase = DONE;
    if (a->on_stopped) a->on_stopped(a->ctx, a);
  }
}

static void on_unannounced(void *ctx, const hsp_dht_reply_t *reply, int err) {
  (void)reply;
  (void)err;
  unannounce_settled(ctx);
}

static void on_unannounce_token(void *ctx, const hsp_dht_reply_t *reply, int err) {
  hsp_dht_announcer_t *a = ctx;
  if (err || !reply->token || !reply->from_id || !reply->has_value) {
    unannounce_settled(a);
    return;
  }
  hsp_dht_peer_t peer = {a->kp.public_key, {NULL, 0}};
  uint8_t sig[64], buf[256];
  hsp_dht_announce_sign(sig, HSP_HYPER_UNANNOUNCE, a->target, reply->from_id, reply->token, &peer,
                        NULL, &a->kp);
  hsp_dht_announce_t ann = {.has_peer = true, .peer = peer, .signature = sig};
  long len = hsp_dht_announce_encode(buf, sizeof(buf), &ann);
  hsp_dht_request_opts_t o;
  hsp_dht_request_opts_default(&o);
  o.to = reply->from;
  o.command = HSP_HYPER_UNANNOUNCE;
  o.token = reply->token;
  o.target = a->target;
  o.value = buf;
  o.value_len = len > 0 ? (size_t)len : 0;
  o.has_value = true;
  long h = len > 0 ? hsp_dht_node_request(a->node, &o, on_unannounced, a) : -1;
  if (h < 0) unannounce_settled(a);
  else track(a, h);
}

static void unannounce(hsp_dht_announcer_t *a, const hsp_ipv4_addr_t *to) {
  hsp_dht_request_opts_t o;
  hsp_dht_request_opts_default(&o);
  o.to = *to;
  o.command = HSP_HYPER_FIND_PEER;
  o.target = a->target;
  a->unannouncing++;
  long h = hsp_dht_node_request(a->node, &o, on_unannounce_token, a);
  if (h < 0) unannounce_settled(a);
  else track(a, h);
}

/* ---- update: query, announce to the best 3, unannounce dropped relays -------------------- */

static void commit_settled(hsp_dht_announcer_t *a) {
  if (a->pending > 0) a->pending--;
  if (a->pending > 0) return;
  if (a->stopped) return;
  memcpy(a->relays, a->next_relays, sizeof(a->relays));
  a->relay_count = a->next_relay_count;
  memcpy(a->relay_addresses, a->next_addresses, sizeof(a->relay_addresses));
  a->relay_address_count = a->next_address_count;
  /* Relays of the previous update that were not announced to again. */
  for (size_t i = 0; i < a->gen_len[1]; i++)
    if (!in_gen(a, 2, &a->gens[1][i])) unannounce(a, &a->gens[1][i]);
  if (a->on_update) a->on_update(a->ctx, a);
  background(a);
}

static void on_announced(void *ctx, const hsp_dht_reply_t *reply, int err) {
  hsp_dht_announce_commit_t *c = ctx;
  hsp_dht_announcer_t *a = c->a;
  if (!err && reply->error == 0 && !a->stopped) {
    if (a->next_address_count < HSP_DHT_ANNOUNCE_RELAYS)
      a->next_addresses[a->next_address_count++] = c->from;
    if (a->next_relay_count < HSP_DHT_ANNOUNCE_RELAYS)
      a->next_relays[a->next_relay_count++] = (hsp_dht_relay_info_t){c->from, c->to};
    if (a->gen_len[2] < HSP_DHT_ANNOUNCER_MAX_TRACKED && !in_gen(a, 2, &c->from))
      a->gens[2][a->gen_len[2]++] = c->from;
  }
  c->a = NULL;
  commit_settled(a);
}

static void on_query_done(void *ctx, const hsp_dht_query_result_t *res) {
  hsp_dht_announcer_t *a = ctx;
  a->query = 0;
  if (a->stopped) return;
  a->phase = COMMITTING;
  a->closest_count = 0;
  for (size_t i = 0; i < res->closest_count && i < HSP_DHT_K; i++)
    a->closest[a->closest_count++] = res->closest[i].from;
  a->next_relay_count = a->next_address_count = 0;
  hsp_ipv4_addr_t self;
  if (hsp_dht_node_remote_address(a->node, &self)) a->next_addresses[a->next_address_count++] = self;
  a->pending = 1; /* guard: settle once after all sends */
  size_t picked = res->closest_count < HSP_DHT_ANNOUNCE_RELAYS ? res->closest_count
                                                               : HSP_DHT_ANNOUNCE_RELAYS;
  for (size_t i = 0; i < picked; i++) {
    const hsp_dht_closest_reply_t *r = &res->closest[i];
    if (!r->has_token) continue;
    hsp_dht_announce_commit_t *slot = NULL;
    for (size_t j = 0; j < HSP_DHT_ANNOUNCE_RELAYS; j++)
      if (!a->commits[j].a) {
        slot = &a->commits[j];
        break;
      }
    if (!slot) break;
    hsp_dht_peer_t peer = {a->kp.public_key, {NULL, 0}};
    uint8_t sig[64], buf[256];
    hsp_dht_announce_sign(sig, HSP_HYPER_ANNOUNCE, a->target, r->id, r->token, &peer, NULL, &a->kp);
    hsp_dht_announce_t ann = {.has_peer = true, .peer = peer, .signature = sig};
    long len = hsp_dht_announce_encode(buf, sizeof(buf), &ann);
    if (len < 0) continue;
    hsp_dht_request_opts_t o;
    hsp_dht_request_opts_default(&o);
    o.to = r->from;
    o.command = HSP_HYPER_ANNOUNCE;
    o.token = r->token;
    o.target = a->target;
    o.value = buf;
    o.value_len = (size_t)len;
    o.has_value = true;
    *slot = (hsp_dht_announce_commit_t){a, r->from, r->to};
    long h = hsp_dht_node_request(a->node, &o, on_announced, slot);
    if (h < 0) {
      slot->a = NULL;
      continue;
    }
    track(a, h);
    a->pending++;
  }
  commit_settled(a);
}

static void run_update(hsp_dht_announcer_t *a) {
  if (a->stopped) return;
  a->refreshing = false;
  /* Rotate the three generations of server relays (announcer.js _cycle). */
  memcpy(a->gens[0], a->gens[1], sizeof(a->gens[0]));
  a->gen_len[0] = a->gen_len[1];
  memcpy(a->gens[1], a->gens[2], sizeof(a->gens[1]));
  a->gen_len[1] = a->gen_len[2];
  a->gen_len[2] = 0;
  a->phase = QUERYING;
  hsp_dht_query_opts_t o = {.internal = false, .command = HSP_HYPER_FIND_PEER, .retries = -1,
                            .nodes = a->closest_count ? a->closest : NULL,
                            .node_count = a->closest_count};
  memcpy(o.target, a->target, 32);
  hsp_dht_query_cbs_t cbs = {NULL, on_query_done, a};
  a->query = hsp_dht_node_query(a->node, &o, &cbs);
  if (a->query < 0) {
    a->query = 0;
    a->phase = SLEEPING;
    a->deadline = hsp_dht_node_now(a->node) + HSP_DHT_ANNOUNCER_PING_MS; /* retry later */
  }
}

/* ---- background: ping the relays every 3 s, re-announce after 100 rounds -------------- */

static void ping_settled(hsp_dht_announcer_t *a) {
  if (a->pending > 0) a->pending--;
  if (a->pending > 0 || a->stopped) return;
  size_t n = a->gen_len[2];
  if (a->active < (n < 3 ? n : 3)) a->refreshing = true; /* lost too many relays */
  a->round++;
  if (a->refreshing || a->round >= HSP_DHT_ANNOUNCER_ROUNDS) {
    run_update(a);
    return;
  }
  a->phase = SLEEPING;
  a->deadline = hsp_dht_node_now(a->node) + HSP_DHT_ANNOUNCER_PING_MS;
}

static void on_pong(void *ctx, const hsp_dht_reply_t *reply, int err) {
  hsp_dht_announcer_t *a = ctx;
  if (!err && reply) a->active++;
  ping_settled(a);
}

static void ping_relays(hsp_dht_announcer_t *a) {
  a->phase = PINGING;
  a->active = 0;
  a->pending = 1;
  for (size_t i = 0; i < a->gen_len[2]; i++) {
    hsp_dht_request_opts_t o;
    hsp_dht_request_opts_default(&o);
    o.to = a->gens[2][i];
    o.internal = true;
    o.command = HSP_DHT_CMD_PING;
    long h = hsp_dht_node_request(a->node, &o, on_pong, a);
    if (h < 0) continue;
    track(a, h);
    a->pending++;
  }
  ping_settled(a);
}

static void background(hsp_dht_announcer_t *a) {
  a->round = 0;
  a->phase = SLEEPING;
  a->deadline = hsp_dht_node_now(a->node) + (a->refreshing ? 0 : HSP_DHT_ANNOUNCER_PING_MS);
}

void hsp_dht_announcer_start(hsp_dht_announcer_t *a, uint64_t now) {
  (void)now;
  if (a->phase != IDLE) return;
  run_update(a);
}

void hsp_dht_announcer_refresh(hsp_dht_announcer_t *a) {
  if (!a->stopped) a->refreshing = true;
}

uint64_t hsp_dht_announcer_next_deadline(const hsp_dht_announcer_t *a) {
  return a->phase == SLEEPING ? a->deadline : UINT64_MAX;
}

void hsp_dht_announcer_advance(hsp_dht_announcer_t *a, uint64_t now) {
  if (a->phase != SLEEPING || now < a->deadline) return;
  if (a->refreshing || a->round >= HSP_DHT_ANNOUNCER_ROUNDS || a->closest_count == 0) run_update(a);
  else ping_relays(a);
}

void hsp_dht_announcer_stop(hsp_dht_announcer_t *a) {
  if (a->stopped) return;
  a->stopped = true;
  if (a->query) hsp_dht_node_query_destroy(a->node, a->query);
  a->query = 0;
  a->phase = STOPPING;
  a->unannouncing++; /* guard */
  for (size_t i = 0; i < a->gen_len[2]; i++) unannounce(a, &a->gens[2][i]);
  unannounce_settled(a);
}

void hsp_dht_announcer_destroy(hsp_dht_announcer_t *a) {
  a->stopped = true;
  if (a->query) hsp_dht_node_query_destroy(a->node, a->query);
  a->query = 0;
  a->phase = DONE;
  /* Cancelling fires the callbacks; with DONE and stopped set they only count down. */
  for (size_t i = 0; i < sizeof(a->handles) / sizeof(a->handles[0]); i++)
    if (a->handles[i]) hsp_dht_node_cancel(a->node, a->handles[i]);
  memset(a->handles, 0, sizeof(a->handles));
  sodium_memzero(&a->kp, sizeof(a->kp));
}
