#include "punch.h"

#include <sodium.h>
#include <string.h>

enum { FW_UNKNOWN = 0, FW_OPEN = 1, FW_CONSISTENT = 2, FW_RANDOM = 3 };
#define CONSISTENT_ROUNDS 10
#define RANDOM_TRIES 1750

static int coerce(int fw) { return fw == FW_OPEN ? FW_CONSISTENT : fw; }

int hsp_dht_punch_strategy(int local_firewall, int remote_firewall, bool has_verified_remote) {
  int local = coerce(local_firewall), remote = coerce(remote_firewall);
  if (local == FW_CONSISTENT && remote == FW_CONSISTENT) return HSP_DHT_PUNCH_CONSISTENT;
  if (!has_verified_remote) return HSP_DHT_PUNCH_NONE;
  if (local == FW_CONSISTENT && remote >= FW_RANDOM) return HSP_DHT_PUNCH_RANDOM_PORTS;
  if (local >= FW_RANDOM && remote == FW_CONSISTENT) return HSP_DHT_PUNCH_BIRTHDAY;
  return HSP_DHT_PUNCH_NONE;
}

static uint64_t default_random(void *ctx) {
  (void)ctx;
  uint64_t v;
  randombytes_buf(&v, sizeof(v));
  return v;
}

int hsp_dht_punch_init(hsp_dht_punch_t *p, int local_firewall, int remote_firewall,
                       const hsp_ipv4_addr_t *remote, const bool *verified, size_t nremote,
                       bool initiator, uint64_t now, uint64_t (*random)(void *), void *ctx) {
  memset(p, 0, sizeof(*p));
  if (nremote > HSP_DHT_PUNCH_MAX_REMOTE) nremote = HSP_DHT_PUNCH_MAX_REMOTE;
  bool has_verified = false;
  for (size_t i = 0; i < nremote; i++) {
    p->remote[i] = remote[i];
    p->verified[i] = verified && verified[i];
    if (p->verified[i] && !has_verified) {
      has_verified = true;
      p->target = remote[i];
    }
  }
  p->nremote = nremote;
  p->initiator = initiator;
  p->random = random ? random : default_random;
  p->random_ctx = ctx;
  p->strategy = nremote ? hsp_dht_punch_strategy(local_firewall, remote_firewall, has_verified)
                        : HSP_DHT_PUNCH_NONE;
  switch (p->strategy) {
  case HSP_DHT_PUNCH_CONSISTENT:
    /* The responder's fast-open probe just went out: it waits a round first. */
    p->deadline = initiator ? now : now + 1000;
    p->tries = 1;
    break;
  case HSP_DHT_PUNCH_RANDOM_PORTS:
    p->deadline = now;
    p->tries = RANDOM_TRIES;
    break;
  case HSP_DHT_PUNCH_BIRTHDAY:
    p->deadline = now;
    p->sockets = 1; /* the puncher socket itself */
    p->opening = true;
    p->tries = RANDOM_TRIES;
    p->low_ttl_rounds = 1;
    break;
  default:
    p->done = true;
    p->deadline = UINT64_MAX;
  }
  return p->strategy;
}

uint64_t hsp_dht_punch_deadline(const hsp_dht_punch_t *p) {
  return p->stopped || p->done ? UINT64_MAX : p->deadline;
}

void hsp_dht_punch_stop(hsp_dht_punch_t *p) { p->stopped = true; }

static bool finish(hsp_dht_punch_t *p, hsp_dht_punch_action_t *out) {
  p->done = true;
  *out = (hsp_dht_punch_action_t){.kind = HSP_DHT_PUNCH_DONE};
  return true;
}

static bool consistent(hsp_dht_punch_t *p, uint64_t now, hsp_dht_punch_action_t *out) {
  /* Ten rounds 1 s apart, then one more second before giving up, as the reference. */
  if (p->tries > CONSISTENT_ROUNDS) return finish(p, out);
  /* Round `tries` (1-based): every verified address, unverified ones when tries % 4 == 0. */
  while (p->index < p->nremote) {
    size_t i = p->index++;
    if (!p->verified[i] && (p->tries & 3) != 0) continue;
    *out = (hsp_dht_punch_action_t){HSP_DHT_PUNCH_PROBE, 0, p->remote[i], HSP_DHT_DEFAULT_TTL};
    return true;
  }
  p->index = 0;
  p->tries++;
  p->deadline = now + 1000;
  return false;
}

static bool random_ports(hsp_dht_punch_t *p, uint64_t now, hsp_dht_punch_action_t *out) {
  if (p->tries-- <= 0) return finish(p, out);
  hsp_ipv4_addr_t to = p->target;
  to.port = (uint16_t)(1000 + p->random(p->random_ctx) % 64536);
  *out = (hsp_dht_punch_action_t){HSP_DHT_PUNCH_PROBE, 0, to, HSP_DHT_DEFAULT_TTL};
  p->deadline = now + 20;
  return true;
}

static bool birthday(hsp_dht_punch_t *p, uint64_t now, hsp_dht_punch_action_t *out) {
  if (p->opening) {
    /* Each new socket opens, then sends one low-TTL probe, as a burst. */
    if (p->index == 1) {
      p->index = 0;
      *out = (hsp_dht_punch_action_t){HSP_DHT_PUNCH_PROBE, p->sockets - 1, p->target,
                                      HSP_DHT_HOLEPUNCH_TTL};
      return true;
    }
    if (p->sockets < HSP_DHT_BIRTHDAY_SOCKETS) {
      p->index = 1;
      *out = (hsp_dht_punch_action_t){.kind = HSP_DHT_PUNCH_OPEN_SOCKET, .socket = p->sockets++};
      return true;
    }
    p->opening = false;
    p->index = 0;
    p->deadline = now + 100;
    return false;
  }
  if (p->tries-- <= 0) return finish(p, out);
  if (p->index == p->sockets) {
    p->index = 0;
    if (p->low_ttl_rounds > 0) p->low_ttl_rounds--;
  }
  *out = (hsp_dht_punch_action_t){HSP_DHT_PUNCH_PROBE, p->index++, p->target,
                                  p->low_ttl_rounds > 0 ? HSP_DHT_HOLEPUNCH_TTL
                                                        : HSP_DHT_DEFAULT_TTL};
  p->deadline = now + 20;
  return true;
}

bool hsp_dht_punch_next(hsp_dht_punch_t *p, uint64_t now, hsp_dht_punch_action_t *out) {
  if (p->stopped || p->done || now < p->deadline) return false;
  switch (p->strategy) {
  case HSP_DHT_PUNCH_CONSISTENT: return consistent(p, now, out);
  case HSP_DHT_PUNCH_RANDOM_PORTS: return random_ports(p, now, out);
  case HSP_DHT_PUNCH_BIRTHDAY: return birthday(p, now, out);
  default: return false;
  }
}

int hsp_dht_match_address(const hsp_ipv4_addr_t *local, size_t nlocal,
                          const hsp_ipv4_addr_t *remote, size_t nremote) {
  int best = -1, best_segment = 1;
  for (size_t i = 0; i < nlocal; i++) {
    const uint8_t *a = local[i].host;
    for (size_t j = 0; j < nremote; j++) {
      const uint8_t *b = remote[j].host;
      if (a[0] != b[0]) continue;
      if (best_segment == 1) best_segment = 2, best = (int)j;
      if (a[1] != b[1]) continue;
      if (best_segment == 2) best_segment = 3, best = (int)j;
      if (a[2] == b[2]) return (int)j;
    }
  }
  return best;
}

bool hsp_dht_ip_private(const uint8_t h[4]) {
  return h[0] == 10 || (h[0] == 100 && h[1] >= 64 && h[1] <= 127) || h[0] == 127 ||
         (h[0] == 169 && h[1] == 254) || (h[0] == 172 && h[1] >= 16 && h[1] <= 31) ||
         (h[0] == 192 && h[1] == 168);
}

bool hsp_dht_ip_reserved(const uint8_t h[4]) {
  return h[0] == 0 || (h[0] == 192 && h[1] == 0 && (h[2] == 0 || h[2] == 2)) ||
         (h[0] == 198 && (h[1] == 18 || h[1] == 19)) ||
         (h[0] == 198 && h[1] == 51 && h[2] == 100) || (h[0] == 203 && h[1] == 0 && h[2] == 113) ||
         h[0] >= 224;
}

bool hsp_dht_ip_bogon(const uint8_t h[4]) { return hsp_dht_ip_private(h) || hsp_dht_ip_reserved(h); }

int hsp_dht_probe_verdict(int local, int remote, bool have_token, bool may_retry) {
  if ((remote == FW_UNKNOWN || !have_token) && may_retry) return HSP_DHT_PROBE_AGAIN;
  if (remote == FW_UNKNOWN || local == FW_UNKNOWN) return HSP_DHT_PROBE_ABORT_TIMEOUT;
  if (remote >= FW_RANDOM && local >= FW_RANDOM) return HSP_DHT_PROBE_ABORT_RANDOM;
  return HSP_DHT_PROBE_PUNCH;
}

bool hsp_dht_punch_is_random(int local, int remote) {
  return local >= FW_RANDOM || remote >= FW_RANDOM;
}

int hsp_dht_serve_verdict(int local, int remote, bool remote_punching, bool random_allowed) {
  bool unstable = local == FW_UNKNOWN || (local >= FW_RANDOM && remote >= FW_RANDOM);
  if (!remote_punching) return unstable ? HSP_DHT_SERVE_ABORT : HSP_DHT_SERVE_REPLY;
  if (hsp_dht_punch_is_random(local, remote) && !random_allowed) return HSP_DHT_SERVE_TRY_LATER;
  return HSP_DHT_SERVE_PUNCH;
}

bool hsp_dht_punch_limit_allowed(const hsp_dht_punch_limit_t *l, uint64_t now) {
  if (l->active >= 1) return false;
  return !l->ended_once || now - l->last_end >= HSP_DHT_RANDOM_PUNCH_INTERVAL_MS;
}

void hsp_dht_punch_limit_begin(hsp_dht_punch_limit_t *l) { l->active++; }

void hsp_dht_punch_limit_end(hsp_dht_punch_limit_t *l, uint64_t now) {
  if (l->active > 0) l->active--;
  l->ended_once = true;
  l->last_end = now;
}
