#include "balance.h"

#include <stdlib.h>
#include <string.h>

typedef struct inst {
  uint8_t key[HSP_BAL_KEY_BYTES];
  uint32_t tier; /* 0 = preferred; a higher tier only serves when no lower one can */
  uint8_t state;
  uint32_t in_flight;
  uint32_t failures, ejections;
  uint64_t until_ms;    /* end of the current ejection */
  uint64_t up_since_ms; /* last return to service, for forgiving old ejections */
  double latency_ms;
  uint64_t sampled_ms; /* time of the last latency sample */
  bool has_latency;
  uint64_t picks;
} inst_t;

struct hsp_bal {
  hsp_bal_config_t cfg;
  inst_t *v; /* in registry order */
  size_t n, cap;
  uint64_t rr;
  uint64_t rng;
  uint32_t tier; /* the tier the current pick draws from */
};

const char *hsp_bal_strerror(int err) {
  switch (err) {
  case 0: return "ok";
  case HSP_BAL_ENONE: return "no instance available";
  case HSP_BAL_ENOMEM: return "out of memory";
  case HSP_BAL_EINVAL: return "invalid argument";
  case HSP_BAL_ENOTFOUND: return "unknown instance";
  default: return "unknown error";
  }
}

static const char *const policy_names[] = {
    [HSP_BAL_P2C] = "p2c",   [HSP_BAL_FIRST] = "first",           [HSP_BAL_ROUND_ROBIN] = "round-robin",
    [HSP_BAL_HASH] = "hash", [HSP_BAL_LEAST_CONN] = "least-conn",
};

int hsp_bal_policy_parse(const char *name, hsp_bal_policy_t *out) {
  if (!name) return HSP_BAL_EINVAL;
  for (size_t i = 0; i < sizeof policy_names / sizeof *policy_names; i++) {
    if (strcmp(name, policy_names[i]) == 0) {
      *out = (hsp_bal_policy_t)i;
      return 0;
    }
  }
  return HSP_BAL_EINVAL;
}

const char *hsp_bal_policy_name(hsp_bal_policy_t p) {
  return (size_t)p < sizeof policy_names / sizeof *policy_names ? policy_names[p] : "?";
}

hsp_bal_t *hsp_bal_new(const hsp_bal_config_t *cfg) {
  hsp_bal_t *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  if (cfg) b->cfg = *cfg;
  if (!b->cfg.eject_after) b->cfg.eject_after = 1;
  if (!b->cfg.eject_base_ms) b->cfg.eject_base_ms = 1000;
  if (!b->cfg.eject_max_ms) b->cfg.eject_max_ms = 60000;
  if (b->cfg.eject_max_ms < b->cfg.eject_base_ms) b->cfg.eject_max_ms = b->cfg.eject_base_ms;
  if (!b->cfg.decay_ms) b->cfg.decay_ms = 10000;
  if (!(b->cfg.ewma_weight > 0 && b->cfg.ewma_weight <= 1)) b->cfg.ewma_weight = 0.3;
  b->rng = b->cfg.seed ^ 0x9e3779b97f4a7c15ull;
  return b;
}

void hsp_bal_free(hsp_bal_t *b) {
  if (!b) return;
  free(b->v);
  free(b);
}

/* splitmix64: the random draws and, as a finaliser, the hash policy's mixing. */
static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t rnd(hsp_bal_t *b) { return mix64(b->rng += 0x9e3779b97f4a7c15ull); }

static uint64_t below(hsp_bal_t *b, uint64_t n) { return n ? rnd(b) % n : 0; }

static inst_t *find(const hsp_bal_t *b, const uint8_t key[HSP_BAL_KEY_BYTES]) {
  for (size_t i = 0; i < b->n; i++)
    if (memcmp(b->v[i].key, key, HSP_BAL_KEY_BYTES) == 0) return &b->v[i];
  return NULL;
}

static void init_inst(inst_t *in, const uint8_t key[HSP_BAL_KEY_BYTES]) {
  memset(in, 0, sizeof *in);
  memcpy(in->key, key, HSP_BAL_KEY_BYTES);
  in->state = HSP_BAL_UP;
}

int hsp_bal_sync(hsp_bal_t *b, const uint8_t (*keys)[HSP_BAL_KEY_BYTES], size_t n) {
  return hsp_bal_sync_tiers(b, keys, NULL, n);
}

int hsp_bal_sync_tiers(hsp_bal_t *b, const uint8_t (*keys)[HSP_BAL_KEY_BYTES],
                       const uint32_t *tiers, size_t n) {
  inst_t *v = n ? malloc(n * sizeof *v) : NULL;
  if (n && !v) return HSP_BAL_ENOMEM;
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    bool dup = false;
    for (size_t j = 0; j < m && !dup; j++) dup = memcmp(v[j].key, keys[i], HSP_BAL_KEY_BYTES) == 0;
    if (dup) continue;
    const inst_t *old = find(b, keys[i]);
    if (old)
      v[m] = *old;
    else
      init_inst(&v[m], keys[i]);
    v[m].tier = tiers ? tiers[i] : 0;
    m++;
  }
  free(b->v);
  b->v = v;
  b->n = b->cap = m;
  return 0;
}

int hsp_bal_add(hsp_bal_t *b, const uint8_t key[HSP_BAL_KEY_BYTES]) {
  if (find(b, key)) return 0;
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 8;
    inst_t *v = realloc(b->v, cap * sizeof *v);
    if (!v) return HSP_BAL_ENOMEM;
    b->v = v;
    b->cap = cap;
  }
  init_inst(&b->v[b->n++], key);
  return 0;
}

bool hsp_bal_remove(hsp_bal_t *b, const uint8_t key[HSP_BAL_KEY_BYTES]) {
  inst_t *in = find(b, key);
  if (!in) return false;
  size_t i = (size_t)(in - b->v);
  memmove(&b->v[i], &b->v[i + 1], (b->n - i - 1) * sizeof *b->v);
  b->n--;
  return true;
}

size_t hsp_bal_count(const hsp_bal_t *b) { return b->n; }

size_t hsp_bal_available(const hsp_bal_t *b, uint64_t now_ms) {
  (void)now_ms; /* an ejection that ran out still needs its probe */
  size_t k = 0;
  for (size_t i = 0; i < b->n; i++) k += b->v[i].state == HSP_BAL_UP;
  return k;
}

static bool tried(const hsp_bal_attempt_t *att, const uint8_t *key) {
  if (!att) return false;
  for (unsigned i = 0; i < att->n && i < HSP_BAL_MAX_TRIES; i++)
    if (memcmp(att->tried[i], key, HSP_BAL_KEY_BYTES) == 0) return true;
  return false;
}

static bool usable(const hsp_bal_t *b, size_t i, const hsp_bal_attempt_t *att) {
  return b->v[i].state == HSP_BAL_UP && !tried(att, b->v[i].key);
}

/* Usable and in the tier this pick draws from. */
static bool eligible(const hsp_bal_t *b, size_t i, const hsp_bal_attempt_t *att) {
  return usable(b, i, att) && b->v[i].tier == b->tier;
}

/* The best tier with a usable instance (UINT32_MAX if none). */
static uint32_t best_tier(const hsp_bal_t *b, const hsp_bal_attempt_t *att) {
  uint32_t t = UINT32_MAX;
  for (size_t i = 0; i < b->n; i++)
    if (usable(b, i, att) && b->v[i].tier < t) t = b->v[i].tier;
  return t;
}

/* The k-th eligible instance (0-based). */
static size_t nth_eligible(const hsp_bal_t *b, const hsp_bal_attempt_t *att, size_t k) {
  for (size_t i = 0; i < b->n; i++)
    if (eligible(b, i, att) && k-- == 0) return i;
  return b->n;
}

/* The mean latency of the other instances with samples (or the configured initial value). */
static double others_mean(const hsp_bal_t *b, const inst_t *self) {
  if (b->cfg.initial_latency_ms > 0 && !self->has_latency) return b->cfg.initial_latency_ms;
  double sum = 0;
  size_t k = 0;
  for (size_t i = 0; i < b->n; i++)
    if (&b->v[i] != self && b->v[i].has_latency) sum += b->v[i].latency_ms, k++;
  return k ? sum / (double)k : 1.0;
}

/* Instances without samples are assumed as fast as the others on average, so a newcomer is
 * neither flooded nor shunned before its first connection tells. A sample ages: the longer
 * an instance goes unpicked, the closer its latency is taken to the others' mean, so one
 * that was slow is tried again and can show it recovered (half-way after decay_ms). */
static double latency_of(const hsp_bal_t *b, const inst_t *in, uint64_t now_ms) {
  double l;
  if (!in->has_latency) {
    l = others_mean(b, in);
  } else {
    double age = now_ms > in->sampled_ms ? (double)(now_ms - in->sampled_ms) : 0;
    double w = (double)b->cfg.decay_ms / ((double)b->cfg.decay_ms + age);
    l = in->latency_ms * w + others_mean(b, in) * (1 - w);
  }
  return l > 0.001 ? l : 0.001;
}

static double p2c_cost(const hsp_bal_t *b, const inst_t *in, uint64_t now_ms) {
  return ((double)in->in_flight + 1.0) * latency_of(b, in, now_ms);
}

static uint64_t client_hash(const void *client, size_t len) {
  const uint8_t *p = client;
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then mixed */
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return mix64(h);
}

static uint64_t key_hash(const uint8_t *key) {
  uint64_t h = 0;
  for (size_t i = 0; i < HSP_BAL_KEY_BYTES; i++) h = (h ^ key[i]) * 0x100000001b3ull;
  return h;
}

int hsp_bal_pick(hsp_bal_t *b, uint64_t now_ms, const void *client, size_t client_len,
                 hsp_bal_attempt_t *att, uint8_t out[HSP_BAL_KEY_BYTES]) {
  if (att && att->n >= HSP_BAL_MAX_TRIES) return HSP_BAL_ENONE;
  b->tier = best_tier(b, att);
  size_t count = 0;
  for (size_t i = 0; i < b->n; i++) count += eligible(b, i, att);
  if (count == 0) return HSP_BAL_ENONE;

  size_t pick = b->n;
  switch (b->cfg.policy) {
  case HSP_BAL_FIRST: pick = nth_eligible(b, att, 0); break;
  case HSP_BAL_ROUND_ROBIN: pick = nth_eligible(b, att, (size_t)(b->rr++ % count)); break;
  case HSP_BAL_HASH: {
    /* Rendezvous: the highest score wins. Skipping tried/ejected instances leaves every
     * other client's choice unchanged, which is what makes it sticky. */
    uint64_t ch = client_hash(client, client ? client_len : 0), best = 0;
    for (size_t i = 0; i < b->n; i++) {
      if (!eligible(b, i, att)) continue;
      uint64_t s = mix64(ch ^ key_hash(b->v[i].key));
      if (pick == b->n || s > best) best = s, pick = i;
    }
    break;
  }
  case HSP_BAL_LEAST_CONN: {
    uint32_t min = UINT32_MAX;
    size_t ties = 0;
    for (size_t i = 0; i < b->n; i++) {
      if (!eligible(b, i, att)) continue;
      if (b->v[i].in_flight < min) min = b->v[i].in_flight, ties = 0;
      if (b->v[i].in_flight == min) ties++;
    }
    size_t k = (size_t)below(b, ties);
    for (size_t i = 0; i < b->n; i++)
      if (eligible(b, i, att) && b->v[i].in_flight == min && k-- == 0) {
        pick = i;
        break;
      }
    break;
  }
  case HSP_BAL_P2C:
  default: {
    if (count == 1) {
      pick = nth_eligible(b, att, 0);
      break;
    }
    size_t k1 = (size_t)below(b, count), k2 = (size_t)below(b, count - 1);
    if (k2 >= k1) k2++;
    size_t i1 = nth_eligible(b, att, k1), i2 = nth_eligible(b, att, k2);
    double c1 = p2c_cost(b, &b->v[i1], now_ms), c2 = p2c_cost(b, &b->v[i2], now_ms);
    pick = c1 < c2 ? i1 : c2 < c1 ? i2 : (below(b, 2) ? i1 : i2);
    break;
  }
  }
  if (pick >= b->n) return HSP_BAL_ENONE;
  inst_t *in = &b->v[pick];
  in->in_flight++;
  in->picks++;
  memcpy(out, in->key, HSP_BAL_KEY_BYTES);
  if (att) memcpy(att->tried[att->n++], in->key, HSP_BAL_KEY_BYTES);
  return 0;
}

static void eject(hsp_bal_t *b, inst_t *in, uint64_t now_ms) {
  /* A long healthy spell forgives earlier ejections; a flapping instance keeps doubling. */
  if (in->state == HSP_BAL_UP && now_ms - in->up_since_ms >= b->cfg.eject_max_ms)
    in->ejections = 0;
  if (in->ejections < 63) in->ejections++;
  uint64_t d = b->cfg.eject_base_ms;
  for (uint32_t i = 1; i < in->ejections && d < b->cfg.eject_max_ms; i++) d *= 2;
  if (d > b->cfg.eject_max_ms) d = b->cfg.eject_max_ms;
  in->state = HSP_BAL_EJECTED;
  in->until_ms = now_ms + d;
}

void hsp_bal_success(hsp_bal_t *b, const uint8_t key[HSP_BAL_KEY_BYTES], uint64_t now_ms,
                     double latency_ms) {
  inst_t *in = find(b, key);
  if (!in) return;
  in->failures = 0;
  in->sampled_ms = now_ms;
  if (latency_ms < 0) latency_ms = 0;
  if (!in->has_latency) {
    in->latency_ms = latency_ms;
    in->has_latency = true;
  } else {
    in->latency_ms += b->cfg.ewma_weight * (latency_ms - in->latency_ms);
  }
}

void hsp_bal_failure(hsp_bal_t *b, const uint8_t key[HSP_BAL_KEY_BYTES], uint64_t now_ms) {
  inst_t *in = find(b, key);
  if (!in) return;
  if (in->in_flight) in->in_flight--;
  in->failures++;
  if (in->state == HSP_BAL_UP && in->failures >= b->cfg.eject_after) eject(b, in, now_ms);
}

void hsp_bal_done(hsp_bal_t *b, const uint8_t key[HSP_BAL_KEY_BYTES]) {
  inst_t *in = find(b, key);
  if (in && in->in_flight) in->in_flight--;
}

void hsp_bal_eject(hsp_bal_t *b, const uint8_t key[HSP_BAL_KEY_BYTES], uint64_t now_ms) {
  inst_t *in = find(b, key);
  if (in && in->state == HSP_BAL_UP) eject(b, in, now_ms);
}

bool hsp_bal_may_retry(const hsp_bal_t *b, const hsp_bal_attempt_t *att, uint64_t now_ms,
                       bool forwarded) {
  (void)now_ms;
  if (forwarded || (att && att->n >= HSP_BAL_MAX_TRIES)) return false;
  return best_tier(b, att) != UINT32_MAX;
}

bool hsp_bal_probe_due(hsp_bal_t *b, uint64_t now_ms, uint8_t out[HSP_BAL_KEY_BYTES]) {
  for (size_t i = 0; i < b->n; i++) {
    inst_t *in = &b->v[i];
    if (in->state == HSP_BAL_EJECTED && in->until_ms <= now_ms) {
      in->state = HSP_BAL_PROBING;
      memcpy(out, in->key, HSP_BAL_KEY_BYTES);
      return true;
    }
  }
  return false;
}

void hsp_bal_probe_result(hsp_bal_t *b, const uint8_t key[HSP_BAL_KEY_BYTES], uint64_t now_ms,
                          bool ok) {
  inst_t *in = find(b, key);
  if (!in || in->state != HSP_BAL_PROBING) return;
  if (ok) {
    in->state = HSP_BAL_UP;
    in->failures = 0;
    in->up_since_ms = now_ms;
  } else {
    eject(b, in, now_ms);
  }
}

uint64_t hsp_bal_next_event(const hsp_bal_t *b) {
  uint64_t t = UINT64_MAX;
  for (size_t i = 0; i < b->n; i++)
    if (b->v[i].state == HSP_BAL_EJECTED && b->v[i].until_ms < t) t = b->v[i].until_ms;
  return t;
}

int hsp_bal_stats(const hsp_bal_t *b, const uint8_t key[HSP_BAL_KEY_BYTES], hsp_bal_stats_t *out) {
  const inst_t *in = find(b, key);
  if (!in) return HSP_BAL_ENOTFOUND;
  *out = (hsp_bal_stats_t){(hsp_bal_state_t)in->state, in->in_flight,  in->failures,
                           in->ejections,               in->until_ms,   in->has_latency ? in->latency_ms : 0,
                           in->picks};
  return 0;
}
