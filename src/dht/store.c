#include "store.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

enum kind { RECORD = 1, FORWARD, BUMP, REFRESH, MUTABLE, IMMUTABLE };

typedef struct entry {
  int kind;             /* 0 = free slot */
  uint32_t next;        /* next slot in the bucket chain, or NONE */
  uint8_t key[32];
  uint8_t pk[32];       /* RECORD: announcer's public key */
  uint64_t expires;
  uint64_t seq;         /* insertion order, to answer lookups most recent first */
  uint64_t num;         /* BUMP value */
  bool announce_self;   /* REFRESH */
  uint8_t topic[32];    /* REFRESH: where the record lives */
  hsp_ipv4_addr_t relay; /* FORWARD */
  uint8_t *data;        /* RECORD/FORWARD/REFRESH: peer record; MUTABLE/IMMUTABLE: value */
  size_t len;
} entry_t;

#define NONE UINT32_MAX

/* Entries live in a slab (stable indices) and are chained per bucket of their key, so every
 * kind stored under one key (records, bump, forward of a topic) shares a chain. Buckets are
 * picked with keyed SipHash: keys are chosen by remote peers. */
struct hsp_dht_store {
  hsp_dht_store_config_t cfg;
  entry_t *e;
  uint32_t cap, used, free_head;
  uint32_t *buckets;
  uint32_t nbuckets; /* power of two */
  uint8_t hash_key[crypto_shorthash_KEYBYTES];
  uint64_t seq;
  struct server {
    bool used;
    uint8_t target[32];
    uint8_t record[32 + 1 + 6 * HSP_DHT_MAX_RELAY_ADDRESSES + 8];
    size_t record_len;
    hsp_dht_server_handshake_fn on_handshake;
    hsp_dht_server_holepunch_fn on_holepunch;
    void *ctx;
  } servers[HSP_DHT_STORE_MAX_SERVERS];
};

static struct server *local_server(hsp_dht_store_t *s, const hsp_dht_incoming_t *req) {
  if (!req->has_target) return NULL;
  for (size_t i = 0; i < HSP_DHT_STORE_MAX_SERVERS; i++)
    if (s->servers[i].used && memcmp(s->servers[i].target, req->target, 32) == 0)
      return &s->servers[i];
  return NULL;
}

int hsp_dht_store_listen(hsp_dht_store_t *s, const uint8_t target[32], const uint8_t *record,
                         size_t record_len, hsp_dht_server_handshake_fn on_handshake,
                         hsp_dht_server_holepunch_fn on_holepunch, void *ctx) {
  if (record_len > sizeof(s->servers[0].record)) return HSP_DHT_ERANGE;
  hsp_dht_store_unlisten(s, target);
  for (size_t i = 0; i < HSP_DHT_STORE_MAX_SERVERS; i++) {
    struct server *x = &s->servers[i];
    if (x->used) continue;
    x->used = true;
    memcpy(x->target, target, 32);
    memcpy(x->record, record, record_len);
    x->record_len = record_len;
    x->on_handshake = on_handshake;
    x->on_holepunch = on_holepunch;
    x->ctx = ctx;
    return 0;
  }
  return HSP_DHT_ENOMEM;
}

void hsp_dht_store_unlisten(hsp_dht_store_t *s, const uint8_t target[32]) {
  for (size_t i = 0; i < HSP_DHT_STORE_MAX_SERVERS; i++)
    if (s->servers[i].used && memcmp(s->servers[i].target, target, 32) == 0)
      memset(&s->servers[i], 0, sizeof(s->servers[i]));
}

int hsp_dht_store_init(hsp_dht_store_t **out, const hsp_dht_store_config_t *cfg) {
  if (sodium_init() < 0) return HSP_DHT_ENOMEM;
  hsp_dht_store_t *s = calloc(1, sizeof(*s));
  if (!s) return HSP_DHT_ENOMEM;
  if (cfg) s->cfg = *cfg;
  if (!s->cfg.max_entries || s->cfg.max_entries > (1u << 24)) s->cfg.max_entries = 65536;
  if (!s->cfg.record_ttl_ms) s->cfg.record_ttl_ms = HSP_DHT_RECORD_TTL_MS;
  if (!s->cfg.value_ttl_ms) s->cfg.value_ttl_ms = HSP_DHT_VALUE_TTL_MS;
  s->nbuckets = 16;
  while (s->nbuckets < s->cfg.max_entries) s->nbuckets *= 2;
  s->buckets = malloc(s->nbuckets * sizeof(*s->buckets));
  if (!s->buckets) {
    free(s);
    return HSP_DHT_ENOMEM;
  }
  for (uint32_t i = 0; i < s->nbuckets; i++) s->buckets[i] = NONE;
  s->free_head = NONE;
  randombytes_buf(s->hash_key, sizeof(s->hash_key));
  *out = s;
  return 0;
}

void hsp_dht_store_free(hsp_dht_store_t *s) {
  if (!s) return;
  for (uint32_t i = 0; i < s->cap; i++) free(s->e[i].data);
  free(s->e);
  free(s->buckets);
  free(s);
}

static uint32_t *bucket_of(hsp_dht_store_t *s, const uint8_t key[32]) {
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, key, 32, s->hash_key);
  uint32_t v = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
  return &s->buckets[v & (s->nbuckets - 1)];
}

/* Unlink the entry at *link (a bucket head or a `next` field) and free its slot. */
static void unlink_at(hsp_dht_store_t *s, uint32_t *link) {
  uint32_t i = *link;
  entry_t *x = &s->e[i];
  *link = x->next;
  free(x->data);
  memset(x, 0, sizeof(*x));
  x->next = s->free_head;
  s->free_head = i;
  s->used--;
}

static bool matches(const entry_t *x, int kind, const uint8_t key[32], const uint8_t *pk) {
  return x->kind == kind && memcmp(x->key, key, 32) == 0 && (!pk || memcmp(x->pk, pk, 32) == 0);
}

static entry_t *find(hsp_dht_store_t *s, int kind, const uint8_t key[32], const uint8_t *pk,
                     uint64_t now) {
  uint32_t *link = bucket_of(s, key);
  while (*link != NONE) {
    entry_t *x = &s->e[*link];
    if (x->expires <= now) { /* expired entries are reclaimed as chains are walked */
      unlink_at(s, link);
      continue;
    }
    if (matches(x, kind, key, pk)) return x;
    link = &x->next;
  }
  return NULL;
}

static void remove_kind(hsp_dht_store_t *s, int kind, const uint8_t key[32], const uint8_t *pk) {
  uint32_t *link = bucket_of(s, key);
  while (*link != NONE) {
    if (matches(&s->e[*link], kind, key, pk)) unlink_at(s, link);
    else link = &s->e[*link].next;
  }
}

/* When full, the entry closest to expiry makes room (a scan: only under pressure). */
static void evict_one(hsp_dht_store_t *s) {
  uint32_t victim = NONE;
  for (uint32_t i = 0; i < s->cap; i++)
    if (s->e[i].kind && (victim == NONE || s->e[i].expires < s->e[victim].expires)) victim = i;
  if (victim == NONE) return;
  uint32_t *link = bucket_of(s, s->e[victim].key);
  while (*link != victim) link = &s->e[*link].next;
  unlink_at(s, link);
}

static uint32_t alloc_slot(hsp_dht_store_t *s) {
  if (s->free_head == NONE) {
    uint32_t cap = s->cap ? s->cap * 2 : 64;
    if (cap > s->cfg.max_entries) cap = (uint32_t)s->cfg.max_entries;
    if (cap <= s->cap) return NONE;
    entry_t *e = realloc(s->e, cap * sizeof(*e));
    if (!e) return NONE;
    memset(e + s->cap, 0, (cap - s->cap) * sizeof(*e));
    for (uint32_t i = cap; i-- > s->cap;) {
      e[i].next = s->free_head;
      s->free_head = i;
    }
    s->e = e;
    s->cap = cap;
  }
  uint32_t i = s->free_head;
  s->free_head = s->e[i].next;
  s->used++;
  return i;
}

/* Insert or overwrite (kind, key[, pk]) with a copy of data. The returned pointer is valid
 * until the next put (the slab may move). */
static entry_t *put(hsp_dht_store_t *s, int kind, const uint8_t key[32], const uint8_t *pk,
                    const uint8_t *data, size_t len, uint64_t expires, uint64_t now) {
  uint8_t *copy = NULL;
  if (len && !(copy = malloc(len))) return NULL;
  if (len) memcpy(copy, data, len);
  entry_t *x = find(s, kind, key, pk, now);
  if (!x) {
    if (s->used >= s->cfg.max_entries) evict_one(s);
    uint32_t i = alloc_slot(s);
    if (i == NONE) {
      free(copy);
      return NULL;
    }
    x = &s->e[i];
    memset(x, 0, sizeof(*x));
    x->kind = kind;
    memcpy(x->key, key, 32);
    if (pk) memcpy(x->pk, pk, 32);
    uint32_t *head = bucket_of(s, key);
    x->next = *head;
    *head = i;
  }
  free(x->data);
  x->data = copy;
  x->len = len;
  x->expires = expires;
  x->seq = ++s->seq;
  return x;
}

size_t hsp_dht_store_count(const hsp_dht_store_t *s, uint64_t now) {
  size_t n = 0;
  for (uint32_t i = 0; i < s->cap; i++) n += s->e[i].kind && s->e[i].expires > now;
  return n;
}

bool hsp_dht_store_forward(hsp_dht_store_t *s, const uint8_t target[32], uint64_t now,
                           hsp_dht_forward_t *out) {
  entry_t *x = find(s, FORWARD, target, NULL, now);
  if (!x) return false;
  *out = (hsp_dht_forward_t){x->relay, x->data, x->len};
  return true;
}

static void reply(hsp_dht_node_t *node, const hsp_dht_incoming_t *req, const uint8_t *value,
                  size_t len, bool has_value, bool token_and_closer, uint64_t error) {
  hsp_dht_reply_opts_t o;
  hsp_dht_reply_opts_default(&o);
  o.value = value;
  o.value_len = len;
  o.has_value = has_value;
  o.token = token_and_closer && !error; /* req.error() sends no token unless asked */
  o.closer_nodes = token_and_closer;
  o.error = error;
  hsp_dht_node_reply(node, req, &o);
}

/* Re-encode a peer record keeping at most 3 relay addresses. */
static long encode_record(uint8_t *buf, size_t cap, const hsp_dht_peer_t *peer) {
  hsp_dht_peer_t p = *peer;
  if (p.relay_addresses.count > HSP_DHT_MAX_RELAY_ADDRESSES)
    p.relay_addresses.count = HSP_DHT_MAX_RELAY_ADDRESSES;
  return hsp_dht_peer_encode(buf, cap, &p);
}

static void store_record(hsp_dht_store_t *s, const hsp_dht_incoming_t *req, const uint8_t *topic,
                         bool announce_self, const uint8_t *record, size_t len, uint64_t now) {
  const uint8_t *pk = record; /* a record starts with the public key */
  uint64_t exp = now + s->cfg.record_ttl_ms;
  if (announce_self) {
    entry_t *f = put(s, FORWARD, topic, NULL, record, len, exp, now);
    if (f) f->relay = req->from;
    remove_kind(s, RECORD, topic, pk);
  } else {
    put(s, RECORD, topic, pk, record, len, exp, now);
  }
}

static void on_refresh(hsp_dht_store_t *s, hsp_dht_node_t *node, const hsp_dht_incoming_t *req,
                       const uint8_t refresh[32], uint64_t now) {
  uint8_t active[32];
  hsp_crypto_hash(active, refresh, 32);
  entry_t *r = find(s, REFRESH, active, NULL, now);
  if (!r || r->len < 32) return;
  uint8_t topic[32];
  memcpy(topic, r->topic, 32);
  bool self = r->announce_self;
  size_t len = r->len;
  uint8_t *record = r->data;
  r->data = NULL; /* take ownership before the entry is dropped */
  remove_kind(s, REFRESH, active, NULL);
  store_record(s, req, topic, self, record, len, now);
  entry_t *nr = put(s, REFRESH, refresh, NULL, record, len, now + s->cfg.record_ttl_ms, now);
  if (nr) {
    memcpy(nr->topic, topic, 32);
    nr->announce_self = self;
  }
  free(record);
  reply(node, req, NULL, 0, false, false, 0);
}

static void on_announce(hsp_dht_store_t *s, hsp_dht_node_t *node, const hsp_dht_incoming_t *req,
                        uint64_t now, uint64_t wall) {
  const uint8_t *id = hsp_dht_node_id(node);
  if (!req->has_target || !req->has_token || !id || !req->has_value) return;
  hsp_dht_announce_t ann;
  if (hsp_dht_announce_decode(&ann, req->value.data, req->value.len) != 0) return;
  if (!ann.has_peer) {
    if (ann.refresh) on_refresh(s, node, req, ann.refresh, now);
    return;
  }
  if (!ann.signature || !hsp_dht_announce_verify(ann.signature, HSP_HYPER_ANNOUNCE, req->target,
                                                 id, req->token, &ann.peer, ann.refresh))
    return;
  uint8_t record[32 + 1 + 6 * HSP_DHT_MAX_RELAY_ADDRESSES + 8];
  long len = encode_record(record, sizeof(record), &ann.peer);
  if (len < 0) return;
  uint8_t h[32];
  hsp_crypto_hash(h, ann.peer.public_key, 32);
  bool self = memcmp(h, req->target, 32) == 0;
  if (!self) {
    entry_t *b = find(s, BUMP, req->target, NULL, now);
    uint64_t current = b ? b->num : 0;
    if (ann.bump > current && ann.bump <= wall + HSP_DHT_MAX_BUMP_DRIFT_MS) {
      b = put(s, BUMP, req->target, NULL, NULL, 0, now + s->cfg.record_ttl_ms, now);
      if (b) b->num = ann.bump;
    }
  }
  store_record(s, req, req->target, self, record, (size_t)len, now);
  if (ann.refresh) {
    entry_t *r = put(s, REFRESH, ann.refresh, NULL, record, (size_t)len,
                     now + s->cfg.record_ttl_ms, now);
    if (r) {
      memcpy(r->topic, req->target, 32);
      r->announce_self = self;
    }
  }
  reply(node, req, NULL, 0, false, false, 0);
}

static void on_unannounce(hsp_dht_store_t *s, hsp_dht_node_t *node, const hsp_dht_incoming_t *req) {
  const uint8_t *id = hsp_dht_node_id(node);
  if (!req->has_target || !req->has_token || !id || !req->has_value) return;
  hsp_dht_announce_t ann;
  if (hsp_dht_announce_decode(&ann, req->value.data, req->value.len) != 0) return;
  if (!ann.has_peer || !ann.signature) return;
  if (!hsp_dht_announce_verify(ann.signature, HSP_HYPER_UNANNOUNCE, req->target, id, req->token,
                               &ann.peer, ann.refresh))
    return;
  uint8_t h[32];
  hsp_crypto_hash(h, ann.peer.public_key, 32);
  if (memcmp(h, req->target, 32) == 0) remove_kind(s, FORWARD, req->target, NULL);
  remove_kind(s, RECORD, req->target, ann.peer.public_key);
  reply(node, req, NULL, 0, false, false, 0);
}

static void on_lookup(hsp_dht_store_t *s, hsp_dht_node_t *node, const hsp_dht_incoming_t *req,
                      uint64_t now) {
  if (!req->has_target) return;
  /* Most recent records first, at most 20, then the forward record if there is room. */
  const entry_t *picked[HSP_DHT_LOOKUP_MAX_RECORDS];
  size_t n = 0, bytes = 0;
  uint64_t bump = 0;
  for (uint32_t i = *bucket_of(s, req->target); i != NONE; i = s->e[i].next) {
    const entry_t *x = &s->e[i];
    if (x->expires <= now || memcmp(x->key, req->target, 32) != 0) continue;
    if (x->kind == BUMP) bump = x->num;
    if (x->kind != RECORD) continue;
    size_t at = n < HSP_DHT_LOOKUP_MAX_RECORDS ? n++ : HSP_DHT_LOOKUP_MAX_RECORDS;
    if (at == HSP_DHT_LOOKUP_MAX_RECORDS) {
      if (x->seq < picked[at - 1]->seq) continue;
      at--;
    }
    while (at > 0 && picked[at - 1]->seq < x->seq) {
      picked[at] = picked[at - 1];
      at--;
    }
    picked[at] = x;
  }
  /* The forward record (a relayed server, or our own server) comes last if there is room. */
  struct server *srv = local_server(s, req);
  entry_t *fwd = srv ? NULL : find(s, FORWARD, req->target, NULL, now);
  if (fwd && n < HSP_DHT_LOOKUP_MAX_RECORDS) picked[n++] = fwd;
  bool own = srv && n < HSP_DHT_LOOKUP_MAX_RECORDS;
  if (!n && !own) {
    reply(node, req, NULL, 0, false, true, 0);
    return;
  }
  for (size_t i = 0; i < n; i++) bytes += picked[i]->len;
  if (own) bytes += srv->record_len;
  uint8_t *peers = malloc(bytes ? bytes : 1);
  if (!peers) return;
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    memcpy(peers + off, picked[i]->data, picked[i]->len);
    off += picked[i]->len;
  }
  if (own) memcpy(peers + off, srv->record, srv->record_len);
  hsp_dht_lookup_reply_t lr = {n + (own ? 1 : 0), {peers, bytes}, bump};
  long len = hsp_dht_lookup_reply_encode(NULL, 0, &lr);
  uint8_t *buf = len > 0 ? malloc((size_t)len) : NULL;
  if (buf && hsp_dht_lookup_reply_encode(buf, (size_t)len, &lr) == len)
    reply(node, req, buf, (size_t)len, true, true, 0);
  free(buf);
  free(peers);
}

static void on_mutable_put(hsp_dht_store_t *s, hsp_dht_node_t *node, const hsp_dht_incoming_t *req,
                           uint64_t now) {
  if (!req->has_target || !req->has_token || !req->has_value) return;
  hsp_dht_mutable_put_t p;
  if (hsp_dht_mutable_put_decode(&p, req->value.data, req->value.len) != 0) return;
  uint8_t h[32];
  hsp_crypto_hash(h, p.public_key, 32);
  if (memcmp(h, req->target, 32) != 0) return;
  if (!hsp_dht_mutable_verify(p.signature, p.seq, p.value, p.public_key)) return;
  entry_t *old = find(s, MUTABLE, req->target, NULL, now);
  if (old) {
    hsp_dht_mutable_get_response_t ex;
    if (hsp_dht_mutable_get_response_decode(&ex, old->data, old->len) == 0) {
      bool same = ex.value.len == p.value.len &&
                  (p.value.len == 0 || memcmp(ex.value.data, p.value.data, p.value.len) == 0);
      if (ex.seq == p.seq && !same) {
        reply(node, req, NULL, 0, false, true, HSP_HYPER_ERROR_SEQ_REUSED);
        return;
      }
      if (p.seq < ex.seq) {
        reply(node, req, NULL, 0, false, true, HSP_HYPER_ERROR_SEQ_TOO_LOW);
        return;
      }
    }
  }
  hsp_dht_mutable_get_response_t st = {p.seq, p.value, p.signature};
  long len = hsp_dht_mutable_get_response_encode(NULL, 0, &st);
  uint8_t *buf = len > 0 ? malloc((size_t)len) : NULL;
  if (!buf) return;
  hsp_dht_mutable_get_response_encode(buf, (size_t)len, &st);
  put(s, MUTABLE, req->target, NULL, buf, (size_t)len, now + s->cfg.value_ttl_ms, now);
  free(buf);
  reply(node, req, NULL, 0, false, true, 0);
}

static void on_mutable_get(hsp_dht_store_t *s, hsp_dht_node_t *node, const hsp_dht_incoming_t *req,
                           uint64_t now) {
  if (!req->has_target || !req->has_value) return;
  hsp_cenc_t st = hsp_cenc_for_decode(req->value.data, req->value.len);
  uint64_t seq = hsp_cenc_decode_uint(&st);
  if (!hsp_cenc_ok(&st)) return;
  entry_t *x = find(s, MUTABLE, req->target, NULL, now);
  if (!x) {
    reply(node, req, NULL, 0, false, true, 0);
    return;
  }
  hsp_cenc_t ls = hsp_cenc_for_decode(x->data, x->len);
  uint64_t local = hsp_cenc_decode_uint(&ls);
  if (local < seq) reply(node, req, NULL, 0, false, true, 0);
  else reply(node, req, x->data, x->len, true, true, 0);
}

static void on_immutable_put(hsp_dht_store_t *s, hsp_dht_node_t *node,
                             const hsp_dht_incoming_t *req, uint64_t now) {
  if (!req->has_target || !req->has_token || !req->has_value) return;
  uint8_t h[32];
  hsp_crypto_hash(h, req->value.data, req->value.len);
  if (memcmp(h, req->target, 32) != 0) return;
  put(s, IMMUTABLE, req->target, NULL, req->value.data, req->value.len,
      now + s->cfg.value_ttl_ms, now);
  reply(node, req, NULL, 0, false, true, 0);
}

static void on_immutable_get(hsp_dht_store_t *s, hsp_dht_node_t *node,
                             const hsp_dht_incoming_t *req, uint64_t now) {
  if (!req->has_target) return;
  entry_t *x = find(s, IMMUTABLE, req->target, NULL, now);
  if (x) reply(node, req, x->data, x->len, true, true, 0);
  else reply(node, req, NULL, 0, false, true, 0);
}

static void on_find_peer(hsp_dht_store_t *s, hsp_dht_node_t *node, const hsp_dht_incoming_t *req,
                         uint64_t now) {
  if (!req->has_target) return;
  struct server *srv = local_server(s, req);
  entry_t *fwd = srv ? NULL : find(s, FORWARD, req->target, NULL, now);
  if (srv) reply(node, req, srv->record, srv->record_len, true, true, 0);
  else if (fwd) reply(node, req, fwd->data, fwd->len, true, true, 0);
  else reply(node, req, NULL, 0, false, true, 0);
}

/* Relay a request onwards with a new hyperdht value (same tid, command and target). */
static void relay_handshake(hsp_dht_node_t *node, const hsp_dht_incoming_t *req,
                            const hsp_dht_handshake_t *hs, const hsp_ipv4_addr_t *to, int socket) {
  uint8_t buf[2048];
  long len = hsp_dht_handshake_encode(buf, sizeof(buf), hs);
  if (len >= 0) hsp_dht_node_relay(node, req, buf, (size_t)len, true, to, socket);
}

static void reply_to(hsp_dht_node_t *node, const hsp_dht_incoming_t *req, const uint8_t *value,
                     size_t len, const hsp_ipv4_addr_t *to, int socket) {
  hsp_dht_reply_opts_t o;
  hsp_dht_reply_opts_default(&o);
  o.socket = socket;
  o.value = value;
  o.value_len = len;
  o.has_value = true;
  o.token = false;
  o.closer_nodes = false;
  o.to = to;
  hsp_dht_node_reply(node, req, &o);
}

/* router.js onpeerhandshake for a node that is not the server: pass the Noise messages
 * between client, relays and server, keeping the tid. */
static void on_peer_handshake(hsp_dht_store_t *s, hsp_dht_node_t *node,
                              const hsp_dht_incoming_t *req, uint64_t now) {
  hsp_dht_handshake_t hs;
  if (!req->has_value || hsp_dht_handshake_decode(&hs, req->value.data, req->value.len) != 0)
    return;
  struct server *srv = local_server(s, req);
  if (srv) {
    hsp_dht_server_reply_t rep = {NULL, 0, -1};
    const hsp_ipv4_addr_t *client = hs.has_peer_address ? &hs.peer_address : &req->from;
    if (!srv->on_handshake || !srv->on_handshake(srv->ctx, req, &hs, client, &rep) || !rep.data)
      return;
    hsp_dht_handshake_t out = {.noise = {rep.data, rep.len},
                               .has_peer_address = hs.has_peer_address,
                               .peer_address = hs.peer_address};
    uint8_t buf[2048];
    if (hs.mode == HSP_HYPER_FROM_CLIENT) {
      hsp_dht_handshake_t direct = {.mode = HSP_HYPER_REPLY, .noise = {rep.data, rep.len}};
      long len = hsp_dht_handshake_encode(buf, sizeof(buf), &direct);
      if (len >= 0) reply_to(node, req, buf, (size_t)len, &req->from, rep.socket);
    } else if (hs.mode == HSP_HYPER_FROM_RELAY) {
      out.mode = HSP_HYPER_FROM_SERVER;
      relay_handshake(node, req, &out, &req->from, rep.socket);
    } else if (hs.mode == HSP_HYPER_FROM_SECOND_RELAY && hs.has_relay_address) {
      out.mode = HSP_HYPER_FROM_SERVER;
      relay_handshake(node, req, &out, &hs.relay_address, rep.socket);
    }
    return;
  }
  entry_t *fwd = req->has_target ? find(s, FORWARD, req->target, NULL, now) : NULL;
  switch (hs.mode) {
  case HSP_HYPER_FROM_CLIENT: {
    if (!fwd && !hs.has_relay_address) {
      hsp_dht_reply_opts_t o; /* no route: closer nodes (no token) help the client on */
      hsp_dht_reply_opts_default(&o);
      o.token = false;
      hsp_dht_node_reply(node, req, &o);
      return;
    }
    hsp_ipv4_addr_t to = hs.has_relay_address ? hs.relay_address : fwd->relay;
    hsp_dht_handshake_t out = {.mode = HSP_HYPER_FROM_RELAY, .noise = hs.noise,
                               .has_peer_address = true, .peer_address = req->from};
    relay_handshake(node, req, &out, &to, -1);
    return;
  }
  case HSP_HYPER_FROM_RELAY: {
    if (!fwd) return;
    hsp_dht_handshake_t out = {.mode = HSP_HYPER_FROM_SECOND_RELAY, .noise = hs.noise,
                               .has_peer_address = hs.has_peer_address,
                               .peer_address = hs.peer_address, .has_relay_address = true,
                               .relay_address = req->from};
    hsp_ipv4_addr_t to = fwd->relay;
    relay_handshake(node, req, &out, &to, -1);
    return;
  }
  case HSP_HYPER_FROM_SERVER: {
    if (!hs.has_peer_address) return;
    hsp_dht_handshake_t out = {.mode = HSP_HYPER_REPLY, .noise = hs.noise,
                               .has_peer_address = true, .peer_address = req->from};
    uint8_t buf[2048];
    long len = hsp_dht_handshake_encode(buf, sizeof(buf), &out);
    if (len >= 0) reply_to(node, req, buf, (size_t)len, &hs.peer_address, -1);
    return;
  }
  default:
    return;
  }
}

/* router.js onpeerholepunch for a node that is not the server. */
static void on_peer_holepunch(hsp_dht_store_t *s, hsp_dht_node_t *node,
                              const hsp_dht_incoming_t *req, uint64_t now) {
  hsp_dht_holepunch_t hp;
  if (!req->has_value || hsp_dht_holepunch_decode(&hp, req->value.data, req->value.len) != 0)
    return;
  struct server *srv = local_server(s, req);
  entry_t *fwd = !srv && req->has_target ? find(s, FORWARD, req->target, NULL, now) : NULL;
  uint8_t buf[2048];
  if (hp.mode == HSP_HYPER_FROM_RELAY) {
    hsp_dht_server_reply_t rep = {NULL, 0, -1};
    if (!srv || !hp.has_peer_address || !srv->on_holepunch ||
        !srv->on_holepunch(srv->ctx, req, &hp, &rep) || !rep.data)
      return;
    hsp_dht_holepunch_t out = {.mode = HSP_HYPER_FROM_SERVER, .id = 0, .payload = {rep.data, rep.len},
                               .has_peer_address = true, .peer_address = hp.peer_address};
    long len = hsp_dht_holepunch_encode(buf, sizeof(buf), &out);
    if (len >= 0) hsp_dht_node_relay(node, req, buf, (size_t)len, true, &req->from, rep.socket);
    return;
  }
  if (hp.mode == HSP_HYPER_FROM_CLIENT) {
    if (!hp.has_peer_address && !fwd) return;
    hsp_ipv4_addr_t to = hp.has_peer_address ? hp.peer_address : fwd->relay;
    hsp_dht_holepunch_t out = {.mode = HSP_HYPER_FROM_RELAY, .id = hp.id, .payload = hp.payload,
                               .has_peer_address = true, .peer_address = req->from};
    long len = hsp_dht_holepunch_encode(buf, sizeof(buf), &out);
    if (len >= 0) hsp_dht_node_relay(node, req, buf, (size_t)len, true, &to, -1);
  } else if (hp.mode == HSP_HYPER_FROM_SERVER) {
    /* Like the reference, a missing peerAddress sends the reply back to the sender. */
    hsp_dht_holepunch_t out = {.mode = HSP_HYPER_REPLY, .id = hp.id, .payload = hp.payload,
                               .has_peer_address = true, .peer_address = req->from};
    long len = hsp_dht_holepunch_encode(buf, sizeof(buf), &out);
    if (len >= 0) reply_to(node, req, buf, (size_t)len, hp.has_peer_address ? &hp.peer_address : &req->from, -1);
  }
}

bool hsp_dht_store_on_request(hsp_dht_store_t *s, hsp_dht_node_t *node,
                              const hsp_dht_incoming_t *req, uint64_t now, uint64_t wall) {
  /* Routing works on every node, ephemeral ones included (hyperdht index.js onrequest). */
  if (req->command == HSP_HYPER_PEER_HANDSHAKE) {
    on_peer_handshake(s, node, req, now);
    return true;
  }
  if (req->command == HSP_HYPER_PEER_HOLEPUNCH) {
    on_peer_holepunch(s, node, req, now);
    return true;
  }
  if (!hsp_dht_node_id(node)) return false; /* ephemeral: UNKNOWN_COMMAND */
  switch (req->command) {
  case HSP_HYPER_FIND_PEER: on_find_peer(s, node, req, now); return true;
  case HSP_HYPER_LOOKUP: on_lookup(s, node, req, now); return true;
  case HSP_HYPER_ANNOUNCE: on_announce(s, node, req, now, wall); return true;
  case HSP_HYPER_UNANNOUNCE: on_unannounce(s, node, req); return true;
  case HSP_HYPER_MUTABLE_PUT: on_mutable_put(s, node, req, now); return true;
  case HSP_HYPER_MUTABLE_GET: on_mutable_get(s, node, req, now); return true;
  case HSP_HYPER_IMMUTABLE_PUT: on_immutable_put(s, node, req, now); return true;
  case HSP_HYPER_IMMUTABLE_GET: on_immutable_get(s, node, req, now); return true;
  case HSP_HYPER_PLUGIN: return true; /* no plugins registered: silently ignored */
  default: return false;
  }
}
