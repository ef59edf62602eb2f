#include "index.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Records are compact (strings in one allocation) because a proxy may hold 100,000 of
 * them; the parsed version is kept so a query never re-parses. */
typedef struct rec {
  uint8_t key[HSP_REG_KEY_BYTES];
  uint32_t ttl_ms;
  uint64_t registered_ms, renewed_ms, expires_ms, reg_seq;
  hsp_semver_t ver;
  struct group *group;
  char *name, *version, *tags; /* into strs */
  char strs[];
} rec_t;

typedef struct group {
  char *name;
  rec_t **items; /* registration order */
  size_t n, cap;
} group_t;

struct hsp_reg_index {
  uint8_t hkey[crypto_shorthash_KEYBYTES];
  rec_t **recs; /* open addressing by key, linear probing */
  size_t rcap, rcount;
  group_t **groups; /* open addressing by name */
  size_t gcap, gcount;
};

/* Keyed hash: instance keys and names come from the network, so an attacker must not be
 * able to choose colliding ones. */
static uint64_t hash(const hsp_reg_index_t *ix, const void *p, size_t n) {
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, p, n, ix->hkey);
  uint64_t v;
  memcpy(&v, h, sizeof v);
  return v;
}

hsp_reg_index_t *hsp_reg_index_new(void) {
  if (sodium_init() < 0) return NULL;
  hsp_reg_index_t *ix = calloc(1, sizeof *ix);
  if (!ix) return NULL;
  randombytes_buf(ix->hkey, sizeof ix->hkey);
  ix->rcap = 64;
  ix->gcap = 16;
  ix->recs = calloc(ix->rcap, sizeof *ix->recs);
  ix->groups = calloc(ix->gcap, sizeof *ix->groups);
  if (!ix->recs || !ix->groups) {
    hsp_reg_index_free(ix);
    return NULL;
  }
  return ix;
}

void hsp_reg_index_free(hsp_reg_index_t *ix) {
  if (!ix) return;
  for (size_t i = 0; ix->recs && i < ix->rcap; i++) free(ix->recs[i]);
  for (size_t i = 0; ix->groups && i < ix->gcap; i++) {
    if (!ix->groups[i]) continue;
    free(ix->groups[i]->items);
    free(ix->groups[i]->name);
    free(ix->groups[i]);
  }
  free(ix->recs);
  free(ix->groups);
  free(ix);
}

size_t hsp_reg_index_count(const hsp_reg_index_t *ix) { return ix->rcount; }

static size_t rec_slot(const hsp_reg_index_t *ix, const uint8_t *key) {
  size_t m = ix->rcap - 1, i = hash(ix, key, HSP_REG_KEY_BYTES) & m;
  while (ix->recs[i] && memcmp(ix->recs[i]->key, key, HSP_REG_KEY_BYTES) != 0) i = (i + 1) & m;
  return i;
}

static int rec_grow(hsp_reg_index_t *ix) {
  if ((ix->rcount + 1) * 2 <= ix->rcap) return HSP_REG_OK;
  rec_t **old = ix->recs;
  size_t ocap = ix->rcap;
  ix->recs = calloc(ocap * 2, sizeof *ix->recs);
  if (!ix->recs) {
    ix->recs = old;
    return HSP_REG_ENOMEM;
  }
  ix->rcap = ocap * 2;
  for (size_t i = 0; i < ocap; i++)
    if (old[i]) ix->recs[rec_slot(ix, old[i]->key)] = old[i];
  free(old);
  return HSP_REG_OK;
}

/* Linear-probing delete by backward shift: no tombstones to accumulate under churn. */
static void rec_remove_slot(hsp_reg_index_t *ix, size_t i) {
  size_t m = ix->rcap - 1;
  ix->recs[i] = NULL;
  ix->rcount--;
  for (size_t j = (i + 1) & m; ix->recs[j]; j = (j + 1) & m) {
    size_t home = hash(ix, ix->recs[j]->key, HSP_REG_KEY_BYTES) & m;
    /* move j back to i if its home is not cyclically within (i, j] */
    bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!between) {
      ix->recs[i] = ix->recs[j];
      ix->recs[j] = NULL;
      i = j;
    }
  }
}

static size_t group_slot(const hsp_reg_index_t *ix, const char *name) {
  size_t m = ix->gcap - 1, i = hash(ix, name, strlen(name)) & m;
  while (ix->groups[i] && strcmp(ix->groups[i]->name, name) != 0) i = (i + 1) & m;
  return i;
}

static group_t *group_get(hsp_reg_index_t *ix, const char *name, bool create) {
  size_t i = group_slot(ix, name);
  if (ix->groups[i] || !create) return ix->groups[i];
  if ((ix->gcount + 1) * 2 > ix->gcap) {
    group_t **old = ix->groups;
    size_t ocap = ix->gcap;
    ix->groups = calloc(ocap * 2, sizeof *ix->groups);
    if (!ix->groups) {
      ix->groups = old;
      return NULL;
    }
    ix->gcap = ocap * 2;
    for (size_t k = 0; k < ocap; k++)
      if (old[k]) ix->groups[group_slot(ix, old[k]->name)] = old[k];
    free(old);
    i = group_slot(ix, name);
  }
  group_t *g = calloc(1, sizeof *g);
  if (!g || !(g->name = strdup(name))) {
    free(g);
    return NULL;
  }
  ix->groups[i] = g;
  ix->gcount++;
  return g;
}

static void group_remove(group_t *g, rec_t *r) {
  for (size_t i = 0; i < g->n; i++) {
    if (g->items[i] != r) continue;
    memmove(&g->items[i], &g->items[i + 1], (g->n - i - 1) * sizeof *g->items);
    g->n--;
    return;
  }
}

/* Inserts keeping registration order (appends in the common case). */
static int group_add(group_t *g, rec_t *r) {
  if (g->n == g->cap) {
    size_t cap = g->cap ? g->cap * 2 : 4;
    void *p = realloc(g->items, cap * sizeof *g->items);
    if (!p) return HSP_REG_ENOMEM;
    g->items = p;
    g->cap = cap;
  }
  size_t i = g->n;
  while (i > 0 && g->items[i - 1]->reg_seq > r->reg_seq) i--;
  memmove(&g->items[i + 1], &g->items[i], (g->n - i) * sizeof *g->items);
  g->items[i] = r;
  g->n++;
  return HSP_REG_OK;
}

static void rec_delete(hsp_reg_index_t *ix, size_t slot) {
  rec_t *r = ix->recs[slot];
  group_remove(r->group, r);
  rec_remove_slot(ix, slot);
  free(r);
}

int hsp_reg_index_put(hsp_reg_index_t *ix, const hsp_reg_instance_t *in) {
  size_t ln = strlen(in->name), lv = strlen(in->version), lt = strlen(in->tags);
  hsp_semver_t v;
  if (hsp_semver_parse(&v, in->version, lv)) return HSP_REG_EINVAL;
  if (rec_grow(ix)) return HSP_REG_ENOMEM;
  group_t *g = group_get(ix, in->name, true);
  if (!g) return HSP_REG_ENOMEM;
  rec_t *r = malloc(sizeof *r + ln + lv + lt + 3);
  if (!r) return HSP_REG_ENOMEM;
  memcpy(r->key, in->key, HSP_REG_KEY_BYTES);
  r->ttl_ms = in->ttl_ms;
  r->registered_ms = in->registered_ms;
  r->renewed_ms = in->renewed_ms;
  r->expires_ms = in->expires_ms;
  r->reg_seq = in->reg_seq;
  r->ver = v;
  r->group = g;
  r->name = r->strs;
  r->version = r->name + ln + 1;
  r->tags = r->version + lv + 1;
  memcpy(r->name, in->name, ln + 1);
  memcpy(r->version, in->version, lv + 1);
  memcpy(r->tags, in->tags, lt + 1);
  if (group_add(g, r)) {
    free(r);
    return HSP_REG_ENOMEM;
  }
  size_t slot = rec_slot(ix, in->key);
  if (ix->recs[slot]) rec_delete(ix, slot), slot = rec_slot(ix, in->key);
  ix->recs[slot] = r;
  ix->rcount++;
  return HSP_REG_OK;
}

int hsp_reg_index_apply(hsp_reg_index_t *ix, const hsp_reg_entry_t *e) {
  size_t slot = rec_slot(ix, e->inst.key);
  rec_t *r = ix->recs[slot];
  switch (e->type) {
  case HSP_REG_REGISTER: return hsp_reg_index_put(ix, &e->inst);
  case HSP_REG_RENEW:
    if (!r) return HSP_REG_ENOTFOUND;
    r->ttl_ms = e->inst.ttl_ms;
    r->expires_ms = e->inst.expires_ms;
    r->renewed_ms = e->time_ms;
    return HSP_REG_OK;
  case HSP_REG_DEREGISTER:
  case HSP_REG_EXPIRE:
    if (!r) return HSP_REG_ENOTFOUND;
    rec_delete(ix, slot);
    return HSP_REG_OK;
  default: return HSP_REG_EINVAL;
  }
}

static void to_instance(const rec_t *r, hsp_reg_instance_t *out) {
  memset(out, 0, sizeof *out);
  memcpy(out->key, r->key, HSP_REG_KEY_BYTES);
  /* the strings were validated against these bounds on the way in */
  snprintf(out->name, sizeof out->name, "%s", r->name);
  snprintf(out->version, sizeof out->version, "%s", r->version);
  snprintf(out->tags, sizeof out->tags, "%s", r->tags);
  out->ttl_ms = r->ttl_ms;
  out->registered_ms = r->registered_ms;
  out->renewed_ms = r->renewed_ms;
  out->expires_ms = r->expires_ms;
  out->reg_seq = r->reg_seq;
}

bool hsp_reg_index_get(const hsp_reg_index_t *ix, const uint8_t key[HSP_REG_KEY_BYTES],
                       hsp_reg_instance_t *out) {
  rec_t *r = ix->recs[rec_slot(ix, key)];
  if (r && out) to_instance(r, out);
  return r != NULL;
}

static int rec_order(const void *a, const void *b) {
  const rec_t *x = *(rec_t *const *)a, *y = *(rec_t *const *)b;
  int c = hsp_semver_compare(&y->ver, &x->ver);
  if (c) return c;
  return x->reg_seq < y->reg_seq ? -1 : x->reg_seq > y->reg_seq;
}

long hsp_reg_index_query(const hsp_reg_index_t *ix, const char *name,
                         const hsp_semver_range_t *range, hsp_reg_instance_t *out, size_t cap) {
  size_t slot = group_slot(ix, name);
  group_t *g = ix->groups[slot];
  if (!g || g->n == 0) return 0;
  rec_t **hits = malloc(g->n * sizeof *hits);
  if (!hits) return HSP_REG_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < g->n; i++)
    if (hsp_semver_range_test(range, &g->items[i]->ver)) hits[k++] = g->items[i];
  if (k > 1) qsort(hits, k, sizeof *hits, rec_order);
  for (size_t i = 0; i < k && i < cap; i++) to_instance(hits[i], &out[i]);
  free(hits);
  return (long)k;
}

void hsp_reg_index_each(const hsp_reg_index_t *ix,
                        void (*cb)(void *ud, const hsp_reg_instance_t *inst), void *ud) {
  hsp_reg_instance_t tmp;
  for (size_t i = 0; i < ix->rcap; i++) {
    if (!ix->recs[i]) continue;
    to_instance(ix->recs[i], &tmp);
    cb(ud, &tmp);
  }
}
