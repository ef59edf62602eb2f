#include "registry.h"

#include <sodium.h>
#include <string.h>

#include "compact.h"

#define LOG_FORMAT 1
static const char SIG_DOMAIN[] = "hsp-registry-log-v1";

const char *hsp_reg_strerror(int err) {
  switch (err) {
  case HSP_REG_OK: return "ok";
  case HSP_REG_EINVAL: return "invalid argument or malformed message";
  case HSP_REG_ENOMEM: return "out of memory";
  case HSP_REG_EDB: return "database error";
  case HSP_REG_EKEY: return "store belongs to another registry key";
  case HSP_REG_ESIG: return "bad signature";
  case HSP_REG_ECHAIN: return "hash chain or sequence broken";
  case HSP_REG_EREPLAY: return "stale or replayed request";
  case HSP_REG_ENOTFOUND: return "no such instance";
  case HSP_REG_EDENIED: return "not allowed";
  case HSP_REG_EVERSION: return "unsupported format version";
  case HSP_REG_ERANGE: return "invalid version range";
  default: return "unknown registry error";
  }
}

bool hsp_reg_name_valid(const char *name, size_t len) {
  if (len == 0 || len > HSP_REG_NAME_MAX) return false;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '/' || (c == '@' && i == 0);
    if (!ok) return false;
  }
  if (name[0] == '@') { /* npm-style scope: "@scope/name" */
    const char *slash = memchr(name, '/', len);
    if (!slash || slash == name + 1 || slash == name + len - 1) return false;
  }
  return true;
}

bool hsp_reg_version_valid(const char *version, size_t len) {
  hsp_semver_t v;
  if (len == 0 || len > HSP_REG_VERSION_MAX) return false;
  /* exact text only: surrounding whitespace would make two spellings of one version */
  if (version[0] == ' ' || version[len - 1] == ' ' || memchr(version, '\0', len)) return false;
  return hsp_semver_parse(&v, version, len) == 0 && memchr(version, '\t', len) == NULL;
}

bool hsp_reg_tags_valid(const char *tags, size_t len) {
  return len <= HSP_REG_TAGS_MAX && memchr(tags, '\0', len) == NULL;
}

int hsp_reg_role_split(const char *role, char name[HSP_REG_NAME_MAX + 1],
                       char spec[HSP_SEMVER_RANGE_MAX_LEN + 1]) {
  size_t len = strlen(role);
  const char *at = len > 1 ? memchr(role + 1, '@', len - 1) : NULL;
  /* the last '@' after the first character: names hold at most one, leading */
  for (const char *p = at; p; p = memchr(p + 1, '@', len - (size_t)(p + 1 - role))) at = p;
  size_t nl = at ? (size_t)(at - role) : len;
  size_t sl = at ? len - nl - 1 : 0;
  if (!hsp_reg_name_valid(role, nl) || sl > HSP_SEMVER_RANGE_MAX_LEN) return HSP_REG_EINVAL;
  memcpy(name, role, nl);
  name[nl] = '\0';
  if (sl) memcpy(spec, at + 1, sl);
  spec[sl] = '\0';
  return HSP_REG_OK;
}

static void put_body(hsp_cenc_t *s, const hsp_reg_entry_t *e, bool pre) {
  const hsp_reg_instance_t *in = &e->inst;
#define F(fn, ...) (pre ? hsp_cenc_preencode_##fn(s, __VA_ARGS__) : hsp_cenc_encode_##fn(s, __VA_ARGS__))
  F(uint8, LOG_FORMAT);
  F(uint, e->seq);
  F(uint8, e->type);
  F(uint, e->time_ms);
  if (pre) hsp_cenc_preencode_fixed(s, 32);
  else hsp_cenc_encode_fixed(s, in->key, 32);
  switch (e->type) {
  case HSP_REG_REGISTER:
    F(string, in->name, strlen(in->name));
    F(string, in->version, strlen(in->version));
    F(string, in->tags, strlen(in->tags));
    F(uint, in->ttl_ms);
    F(uint, in->expires_ms);
    break;
  case HSP_REG_RENEW:
    F(uint, in->ttl_ms);
    F(uint, in->expires_ms);
    break;
  case HSP_REG_DEREGISTER: F(uint8, e->by); break;
  default: break;
  }
#undef F
}

int hsp_reg_entry_encode(const hsp_reg_entry_t *e, uint8_t *out, size_t cap) {
  if (e->type < HSP_REG_REGISTER || e->type > HSP_REG_EXPIRE) return HSP_REG_EINVAL;
  hsp_cenc_t s = hsp_cenc_for_size();
  put_body(&s, e, true);
  if (!hsp_cenc_ok(&s) || s.end > cap) return HSP_REG_EINVAL;
  size_t n = s.end;
  s = hsp_cenc_for_encode(out, n);
  put_body(&s, e, false);
  return hsp_cenc_ok(&s) ? (int)n : HSP_REG_EINVAL;
}

/* Copies a decoded string into a fixed field; false if it does not fit. */
static bool take_str(char *dst, size_t cap, hsp_bytes_t b) {
  if (b.len >= cap) return false;
  if (b.len) memcpy(dst, b.data, b.len);
  dst[b.len] = '\0';
  return true;
}

int hsp_reg_entry_decode(hsp_reg_entry_t *e, const uint8_t *body, size_t len) {
  memset(e, 0, sizeof *e);
  if (len > HSP_REG_ENTRY_MAX) return HSP_REG_EINVAL;
  hsp_cenc_t s = hsp_cenc_for_decode(body, len);
  uint8_t fmt = hsp_cenc_decode_uint8(&s);
  if (hsp_cenc_ok(&s) && fmt != LOG_FORMAT) return HSP_REG_EVERSION;
  e->seq = hsp_cenc_decode_uint(&s);
  e->type = hsp_cenc_decode_uint8(&s);
  e->time_ms = hsp_cenc_decode_uint(&s);
  const uint8_t *key = hsp_cenc_decode_fixed(&s, 32);
  if (!hsp_cenc_ok(&s) || e->seq == 0) return HSP_REG_EINVAL;
  memcpy(e->inst.key, key, 32);
  hsp_reg_instance_t *in = &e->inst;
  uint64_t ttl = 0;
  switch (e->type) {
  case HSP_REG_REGISTER: {
    hsp_bytes_t name = hsp_cenc_decode_string(&s);
    hsp_bytes_t ver = hsp_cenc_decode_string(&s);
    hsp_bytes_t tags = hsp_cenc_decode_string(&s);
    ttl = hsp_cenc_decode_uint(&s);
    in->expires_ms = hsp_cenc_decode_uint(&s);
    if (!hsp_cenc_ok(&s)) return HSP_REG_EINVAL;
    if (!hsp_reg_name_valid((const char *)name.data, name.len) ||
        !hsp_reg_version_valid((const char *)ver.data, ver.len) ||
        !hsp_reg_tags_valid((const char *)tags.data, tags.len) ||
        !take_str(in->name, sizeof in->name, name) ||
        !take_str(in->version, sizeof in->version, ver) ||
        !take_str(in->tags, sizeof in->tags, tags))
      return HSP_REG_EINVAL;
    in->registered_ms = in->renewed_ms = e->time_ms;
    in->reg_seq = e->seq;
    break;
  }
  case HSP_REG_RENEW:
    ttl = hsp_cenc_decode_uint(&s);
    in->expires_ms = hsp_cenc_decode_uint(&s);
    in->renewed_ms = e->time_ms;
    break;
  case HSP_REG_DEREGISTER:
    e->by = hsp_cenc_decode_uint8(&s);
    if (hsp_cenc_ok(&s) && e->by > 1) return HSP_REG_EINVAL;
    break;
  case HSP_REG_EXPIRE: break;
  default: return HSP_REG_EINVAL;
  }
  if (!hsp_cenc_ok(&s) || hsp_cenc_remaining(&s) != 0) return HSP_REG_EINVAL;
  if (e->type == HSP_REG_REGISTER || e->type == HSP_REG_RENEW) {
    if (ttl < HSP_REG_TTL_MIN_MS || ttl > HSP_REG_TTL_MAX_MS) return HSP_REG_EINVAL;
    in->ttl_ms = (uint32_t)ttl;
  }
  return HSP_REG_OK;
}

void hsp_reg_entry_hash(uint8_t out[HSP_REG_HASH_BYTES], const uint8_t prev[HSP_REG_HASH_BYTES],
                        const uint8_t *body, size_t len) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, HSP_REG_HASH_BYTES);
  crypto_generichash_update(&st, prev, HSP_REG_HASH_BYTES);
  crypto_generichash_update(&st, body, len);
  crypto_generichash_final(&st, out, HSP_REG_HASH_BYTES);
}

static void sig_message(uint8_t *msg, const uint8_t hash[HSP_REG_HASH_BYTES]) {
  memcpy(msg, SIG_DOMAIN, sizeof SIG_DOMAIN - 1);
  memcpy(msg + sizeof SIG_DOMAIN - 1, hash, HSP_REG_HASH_BYTES);
}

void hsp_reg_entry_sign(uint8_t sig[HSP_REG_SIG_BYTES], const uint8_t hash[HSP_REG_HASH_BYTES],
                        const uint8_t secret[HSP_REG_SECRET_BYTES]) {
  uint8_t msg[sizeof SIG_DOMAIN - 1 + HSP_REG_HASH_BYTES];
  sig_message(msg, hash);
  crypto_sign_detached(sig, NULL, msg, sizeof msg, secret);
}

bool hsp_reg_entry_verify(const uint8_t sig[HSP_REG_SIG_BYTES],
                          const uint8_t hash[HSP_REG_HASH_BYTES],
                          const uint8_t pub[HSP_REG_KEY_BYTES]) {
  uint8_t msg[sizeof SIG_DOMAIN - 1 + HSP_REG_HASH_BYTES];
  sig_message(msg, hash);
  return crypto_sign_verify_detached(sig, msg, sizeof msg, pub) == 0;
}

int hsp_reg_instance_order(const hsp_reg_instance_t *a, const hsp_reg_instance_t *b) {
  hsp_semver_t va, vb;
  int c = 0;
  if (hsp_semver_parse(&va, a->version, strlen(a->version)) == 0 &&
      hsp_semver_parse(&vb, b->version, strlen(b->version)) == 0)
    c = -hsp_semver_compare(&va, &vb);
  if (c) return c;
  return a->reg_seq < b->reg_seq ? -1 : a->reg_seq > b->reg_seq;
}
