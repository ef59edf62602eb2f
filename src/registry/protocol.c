#include "protocol.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "compact.h"

static const char REQ_DOMAIN[] = "hsp-registry-req-v1";

/* One walker serves preencode, encode and the signed-payload encoding, so the three can
 * never disagree about the layout. `upto_sig` stops before the signature and skips the
 * version and id (the signed part starts at the type). */
typedef struct walker {
  hsp_cenc_t s;
  bool pre;
} walker_t;

static void w_uint(walker_t *w, uint64_t v) {
  w->pre ? hsp_cenc_preencode_uint(&w->s, v) : hsp_cenc_encode_uint(&w->s, v);
}
static void w_u8(walker_t *w, uint8_t v) {
  w->pre ? hsp_cenc_preencode_uint8(&w->s, v) : hsp_cenc_encode_uint8(&w->s, v);
}
static void w_bool(walker_t *w, bool v) {
  w->pre ? hsp_cenc_preencode_bool(&w->s, v) : hsp_cenc_encode_bool(&w->s, v);
}
static void w_int(walker_t *w, int64_t v) {
  w->pre ? hsp_cenc_preencode_int(&w->s, v) : hsp_cenc_encode_int(&w->s, v);
}
static void w_fixed(walker_t *w, const uint8_t *p, size_t n) {
  w->pre ? hsp_cenc_preencode_fixed(&w->s, n) : hsp_cenc_encode_fixed(&w->s, p, n);
}
static void w_str(walker_t *w, const char *str) {
  size_t n = strlen(str);
  w->pre ? hsp_cenc_preencode_string(&w->s, str, n) : hsp_cenc_encode_string(&w->s, str, n);
}
static void w_buf(walker_t *w, const uint8_t *p, size_t n) {
  w->pre ? hsp_cenc_preencode_buffer(&w->s, p, n) : hsp_cenc_encode_buffer(&w->s, p, n);
}

static void w_instance(walker_t *w, const hsp_reg_instance_t *in) {
  w_fixed(w, in->key, 32);
  w_str(w, in->name);
  w_str(w, in->version);
  w_str(w, in->tags);
  w_uint(w, in->ttl_ms);
  w_uint(w, in->registered_ms);
  w_uint(w, in->renewed_ms);
  w_uint(w, in->expires_ms);
  w_uint(w, in->reg_seq);
}

static void walk(walker_t *w, const hsp_reg_msg_t *m, bool signed_part) {
  if (!signed_part) {
    w_u8(w, HSP_REG_PROTOCOL_VERSION);
    w_uint(w, m->id);
  }
  w_u8(w, m->type);
  switch (m->type) {
  case HSP_REG_MSG_REGISTER:
    w_fixed(w, m->inst.key, 32);
    w_str(w, m->inst.name);
    w_str(w, m->inst.version);
    w_str(w, m->inst.tags);
    w_uint(w, m->inst.ttl_ms);
    break;
  case HSP_REG_MSG_RENEW:
    w_fixed(w, m->inst.key, 32);
    w_uint(w, m->inst.ttl_ms);
    break;
  case HSP_REG_MSG_DEREGISTER:
    w_fixed(w, m->inst.key, 32);
    w_fixed(w, m->signer, 32);
    break;
  case HSP_REG_MSG_QUERY:
    w_str(w, m->name);
    w_str(w, m->range);
    w_uint(w, m->limit);
    break;
  case HSP_REG_MSG_LIST:
  case HSP_REG_MSG_UNWATCH:
  case HSP_REG_MSG_SNAPSHOT: break;
  case HSP_REG_MSG_WATCH: w_uint(w, m->seq); break;
  case HSP_REG_MSG_SYNC:
    w_uint(w, m->seq);
    w_uint(w, m->limit);
    break;
  case HSP_REG_MSG_OK:
    w_uint(w, m->seq);
    w_uint(w, m->expires_ms);
    break;
  case HSP_REG_MSG_ERROR:
    w_int(w, m->code);
    w_str(w, m->message);
    break;
  case HSP_REG_MSG_INSTANCES:
    w_uint(w, m->ninstances);
    for (size_t i = 0; i < m->ninstances; i++) w_instance(w, &m->instances[i]);
    break;
  case HSP_REG_MSG_ENTRIES:
    w_uint(w, m->seq);
    w_bool(w, m->more);
    w_uint(w, m->nrecords);
    for (size_t i = 0; i < m->nrecords; i++) {
      w_buf(w, m->records[i].body, m->records[i].body_len);
      w_fixed(w, m->records[i].sig, 64);
    }
    break;
  case HSP_REG_MSG_SNAPSHOT_DATA:
    w_uint(w, m->seq);
    w_fixed(w, m->hash, 32);
    w_uint(w, m->nsnapshot);
    if (m->snap_src) {
      for (size_t i = 0; i < m->nsnapshot; i++) w_instance(w, &m->snap_src[i]);
    } else if (w->pre) {
      hsp_cenc_preencode_raw(&w->s, m->snapshot.len);
    } else {
      hsp_cenc_encode_raw(&w->s, m->snapshot.data, m->snapshot.len);
    }
    w_fixed(w, m->sig, 64);
    break;
  default: w->s.error = HSP_CENC_EINVAL; return;
  }
  if (hsp_reg_msg_is_signed(m->type)) {
    w_fixed(w, m->registry, 32);
    w_uint(w, m->ts_ms);
    if (!signed_part) w_fixed(w, m->sig, 64);
  }
}

static size_t msg_max(uint8_t type) {
  return type == HSP_REG_MSG_SNAPSHOT_DATA ? HSP_REG_SNAPSHOT_MAX : HSP_REG_MSG_MAX;
}

size_t hsp_reg_msg_encoded_size(const hsp_reg_msg_t *m) {
  walker_t w = {hsp_cenc_for_size(), true};
  walk(&w, m, false);
  return hsp_cenc_ok(&w.s) ? w.s.end : 0;
}

long hsp_reg_msg_encode(const hsp_reg_msg_t *m, uint8_t *out, size_t cap) {
  size_t n = hsp_reg_msg_encoded_size(m);
  if (n == 0 || n > cap || n > msg_max(m->type)) return HSP_REG_EINVAL;
  walker_t w = {hsp_cenc_for_encode(out, n), false};
  walk(&w, m, false);
  return hsp_cenc_ok(&w.s) ? (long)n : HSP_REG_EINVAL;
}

long hsp_reg_msg_encode_alloc(const hsp_reg_msg_t *m, uint8_t **out) {
  *out = NULL;
  size_t n = hsp_reg_msg_encoded_size(m);
  if (n == 0 || n > msg_max(m->type)) return HSP_REG_EINVAL;
  uint8_t *buf = malloc(n);
  if (!buf) return HSP_REG_ENOMEM;
  long r = hsp_reg_msg_encode(m, buf, n);
  if (r < 0) free(buf);
  else *out = buf;
  return r;
}

/* Signed payload = domain || walk(signed_part). Fields are bounded, so it fits. */
static long signed_payload(const hsp_reg_msg_t *m, uint8_t *out, size_t cap) {
  walker_t w = {hsp_cenc_for_size(), true};
  walk(&w, m, true);
  size_t d = sizeof REQ_DOMAIN - 1;
  if (!hsp_cenc_ok(&w.s) || w.s.end + d > cap) return HSP_REG_EINVAL;
  memcpy(out, REQ_DOMAIN, d);
  size_t n = w.s.end;
  w = (walker_t){hsp_cenc_for_encode(out + d, n), false};
  walk(&w, m, true);
  return hsp_cenc_ok(&w.s) ? (long)(n + d) : HSP_REG_EINVAL;
}

#define SIGNED_MAX 2048

int hsp_reg_msg_sign(hsp_reg_msg_t *m, const uint8_t secret[HSP_REG_SECRET_BYTES]) {
  if (!hsp_reg_msg_is_signed(m->type)) return HSP_REG_EINVAL;
  uint8_t buf[SIGNED_MAX];
  long n = signed_payload(m, buf, sizeof buf);
  if (n < 0) return (int)n;
  crypto_sign_detached(m->sig, NULL, buf, (unsigned long long)n, secret);
  return HSP_REG_OK;
}

bool hsp_reg_msg_verify(const hsp_reg_msg_t *m, const uint8_t pub[HSP_REG_KEY_BYTES]) {
  if (!hsp_reg_msg_is_signed(m->type)) return false;
  uint8_t buf[SIGNED_MAX];
  long n = signed_payload(m, buf, sizeof buf);
  if (n < 0) return false;
  return crypto_sign_verify_detached(m->sig, buf, (unsigned long long)n, pub) == 0;
}

void hsp_reg_msg_free(hsp_reg_msg_t *m) {
  free(m->instances);
  free(m->records);
  m->instances = NULL;
  m->records = NULL;
  m->ninstances = m->nrecords = 0;
}

/* ---- decoding ---- */

static bool get_str(hsp_cenc_t *s, char *dst, size_t cap) {
  hsp_bytes_t b = hsp_cenc_decode_string(s);
  if (!hsp_cenc_ok(s) || b.len >= cap || (b.len && memchr(b.data, '\0', b.len))) return false;
  if (b.len) memcpy(dst, b.data, b.len);
  dst[b.len] = '\0';
  return true;
}

static bool get_fixed(hsp_cenc_t *s, uint8_t *dst, size_t n) {
  const uint8_t *p = hsp_cenc_decode_fixed(s, n);
  if (!p) return false;
  memcpy(dst, p, n);
  return true;
}

static bool get_ttl(hsp_cenc_t *s, uint32_t *ttl) {
  uint64_t v = hsp_cenc_decode_uint(s);
  if (!hsp_cenc_ok(s) || v < HSP_REG_TTL_MIN_MS || v > HSP_REG_TTL_MAX_MS) return false;
  *ttl = (uint32_t)v;
  return true;
}

static bool get_instance(hsp_cenc_t *s, hsp_reg_instance_t *in, bool full) {
  if (!get_fixed(s, in->key, 32) || !get_str(s, in->name, sizeof in->name) ||
      !get_str(s, in->version, sizeof in->version) || !get_str(s, in->tags, sizeof in->tags) ||
      !get_ttl(s, &in->ttl_ms))
    return false;
  if (!hsp_reg_name_valid(in->name, strlen(in->name)) ||
      !hsp_reg_version_valid(in->version, strlen(in->version)) ||
      !hsp_reg_tags_valid(in->tags, strlen(in->tags)))
    return false;
  if (full) {
    in->registered_ms = hsp_cenc_decode_uint(s);
    in->renewed_ms = hsp_cenc_decode_uint(s);
    in->expires_ms = hsp_cenc_decode_uint(s);
    in->reg_seq = hsp_cenc_decode_uint(s);
  }
  return hsp_cenc_ok(s);
}

static int decode_body(hsp_reg_msg_t *m, hsp_cenc_t *s) {
  switch (m->type) {
  case HSP_REG_MSG_REGISTER:
    if (!get_instance(s, &m->inst, false)) return HSP_REG_EINVAL;
    break;
  case HSP_REG_MSG_RENEW:
    if (!get_fixed(s, m->inst.key, 32) || !get_ttl(s, &m->inst.ttl_ms)) return HSP_REG_EINVAL;
    break;
  case HSP_REG_MSG_DEREGISTER:
    if (!get_fixed(s, m->inst.key, 32) || !get_fixed(s, m->signer, 32)) return HSP_REG_EINVAL;
    break;
  case HSP_REG_MSG_QUERY: {
    if (!get_str(s, m->name, sizeof m->name) || !get_str(s, m->range, sizeof m->range))
      return HSP_REG_EINVAL;
    m->limit = hsp_cenc_decode_uint(s);
    if (!hsp_reg_name_valid(m->name, strlen(m->name))) return HSP_REG_EINVAL;
    hsp_semver_range_t r;
    if (hsp_semver_range_parse(&r, m->range, strlen(m->range))) return HSP_REG_ERANGE;
    hsp_semver_range_free(&r);
    break;
  }
  case HSP_REG_MSG_LIST:
  case HSP_REG_MSG_UNWATCH:
  case HSP_REG_MSG_SNAPSHOT: break;
  case HSP_REG_MSG_WATCH: m->seq = hsp_cenc_decode_uint(s); break;
  case HSP_REG_MSG_SYNC:
    m->seq = hsp_cenc_decode_uint(s);
    m->limit = hsp_cenc_decode_uint(s);
    break;
  case HSP_REG_MSG_OK:
    m->seq = hsp_cenc_decode_uint(s);
    m->expires_ms = hsp_cenc_decode_uint(s);
    break;
  case HSP_REG_MSG_ERROR: {
    int64_t c = hsp_cenc_decode_int(s);
    if (!hsp_cenc_ok(s) || c > 0 || c < -1000) return HSP_REG_EINVAL;
    m->code = (int32_t)c;
    if (!get_str(s, m->message, sizeof m->message)) return HSP_REG_EINVAL;
    break;
  }
  case HSP_REG_MSG_INSTANCES: {
    /* an instance is at least 32 + 4 + 5 + ... bytes; 40 bounds the count by the input */
    size_t n = hsp_cenc_decode_array_length(s, 40);
    if (!hsp_cenc_ok(s) || n > HSP_REG_INSTANCES_MAX) return HSP_REG_EINVAL;
    if (n) {
      m->instances = calloc(n, sizeof *m->instances);
      if (!m->instances) return HSP_REG_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
      if (!get_instance(s, &m->instances[i], true)) return HSP_REG_EINVAL;
      m->ninstances++;
    }
    break;
  }
  case HSP_REG_MSG_ENTRIES: {
    m->seq = hsp_cenc_decode_uint(s);
    uint8_t more = hsp_cenc_decode_uint8(s);
    if (hsp_cenc_ok(s) && more > 1) return HSP_REG_EINVAL;
    m->more = more == 1;
    size_t n = hsp_cenc_decode_array_length(s, 1 + 64);
    if (!hsp_cenc_ok(s) || n > HSP_REG_BATCH_MAX) return HSP_REG_EINVAL;
    if (n) {
      m->records = calloc(n, sizeof *m->records);
      if (!m->records) return HSP_REG_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
      hsp_bytes_t body = hsp_cenc_decode_buffer(s);
      const uint8_t *sig = hsp_cenc_decode_fixed(s, 64);
      if (!hsp_cenc_ok(s) || body.len == 0 || body.len > HSP_REG_ENTRY_MAX) return HSP_REG_EINVAL;
      /* the sequence number is inside the body: read it for the record header */
      hsp_cenc_t b = hsp_cenc_for_decode(body.data, body.len);
      hsp_cenc_decode_uint8(&b);
      uint64_t seq = hsp_cenc_decode_uint(&b);
      if (!hsp_cenc_ok(&b)) return HSP_REG_EINVAL;
      m->records[i] = (hsp_store_record_t){seq, body.data, body.len, NULL, sig};
      m->nrecords++;
    }
    break;
  }
  case HSP_REG_MSG_SNAPSHOT_DATA: {
    m->seq = hsp_cenc_decode_uint(s);
    if (!get_fixed(s, m->hash, 32)) return HSP_REG_EINVAL;
    size_t n = hsp_cenc_decode_array_length(s, 40);
    if (!hsp_cenc_ok(s)) return HSP_REG_EINVAL;
    size_t start = s->start;
    hsp_reg_instance_t tmp;
    for (size_t i = 0; i < n; i++) {
      memset(&tmp, 0, sizeof tmp);
      if (!get_instance(s, &tmp, true)) return HSP_REG_EINVAL;
    }
    m->snapshot = (hsp_bytes_t){s->buf + start, s->start - start};
    m->nsnapshot = n;
    if (!get_fixed(s, m->sig, 64)) return HSP_REG_EINVAL;
    break;
  }
  default: return HSP_REG_EINVAL;
  }
  if (hsp_reg_msg_is_signed(m->type)) {
    if (!get_fixed(s, m->registry, 32)) return HSP_REG_EINVAL;
    m->ts_ms = hsp_cenc_decode_uint(s);
    if (!get_fixed(s, m->sig, 64)) return HSP_REG_EINVAL;
  }
  return hsp_cenc_ok(s) ? HSP_REG_OK : HSP_REG_EINVAL;
}

int hsp_reg_msg_decode(hsp_reg_msg_t *m, const uint8_t *buf, size_t len) {
  memset(m, 0, sizeof *m);
  if (len > HSP_REG_SNAPSHOT_MAX) return HSP_REG_EINVAL;
  hsp_cenc_t s = hsp_cenc_for_decode(buf, len);
  uint8_t version = hsp_cenc_decode_uint8(&s);
  if (hsp_cenc_ok(&s) && version != HSP_REG_PROTOCOL_VERSION) return HSP_REG_EVERSION;
  m->id = hsp_cenc_decode_uint(&s);
  m->type = hsp_cenc_decode_uint8(&s);
  if (!hsp_cenc_ok(&s) || len > msg_max(m->type)) return HSP_REG_EINVAL;
  int err = decode_body(m, &s);
  if (!err && hsp_cenc_remaining(&s) != 0) err = HSP_REG_EINVAL;
  if (err) hsp_reg_msg_free(m);
  return err;
}

/* ---- snapshots ---- */

static const char SNAP_DOMAIN[] = "hsp-registry-snap-v1";

/* Digest over the snapshot's encoded content, instance by instance, whether the message
 * holds source instances (encoding side) or the encoded bytes (decoding side). */
static void snapshot_digest(const hsp_reg_msg_t *m, uint8_t out[32]) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  uint8_t head[64];
  hsp_cenc_t s = hsp_cenc_for_encode(head, sizeof head);
  hsp_cenc_encode_uint(&s, m->seq);
  hsp_cenc_encode_fixed(&s, m->hash, 32);
  hsp_cenc_encode_uint(&s, m->nsnapshot);
  crypto_generichash_update(&st, head, s.start);
  if (m->snap_src) {
    uint8_t buf[HSP_REG_ENTRY_MAX];
    for (size_t i = 0; i < m->nsnapshot; i++) {
      walker_t w = {hsp_cenc_for_encode(buf, sizeof buf), false};
      w_instance(&w, &m->snap_src[i]);
      crypto_generichash_update(&st, buf, w.s.start);
    }
  } else if (m->snapshot.len) {
    crypto_generichash_update(&st, m->snapshot.data, m->snapshot.len);
  }
  crypto_generichash_final(&st, out, 32);
}

void hsp_reg_snapshot_sign(hsp_reg_msg_t *m, const uint8_t secret[HSP_REG_SECRET_BYTES]) {
  uint8_t msg[sizeof SNAP_DOMAIN - 1 + 32];
  memcpy(msg, SNAP_DOMAIN, sizeof SNAP_DOMAIN - 1);
  snapshot_digest(m, msg + sizeof SNAP_DOMAIN - 1);
  crypto_sign_detached(m->sig, NULL, msg, sizeof msg, secret);
}

bool hsp_reg_snapshot_verify(const hsp_reg_msg_t *m, const uint8_t pub[HSP_REG_KEY_BYTES]) {
  if (m->type != HSP_REG_MSG_SNAPSHOT_DATA) return false;
  uint8_t msg[sizeof SNAP_DOMAIN - 1 + 32];
  memcpy(msg, SNAP_DOMAIN, sizeof SNAP_DOMAIN - 1);
  snapshot_digest(m, msg + sizeof SNAP_DOMAIN - 1);
  return crypto_sign_verify_detached(m->sig, msg, sizeof msg, pub) == 0;
}

void hsp_reg_snapshot_iter_init(hsp_reg_snapshot_iter_t *it, const hsp_reg_msg_t *m) {
  it->s = hsp_cenc_for_decode(m->snapshot.data, m->snapshot.len);
  it->left = m->nsnapshot;
}

int hsp_reg_snapshot_next(hsp_reg_snapshot_iter_t *it, hsp_reg_instance_t *out) {
  if (it->left == 0) return 0;
  memset(out, 0, sizeof *out);
  if (!get_instance(&it->s, out, true)) return HSP_REG_EINVAL;
  it->left--;
  return 1;
}
