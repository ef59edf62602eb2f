#include "client.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define RETRY_MS 5000u

int hsp_reg_client_init(hsp_reg_client_t *c, const uint8_t registry[HSP_REG_KEY_BYTES],
                        const uint8_t secret[HSP_REG_SECRET_BYTES], const char *name,
                        const char *version, const char *tags, uint32_t ttl_ms) {
  memset(c, 0, sizeof *c);
  if (!hsp_reg_name_valid(name, strlen(name)) || !hsp_reg_version_valid(version, strlen(version)) ||
      !hsp_reg_tags_valid(tags, strlen(tags)) || ttl_ms < HSP_REG_TTL_MIN_MS ||
      ttl_ms > HSP_REG_TTL_MAX_MS)
    return HSP_REG_EINVAL;
  memcpy(c->registry, registry, HSP_REG_KEY_BYTES);
  memcpy(c->sk, secret, HSP_REG_SECRET_BYTES);
  crypto_sign_ed25519_sk_to_pk(c->pk, secret);
  memcpy(c->inst.key, c->pk, HSP_REG_KEY_BYTES);
  snprintf(c->inst.name, sizeof c->inst.name, "%s", name);
  snprintf(c->inst.version, sizeof c->inst.version, "%s", version);
  snprintf(c->inst.tags, sizeof c->inst.tags, "%s", tags);
  c->inst.ttl_ms = ttl_ms;
  c->state = HSP_REG_CLIENT_IDLE;
  c->next_id = 1;
  c->retry_ms = RETRY_MS;
  return HSP_REG_OK;
}

/* The registry refuses a timestamp not greater than the previous one from this key. */
static uint64_t stamp(hsp_reg_client_t *c, uint64_t now_ms) {
  c->last_ts = now_ms > c->last_ts ? now_ms : c->last_ts + 1;
  return c->last_ts;
}

static long build(hsp_reg_client_t *c, uint8_t type, uint64_t now_ms, uint8_t **out) {
  hsp_reg_msg_t m;
  memset(&m, 0, sizeof m);
  m.id = c->next_id++;
  m.type = type;
  m.inst = c->inst;
  if (type == HSP_REG_MSG_DEREGISTER) memcpy(m.signer, c->pk, HSP_REG_KEY_BYTES);
  memcpy(m.registry, c->registry, HSP_REG_KEY_BYTES);
  m.ts_ms = stamp(c, now_ms);
  int err = hsp_reg_msg_sign(&m, c->sk);
  if (err) return err;
  c->pending_id = m.id;
  c->pending_type = type;
  return hsp_reg_msg_encode_alloc(&m, out);
}

long hsp_reg_client_tick(hsp_reg_client_t *c, uint64_t now_ms, uint8_t **out) {
  *out = NULL;
  if (now_ms < c->due_ms) return 0;
  /* Renew while the registry confirmed a lease that has not ended (a renew lost on the
   * way is simply sent again); otherwise register, which is idempotent. */
  uint8_t type = c->expires_ms > now_ms ? HSP_REG_MSG_RENEW : HSP_REG_MSG_REGISTER;
  long n = build(c, type, now_ms, out);
  if (n < 0) return n;
  c->state = HSP_REG_CLIENT_PENDING;
  c->due_ms = now_ms + c->retry_ms;
  return n;
}

uint64_t hsp_reg_client_next_timer(const hsp_reg_client_t *c) { return c->due_ms; }

int hsp_reg_client_receive(hsp_reg_client_t *c, const uint8_t *msg, size_t len, uint64_t now_ms) {
  hsp_reg_msg_t m;
  int err = hsp_reg_msg_decode(&m, msg, len);
  if (err) return err;
  hsp_reg_msg_free(&m);
  if (m.id != c->pending_id || c->pending_id == 0) return HSP_REG_OK; /* stale answer */
  c->pending_id = 0;
  if (c->pending_type == HSP_REG_MSG_DEREGISTER) {
    c->state = HSP_REG_CLIENT_IDLE;
    c->due_ms = UINT64_MAX;
    return m.type == HSP_REG_MSG_ERROR ? m.code : HSP_REG_OK;
  }
  if (m.type == HSP_REG_MSG_OK) {
    c->state = HSP_REG_CLIENT_REGISTERED;
    c->expires_ms = m.expires_ms;
    c->last_error = 0;
    c->due_ms = now_ms + c->inst.ttl_ms / 3;
    return HSP_REG_OK;
  }
  if (m.type != HSP_REG_MSG_ERROR) return HSP_REG_EINVAL;
  c->last_error = m.code;
  c->state = HSP_REG_CLIENT_IDLE;
  if (m.code == HSP_REG_ENOTFOUND) c->expires_ms = 0; /* forgotten: register, not renew */
  /* ENOTFOUND: the registry forgot us, register now. EREPLAY: our clock stepped back or
   * an answer was lost; the next stamp is newer, try again now. Anything else (a refused
   * key, bad input) will not fix itself quickly: retry later, not in a loop. */
  c->due_ms = (m.code == HSP_REG_ENOTFOUND || m.code == HSP_REG_EREPLAY) ? now_ms
                                                                          : now_ms + c->retry_ms;
  return m.code;
}

void hsp_reg_client_reconnected(hsp_reg_client_t *c, uint64_t now_ms) {
  c->pending_id = 0;
  if (c->due_ms != UINT64_MAX) c->due_ms = now_ms; /* unless deregistered */
}

long hsp_reg_client_deregister(hsp_reg_client_t *c, uint64_t now_ms, uint8_t **out) {
  long n = build(c, HSP_REG_MSG_DEREGISTER, now_ms, out);
  c->state = HSP_REG_CLIENT_IDLE;
  c->due_ms = UINT64_MAX;
  c->expires_ms = 0;
  return n;
}

long hsp_reg_owner_deregister(const uint8_t registry_secret[HSP_REG_SECRET_BYTES],
                              const uint8_t instance[HSP_REG_KEY_BYTES], uint64_t ts_ms,
                              uint64_t id, uint8_t **out) {
  hsp_reg_msg_t m;
  memset(&m, 0, sizeof m);
  m.id = id;
  m.type = HSP_REG_MSG_DEREGISTER;
  memcpy(m.inst.key, instance, HSP_REG_KEY_BYTES);
  crypto_sign_ed25519_sk_to_pk(m.signer, registry_secret);
  memcpy(m.registry, m.signer, HSP_REG_KEY_BYTES);
  m.ts_ms = ts_ms;
  int err = hsp_reg_msg_sign(&m, registry_secret);
  if (err) return err;
  return hsp_reg_msg_encode_alloc(&m, out);
}
