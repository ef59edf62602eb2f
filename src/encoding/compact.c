#include "compact.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

const char *hsp_cenc_strerror(int err) {
  switch (err) {
  case HSP_CENC_OK: return "ok";
  case HSP_CENC_ETRUNCATED: return "truncated input or output buffer too small";
  case HSP_CENC_ERANGE: return "value out of range";
  case HSP_CENC_EINVAL: return "malformed value";
  default: return "unknown encoding error";
  }
}

static void fail(hsp_cenc_t *s, int err) {
  if (!s->error) s->error = err;
}

/* Reserve n bytes at start for reading or writing; NULL on error (and the state is failed). */
static uint8_t *take(hsp_cenc_t *s, size_t n) {
  if (s->error) return NULL;
  if (!s->buf) { /* a size-only state cannot be written to or read from */
    fail(s, HSP_CENC_EINVAL);
    return NULL;
  }
  if (s->start > s->end || s->end - s->start < n) {
    fail(s, HSP_CENC_ETRUNCATED);
    return NULL;
  }
  uint8_t *p = s->buf + s->start;
  s->start += n;
  return p;
}

static void grow(hsp_cenc_t *s, size_t n) {
  if (s->error) return;
  if (SIZE_MAX - s->end < n) {
    fail(s, HSP_CENC_ERANGE);
    return;
  }
  s->end += n;
}

static void put_le(hsp_cenc_t *s, uint64_t v, size_t n) {
  uint8_t *p = take(s, n);
  if (!p) return;
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(hsp_cenc_t *s, size_t n) {
  const uint8_t *p = take(s, n);
  if (!p) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static size_t uint_size(uint64_t v) {
  return v <= 0xfc ? 1 : v <= 0xffff ? 3 : v <= 0xffffffff ? 5 : 9;
}

void hsp_cenc_preencode_uint(hsp_cenc_t *s, uint64_t v) { grow(s, uint_size(v)); }

void hsp_cenc_encode_uint(hsp_cenc_t *s, uint64_t v) {
  if (v > HSP_CENC_MAX_SAFE_INTEGER) {
    fail(s, HSP_CENC_ERANGE);
    return;
  }
  if (v <= 0xfc) {
    put_le(s, v, 1);
  } else if (v <= 0xffff) {
    put_le(s, 0xfd, 1);
    put_le(s, v, 2);
  } else if (v <= 0xffffffff) {
    put_le(s, 0xfe, 1);
    put_le(s, v, 4);
  } else {
    put_le(s, 0xff, 1);
    put_le(s, v, 8);
  }
}

static uint64_t safe(hsp_cenc_t *s, uint64_t v) {
  if (v > HSP_CENC_MAX_SAFE_INTEGER) {
    fail(s, HSP_CENC_ERANGE);
    return 0;
  }
  return v;
}

uint64_t hsp_cenc_decode_uint(hsp_cenc_t *s) {
  uint64_t first = get_le(s, 1);
  uint64_t v;
  switch (first) {
  case 0xfd: v = get_le(s, 2); break;
  case 0xfe: v = get_le(s, 4); break;
  case 0xff: v = safe(s, get_le(s, 8)); break;
  default: v = first;
  }
  return s->error ? 0 : v;
}

#define FIXED_WIDTH(name, type, n)                                                              \
  void hsp_cenc_preencode_##name(hsp_cenc_t *s, type v) {                                       \
    (void)v;                                                                                    \
    grow(s, n);                                                                                 \
  }                                                                                             \
  void hsp_cenc_encode_##name(hsp_cenc_t *s, type v) { put_le(s, v, n); }                       \
  type hsp_cenc_decode_##name(hsp_cenc_t *s) { return (type)get_le(s, n); }

FIXED_WIDTH(uint8, uint8_t, 1)
FIXED_WIDTH(uint16, uint16_t, 2)
FIXED_WIDTH(uint24, uint32_t, 3)
FIXED_WIDTH(uint32, uint32_t, 4)

void hsp_cenc_preencode_uint64(hsp_cenc_t *s, uint64_t v) {
  (void)v;
  grow(s, 8);
}
void hsp_cenc_encode_uint64(hsp_cenc_t *s, uint64_t v) { put_le(s, v, 8); }
uint64_t hsp_cenc_decode_uint64(hsp_cenc_t *s) {
  uint64_t v = safe(s, get_le(s, 8));
  return s->error ? 0 : v;
}

static uint64_t zigzag(int64_t v) {
  return v < 0 ? 2 * (~(uint64_t)v) + 1 : 2 * (uint64_t)v;
}

void hsp_cenc_preencode_int(hsp_cenc_t *s, int64_t v) { hsp_cenc_preencode_uint(s, zigzag(v)); }
void hsp_cenc_encode_int(hsp_cenc_t *s, int64_t v) { hsp_cenc_encode_uint(s, zigzag(v)); }
int64_t hsp_cenc_decode_int(hsp_cenc_t *s) {
  uint64_t z = hsp_cenc_decode_uint(s);
  return (z & 1) ? -(int64_t)(z >> 1) - 1 : (int64_t)(z >> 1);
}

void hsp_cenc_preencode_bool(hsp_cenc_t *s, bool v) {
  (void)v;
  grow(s, 1);
}
void hsp_cenc_encode_bool(hsp_cenc_t *s, bool v) { put_le(s, v ? 1 : 0, 1); }
bool hsp_cenc_decode_bool(hsp_cenc_t *s) { return get_le(s, 1) == 1; }

void hsp_cenc_preencode_fixed(hsp_cenc_t *s, size_t n) { grow(s, n); }
void hsp_cenc_encode_fixed(hsp_cenc_t *s, const uint8_t *bytes, size_t n) {
  uint8_t *p = take(s, n);
  if (p && n) memcpy(p, bytes, n);
}
const uint8_t *hsp_cenc_decode_fixed(hsp_cenc_t *s, size_t n) { return take(s, n); }

void hsp_cenc_preencode_buffer(hsp_cenc_t *s, const uint8_t *bytes, size_t len) {
  (void)bytes;
  hsp_cenc_preencode_uint(s, len);
  grow(s, len);
}
void hsp_cenc_encode_buffer(hsp_cenc_t *s, const uint8_t *bytes, size_t len) {
  hsp_cenc_encode_uint(s, len);
  hsp_cenc_encode_fixed(s, bytes, len);
}
hsp_bytes_t hsp_cenc_decode_buffer(hsp_cenc_t *s) {
  uint64_t len = hsp_cenc_decode_uint(s);
  if (s->error) return (hsp_bytes_t){NULL, 0};
  if (len > s->end - s->start) {
    fail(s, HSP_CENC_ETRUNCATED);
    return (hsp_bytes_t){NULL, 0};
  }
  return (hsp_bytes_t){take(s, (size_t)len), (size_t)len};
}

void hsp_cenc_preencode_raw(hsp_cenc_t *s, size_t len) { grow(s, len); }
void hsp_cenc_encode_raw(hsp_cenc_t *s, const uint8_t *bytes, size_t len) {
  hsp_cenc_encode_fixed(s, bytes, len);
}
hsp_bytes_t hsp_cenc_decode_raw(hsp_cenc_t *s) {
  size_t len = hsp_cenc_remaining(s);
  return (hsp_bytes_t){take(s, len), len};
}

void hsp_cenc_preencode_string(hsp_cenc_t *s, const char *str, size_t len) {
  hsp_cenc_preencode_buffer(s, (const uint8_t *)str, len);
}
void hsp_cenc_encode_string(hsp_cenc_t *s, const char *str, size_t len) {
  hsp_cenc_encode_buffer(s, (const uint8_t *)str, len);
}
hsp_bytes_t hsp_cenc_decode_string(hsp_cenc_t *s) { return hsp_cenc_decode_buffer(s); }

size_t hsp_cenc_decode_array_length(hsp_cenc_t *s, size_t min_element_size) {
  uint64_t n = hsp_cenc_decode_uint(s);
  if (s->error) return 0;
  if (n > HSP_CENC_MAX_ARRAY) {
    fail(s, HSP_CENC_ERANGE);
    return 0;
  }
  if (min_element_size && n > (s->end - s->start) / min_element_size) {
    fail(s, HSP_CENC_ETRUNCATED);
    return 0;
  }
  return (size_t)n;
}

void hsp_cenc_preencode_ipv4(hsp_cenc_t *s) { grow(s, 4); }
void hsp_cenc_encode_ipv4(hsp_cenc_t *s, const uint8_t host[4]) {
  hsp_cenc_encode_fixed(s, host, 4);
}
void hsp_cenc_decode_ipv4(hsp_cenc_t *s, uint8_t host[4]) {
  const uint8_t *p = take(s, 4);
  if (p) memcpy(host, p, 4);
  else memset(host, 0, 4);
}

void hsp_cenc_preencode_ipv4_addr(hsp_cenc_t *s) { grow(s, HSP_CENC_IPV4_ADDR_SIZE); }
void hsp_cenc_encode_ipv4_addr(hsp_cenc_t *s, const hsp_ipv4_addr_t *a) {
  hsp_cenc_encode_ipv4(s, a->host);
  hsp_cenc_encode_uint16(s, a->port);
}
hsp_ipv4_addr_t hsp_cenc_decode_ipv4_addr(hsp_cenc_t *s) {
  hsp_ipv4_addr_t a;
  hsp_cenc_decode_ipv4(s, a.host);
  a.port = hsp_cenc_decode_uint16(s);
  return a;
}

void hsp_cenc_preencode_ipv6_addr(hsp_cenc_t *s) { grow(s, HSP_CENC_IPV6_ADDR_SIZE); }
void hsp_cenc_encode_ipv6_addr(hsp_cenc_t *s, const hsp_ipv6_addr_t *a) {
  hsp_cenc_encode_fixed(s, a->host, 16);
  hsp_cenc_encode_uint16(s, a->port);
}
hsp_ipv6_addr_t hsp_cenc_decode_ipv6_addr(hsp_cenc_t *s) {
  hsp_ipv6_addr_t a;
  const uint8_t *p = take(s, 16);
  if (p) memcpy(a.host, p, 16);
  else memset(a.host, 0, 16);
  a.port = hsp_cenc_decode_uint16(s);
  return a;
}

int hsp_ipv4_parse(const char *text, uint8_t host[4]) {
  return inet_pton(AF_INET, text, host) == 1 ? 0 : HSP_CENC_EINVAL;
}

int hsp_ipv6_parse(const char *text, uint8_t host[16]) {
  return inet_pton(AF_INET6, text, host) == 1 ? 0 : HSP_CENC_EINVAL;
}

void hsp_ipv4_format(const uint8_t host[4], char out[HSP_CENC_IP_STRLEN]) {
  snprintf(out, HSP_CENC_IP_STRLEN, "%u.%u.%u.%u", host[0], host[1], host[2], host[3]);
}

void hsp_ipv6_format(const uint8_t host[16], char out[HSP_CENC_IP_STRLEN]) {
  snprintf(out, HSP_CENC_IP_STRLEN, "%x:%x:%x:%x:%x:%x:%x:%x", host[0] << 8 | host[1],
           host[2] << 8 | host[3], host[4] << 8 | host[5], host[6] << 8 | host[7],
           host[8] << 8 | host[9], host[10] << 8 | host[11], host[12] << 8 | host[13],
           host[14] << 8 | host[15]);
}
