#include "messages.h"

#include <string.h>

const char *hsp_dht_strerror(int err) {
  switch (err) {
  case HSP_DHT_OK: return "ok";
  case HSP_DHT_EMALFORMED: return "malformed message";
  case HSP_DHT_ETYPE: return "not a dht-rpc message";
  case HSP_DHT_ENOBUFS: return "buffer too small";
  case HSP_DHT_ERANGE: return "value out of range";
  case HSP_DHT_ENOMEM: return "out of memory";
  case HSP_DHT_ETIMEDOUT: return "request timed out";
  case HSP_DHT_EDESTROYED: return "request destroyed";
  case HSP_DHT_EINVAL: return "invalid argument";
  case HSP_DHT_ETOOFEW: return "too few nodes responded";
  case HSP_DHT_ENOTOKEN: return "no token received for closest node";
  case HSP_DHT_EVERSION: return "unsupported version";
  case HSP_DHT_ESIGNATURE: return "bad signature";
  default: return "unknown dht error";
  }
}

void hsp_dht_addr_to_wire(uint8_t out[HSP_CENC_IPV4_ADDR_SIZE], const hsp_ipv4_addr_t *a) {
  memcpy(out, a->host, 4);
  out[4] = (uint8_t)(a->port & 0xff);
  out[5] = (uint8_t)(a->port >> 8);
}

hsp_ipv4_addr_t hsp_dht_addr_from_wire(const uint8_t in[HSP_CENC_IPV4_ADDR_SIZE]) {
  hsp_ipv4_addr_t a;
  memcpy(a.host, in, 4);
  a.port = (uint16_t)(in[4] | (in[5] << 8));
  return a;
}

bool hsp_dht_addr_equal(const hsp_ipv4_addr_t *a, const hsp_ipv4_addr_t *b) {
  return a->port == b->port && memcmp(a->host, b->host, 4) == 0;
}

int hsp_dht_message_type(const uint8_t *buf, size_t len) {
  if (len < 2) return 0;
  if (buf[0] == HSP_DHT_TYPE_REQUEST || buf[0] == HSP_DHT_TYPE_RESPONSE) return buf[0];
  return 0;
}

static const uint8_t *opt_fixed32(hsp_cenc_t *s, bool present) {
  return present ? hsp_cenc_decode_fixed(s, 32) : NULL;
}

int hsp_dht_request_decode(hsp_dht_request_t *out, const uint8_t *buf, size_t len) {
  if (hsp_dht_message_type(buf, len) != HSP_DHT_TYPE_REQUEST) return HSP_DHT_ETYPE;
  memset(out, 0, sizeof(*out));
  hsp_cenc_t s = hsp_cenc_for_decode(buf, len);
  s.start = 1;
  uint64_t flags = hsp_cenc_decode_uint(&s);
  out->tid = hsp_cenc_decode_uint16(&s);
  out->to = hsp_cenc_decode_ipv4_addr(&s);
  out->id = opt_fixed32(&s, flags & HSP_DHT_REQ_ID);
  out->token = opt_fixed32(&s, flags & HSP_DHT_REQ_TOKEN);
  out->internal = (flags & HSP_DHT_REQ_INTERNAL) != 0;
  out->command = hsp_cenc_decode_uint(&s);
  out->target = opt_fixed32(&s, flags & HSP_DHT_REQ_TARGET);
  if (flags & HSP_DHT_REQ_VALUE) {
    out->has_value = true;
    out->value = hsp_cenc_decode_buffer(&s);
  }
  return hsp_cenc_ok(&s) ? 0 : HSP_DHT_EMALFORMED;
}

int hsp_dht_response_decode(hsp_dht_response_t *out, const uint8_t *buf, size_t len) {
  if (hsp_dht_message_type(buf, len) != HSP_DHT_TYPE_RESPONSE) return HSP_DHT_ETYPE;
  memset(out, 0, sizeof(*out));
  hsp_cenc_t s = hsp_cenc_for_decode(buf, len);
  s.start = 1;
  uint64_t flags = hsp_cenc_decode_uint(&s);
  out->tid = hsp_cenc_decode_uint16(&s);
  out->to = hsp_cenc_decode_ipv4_addr(&s);
  out->id = opt_fixed32(&s, flags & HSP_DHT_RES_ID);
  out->token = opt_fixed32(&s, flags & HSP_DHT_RES_TOKEN);
  if (flags & HSP_DHT_RES_CLOSER) {
    out->closer_count = hsp_cenc_decode_array_length(&s, HSP_CENC_IPV4_ADDR_SIZE);
    out->closer = hsp_cenc_decode_fixed(&s, out->closer_count * HSP_CENC_IPV4_ADDR_SIZE);
    if (out->closer_count == 0) out->closer = NULL;
  }
  if (flags & HSP_DHT_RES_ERROR) out->error = hsp_cenc_decode_uint(&s);
  if (flags & HSP_DHT_RES_VALUE) {
    out->has_value = true;
    out->value = hsp_cenc_decode_buffer(&s);
  }
  return hsp_cenc_ok(&s) ? 0 : HSP_DHT_EMALFORMED;
}

/* Encoders write the flags byte directly: every flag combination is < 0xfd, so the one-byte
 * form is also the varint form, exactly what the reference writes. */
static long finish(hsp_cenc_t *s) {
  if (hsp_cenc_ok(s)) return (long)s->start;
  return s->error == HSP_CENC_ETRUNCATED ? HSP_DHT_ENOBUFS : HSP_DHT_ERANGE;
}

static void request_codec(hsp_cenc_t *s, const hsp_dht_request_t *m) {
  bool sizing = s->buf == NULL;
  uint8_t flags = (uint8_t)((m->id ? HSP_DHT_REQ_ID : 0) | (m->token ? HSP_DHT_REQ_TOKEN : 0) |
                            (m->internal ? HSP_DHT_REQ_INTERNAL : 0) |
                            (m->target ? HSP_DHT_REQ_TARGET : 0) |
                            (m->has_value ? HSP_DHT_REQ_VALUE : 0));
  if (sizing) {
    hsp_cenc_preencode_fixed(s, 2 + 2 + HSP_CENC_IPV4_ADDR_SIZE);
    if (m->id) hsp_cenc_preencode_fixed(s, 32);
    if (m->token) hsp_cenc_preencode_fixed(s, 32);
    hsp_cenc_preencode_uint(s, m->command);
    if (m->target) hsp_cenc_preencode_fixed(s, 32);
    if (m->has_value) hsp_cenc_preencode_buffer(s, m->value.data, m->value.len);
    return;
  }
  hsp_cenc_encode_uint8(s, HSP_DHT_TYPE_REQUEST);
  hsp_cenc_encode_uint8(s, flags);
  hsp_cenc_encode_uint16(s, m->tid);
  hsp_cenc_encode_ipv4_addr(s, &m->to);
  if (m->id) hsp_cenc_encode_fixed(s, m->id, 32);
  if (m->token) hsp_cenc_encode_fixed(s, m->token, 32);
  hsp_cenc_encode_uint(s, m->command);
  if (m->target) hsp_cenc_encode_fixed(s, m->target, 32);
  if (m->has_value) hsp_cenc_encode_buffer(s, m->value.data, m->value.len);
}

static void response_codec(hsp_cenc_t *s, const hsp_dht_response_t *m) {
  bool sizing = s->buf == NULL;
  bool closer = m->closer_count > 0;
  uint8_t flags = (uint8_t)((m->id ? HSP_DHT_RES_ID : 0) | (m->token ? HSP_DHT_RES_TOKEN : 0) |
                            (closer ? HSP_DHT_RES_CLOSER : 0) |
                            (m->error ? HSP_DHT_RES_ERROR : 0) |
                            (m->has_value ? HSP_DHT_RES_VALUE : 0));
  if (sizing) {
    hsp_cenc_preencode_fixed(s, 2 + 2 + HSP_CENC_IPV4_ADDR_SIZE);
    if (m->id) hsp_cenc_preencode_fixed(s, 32);
    if (m->token) hsp_cenc_preencode_fixed(s, 32);
    if (closer) {
      hsp_cenc_preencode_array_length(s, m->closer_count);
      hsp_cenc_preencode_fixed(s, m->closer_count * HSP_CENC_IPV4_ADDR_SIZE);
    }
    if (m->error) hsp_cenc_preencode_uint(s, m->error);
    if (m->has_value) hsp_cenc_preencode_buffer(s, m->value.data, m->value.len);
    return;
  }
  hsp_cenc_encode_uint8(s, HSP_DHT_TYPE_RESPONSE);
  hsp_cenc_encode_uint8(s, flags);
  hsp_cenc_encode_uint16(s, m->tid);
  hsp_cenc_encode_ipv4_addr(s, &m->to);
  if (m->id) hsp_cenc_encode_fixed(s, m->id, 32);
  if (m->token) hsp_cenc_encode_fixed(s, m->token, 32);
  if (closer) {
    hsp_cenc_encode_array_length(s, m->closer_count);
    hsp_cenc_encode_fixed(s, m->closer, m->closer_count * HSP_CENC_IPV4_ADDR_SIZE);
  }
  if (m->error) hsp_cenc_encode_uint(s, m->error);
  if (m->has_value) hsp_cenc_encode_buffer(s, m->value.data, m->value.len);
}

static long checked_size(hsp_cenc_t *s) {
  if (!hsp_cenc_ok(s)) return HSP_DHT_ERANGE;
  if (s->end > HSP_DHT_MAX_DATAGRAM) return HSP_DHT_ERANGE;
  return (long)s->end;
}

long hsp_dht_request_size(const hsp_dht_request_t *m) {
  if (m->command > HSP_CENC_MAX_SAFE_INTEGER) return HSP_DHT_ERANGE;
  if (m->has_value && m->value.len > HSP_DHT_MAX_DATAGRAM) return HSP_DHT_ERANGE;
  hsp_cenc_t s = hsp_cenc_for_size();
  request_codec(&s, m);
  return checked_size(&s);
}

long hsp_dht_response_size(const hsp_dht_response_t *m) {
  if (m->error > HSP_CENC_MAX_SAFE_INTEGER) return HSP_DHT_ERANGE;
  if (m->closer_count > HSP_DHT_MAX_DATAGRAM / HSP_CENC_IPV4_ADDR_SIZE) return HSP_DHT_ERANGE;
  if (m->has_value && m->value.len > HSP_DHT_MAX_DATAGRAM) return HSP_DHT_ERANGE;
  hsp_cenc_t s = hsp_cenc_for_size();
  response_codec(&s, m);
  return checked_size(&s);
}

long hsp_dht_request_encode(uint8_t *buf, size_t len, const hsp_dht_request_t *m) {
  long need = hsp_dht_request_size(m);
  if (need < 0) return need;
  if ((size_t)need > len) return HSP_DHT_ENOBUFS;
  hsp_cenc_t s = hsp_cenc_for_encode(buf, len);
  request_codec(&s, m);
  return finish(&s);
}

long hsp_dht_response_encode(uint8_t *buf, size_t len, const hsp_dht_response_t *m) {
  long need = hsp_dht_response_size(m);
  if (need < 0) return need;
  if ((size_t)need > len) return HSP_DHT_ENOBUFS;
  hsp_cenc_t s = hsp_cenc_for_encode(buf, len);
  response_codec(&s, m);
  return finish(&s);
}
