#include "nat.h"

#include <string.h>

#define POOL (HSP_DHT_NAT_RING + 8)

void hsp_dht_nat_init(hsp_dht_nat_sampler_t *s) {
  memset(s, 0, sizeof(*s));
  s->best_a = s->best_b = -1;
}

/* Entries are shared between ring slots and the two "best" references, exactly like the JS
 * objects, so an entry is free only when nothing points at it any more. */
static int alloc_entry(hsp_dht_nat_sampler_t *s, int keep, const uint8_t host[4], uint16_t port) {
  bool busy[POOL] = {0};
  for (size_t i = 0; i < s->used; i++) busy[s->ring[i]] = true;
  if (s->best_a >= 0) busy[s->best_a] = true;
  if (s->best_b >= 0) busy[s->best_b] = true;
  if (keep >= 0) busy[keep] = true;
  for (int i = 0; i < POOL; i++) {
    if (busy[i]) continue;
    memcpy(s->pool[i].host, host, 4);
    s->pool[i].port = port;
    s->pool[i].hits = 1;
    return i;
  }
  return -1; /* unreachable: at most 35 entries are referenced at once */
}

static int bump(hsp_dht_nat_sampler_t *s, int keep, const uint8_t host[4], uint16_t port,
                size_t inc) {
  for (size_t i = 0; i < 4; i++) {
    size_t j = (s->top - inc - 2 * i) & (HSP_DHT_NAT_RING - 1);
    if (j >= s->used) break;
    hsp_dht_nat_entry_t *e = &s->pool[s->ring[j]];
    if (e->port == port && memcmp(e->host, host, 4) == 0) {
      e->hits++;
      return s->ring[j];
    }
  }
  return alloc_entry(s, keep, host, port);
}

int hsp_dht_nat_add(hsp_dht_nat_sampler_t *s, const uint8_t host[4], uint16_t port) {
  int a = bump(s, -1, host, port, 2);
  int b = bump(s, a, host, 0, 1);
  if (a < 0 || b < 0) return 0;

  if (s->used < HSP_DHT_NAT_RING) {
    s->size++;
    s->threshold = (int)s->size - (s->size < 4 ? 0 : s->size < 8 ? 1 : s->size < 12 ? 2 : 3);
    s->ring[s->used++] = (uint8_t)a;
    s->ring[s->used++] = (uint8_t)b;
    s->top += 2;
  } else {
    if (s->top == HSP_DHT_NAT_RING) s->top = 0;
    int oa = s->ring[s->top];
    s->ring[s->top++] = (uint8_t)a;
    s->pool[oa].hits--;
    int ob = s->ring[s->top];
    s->ring[s->top++] = (uint8_t)b;
    s->pool[ob].hits--;
  }

  if (s->best_a < 0 || s->pool[s->best_a].hits < s->pool[a].hits) s->best_a = a;
  if (s->best_b < 0 || s->pool[s->best_b].hits < s->pool[b].hits) s->best_b = b;

  const hsp_dht_nat_entry_t *ba = &s->pool[s->best_a], *bb = &s->pool[s->best_b];
  if (ba->hits >= s->threshold) {
    s->has_host = true;
    memcpy(s->host, ba->host, 4);
    s->port = ba->port;
  } else if (bb->hits >= s->threshold) {
    s->has_host = true;
    memcpy(s->host, bb->host, 4);
    s->port = 0;
  } else {
    s->has_host = false;
    memset(s->host, 0, 4);
    s->port = 0;
  }
  return s->pool[a].hits;
}

void hsp_dht_firewall_probe_init(hsp_dht_firewall_probe_t *p, size_t probed) {
  memset(p, 0, sizeof(*p));
  p->probed = probed;
}

void hsp_dht_firewall_probe_saw(hsp_dht_firewall_probe_t *p, const uint8_t host[4]) {
  for (size_t i = 0; i < p->nhosts; i++)
    if (memcmp(p->hosts[i], host, 4) == 0) return;
  if (p->nhosts < HSP_DHT_FIREWALL_MAX_HOSTS) memcpy(p->hosts[p->nhosts++], host, 4);
}

void hsp_dht_firewall_probe_reply(hsp_dht_firewall_probe_t *p, const hsp_ipv4_addr_t *from,
                                  const hsp_ipv4_addr_t *to) {
  if (p->nreplies >= HSP_DHT_FIREWALL_MAX_PROBES) return;
  p->reply_from[p->nreplies] = *from;
  p->reply_to[p->nreplies] = *to;
  p->nreplies++;
}

static bool saw(const hsp_dht_firewall_probe_t *p, const uint8_t host[4]) {
  for (size_t i = 0; i < p->nhosts; i++)
    if (memcmp(p->hosts[i], host, 4) == 0) return true;
  return false;
}

bool hsp_dht_firewall_probe_open(const hsp_dht_firewall_probe_t *p,
                                 const hsp_dht_nat_sampler_t *main, uint16_t server_port,
                                 hsp_dht_nat_sampler_t *fresh) {
  hsp_dht_nat_init(fresh);
  size_t count = 0;
  for (size_t i = 0; i < p->nreplies; i++) {
    if (!saw(p, p->reply_from[i].host)) continue;
    count++;
    hsp_dht_nat_add(fresh, p->reply_to[i].host, p->reply_to[i].port);
  }
  if (p->probed == 0) return false;
  if (count < (p->probed >= 5 ? 3u : 1u)) return false;
  if (!fresh->has_host || !main->has_host || memcmp(fresh->host, main->host, 4) != 0) return false;
  if (fresh->port == 0 || fresh->port != server_port) return false;
  return true;
}

/* ---- hyperdht NAT classification --------------------------------------------------------- */

enum { FW_UNKNOWN = 0, FW_OPEN = 1, FW_CONSISTENT = 2, FW_RANDOM = 3 };

void hsp_dht_nat_classifier_init(hsp_dht_nat_classifier_t *c, bool dht_firewalled) {
  memset(c, 0, sizeof(*c));
  c->dht_firewalled = dht_firewalled;
  c->firewall = dht_firewalled ? FW_UNKNOWN : FW_OPEN;
}

/* Bump or append, keeping the list sorted by hits (a bumped entry moves ahead of entries
 * with fewer hits; ties keep their order), as nat.js addSample. */
static void add_sample(hsp_dht_nat_class_sample_t *list, size_t *n, const uint8_t host[4],
                       uint16_t port) {
  for (size_t i = 0; i < *n; i++) {
    if (list[i].addr.port != port || memcmp(list[i].addr.host, host, 4) != 0) continue;
    list[i].hits++;
    for (; i > 0 && list[i - 1].hits < list[i].hits; i--) {
      hsp_dht_nat_class_sample_t t = list[i - 1];
      list[i - 1] = list[i];
      list[i] = t;
    }
    return;
  }
  if (*n >= HSP_DHT_NAT_CLASS_MAX) return;
  memcpy(list[*n].addr.host, host, 4);
  list[*n].addr.port = port;
  list[*n].hits = 1;
  (*n)++;
}

static void update_firewall(hsp_dht_nat_classifier_t *c) {
  if (!c->dht_firewalled) {
    c->firewall = FW_OPEN;
    return;
  }
  if (c->sampled < 3) return;
  int max = c->full[0].hits;
  if (max >= 3) c->firewall = FW_CONSISTENT;
  else if (max == 1) c->firewall = FW_RANDOM;
  else if (c->nhosts == 1 && c->sampled > 3) c->firewall = FW_RANDOM; /* 2 bad samples */
  else if (c->nhosts > 1 && c->full[1].hits > 1) c->firewall = FW_CONSISTENT;
  else if (c->sampled > 4) c->firewall = FW_RANDOM;
}

static void update_addresses(hsp_dht_nat_classifier_t *c) {
  c->naddresses = 0;
  c->has_addresses = false;
  if (c->firewall == FW_RANDOM) {
    c->has_addresses = true;
    c->addresses[c->naddresses++] = c->hosts[0].addr;
  } else if (c->firewall == FW_CONSISTENT) {
    c->has_addresses = true;
    for (size_t i = 0; i < c->nfull; i++)
      if (c->full[i].hits >= 2 || c->naddresses < 2) c->addresses[c->naddresses++] = c->full[i].addr;
  }
  /* OPEN keeps whatever was computed before, like the reference (it never resets them). */
}

void hsp_dht_nat_classifier_update(hsp_dht_nat_classifier_t *c, bool dht_firewalled) {
  c->dht_firewalled = dht_firewalled;
  if (c->dht_firewalled && c->firewall == FW_OPEN) c->firewall = FW_UNKNOWN;
  update_firewall(c);
  if (c->firewall != FW_OPEN) update_addresses(c);
}

void hsp_dht_nat_classifier_freeze(hsp_dht_nat_classifier_t *c) { c->frozen = true; }

void hsp_dht_nat_classifier_unfreeze(hsp_dht_nat_classifier_t *c) {
  c->frozen = false;
  update_firewall(c);
  if (c->firewall != FW_OPEN) update_addresses(c);
}

bool hsp_dht_nat_classifier_add(hsp_dht_nat_classifier_t *c, const hsp_ipv4_addr_t *to,
                                const hsp_ipv4_addr_t *from) {
  for (size_t i = 0; i < c->nvisited; i++)
    if (c->visited[i].port == from->port && memcmp(c->visited[i].host, from->host, 4) == 0)
      goto settled;
  if (c->nvisited < HSP_DHT_NAT_CLASS_MAX) c->visited[c->nvisited++] = *from;
  add_sample(c->hosts, &c->nhosts, to->host, 0);
  add_sample(c->full, &c->nfull, to->host, to->port);
  if ((++c->sampled >= 3 || !c->dht_firewalled) && !c->frozen)
    hsp_dht_nat_classifier_update(c, c->dht_firewalled);
settled:
  return c->firewall == FW_CONSISTENT || c->firewall == FW_OPEN ||
         c->sampled >= HSP_DHT_NAT_MIN_SAMPLES;
}
