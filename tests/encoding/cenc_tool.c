/*
 * Helper for the differential test against the JS compact-encoding (tests/interop/
 * encoding_differential.js). Values are exchanged as text "reprs" both sides can print:
 * integers in decimal, bytes and strings in hex, addresses as host:port, arrays as [a,b].
 *
 *   cenc_tool check      stdin: "<type> <hex>" lines; prints "<repr> <re-encoded hex>" or "ERR"
 *   cenc_tool gen N SEED prints "<type> <repr> <hex>" for N random values of every type
 */
#include "compact.h"
#include "hex.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_UINT, K_UINT8, K_UINT16, K_UINT24, K_UINT32, K_UINT64, K_INT, K_BOOL, K_FIXED32,
            K_FIXED64, K_BUFFER, K_RAW, K_STRING, K_IPV4, K_IPV4ADDR, K_IPV6ADDR, K_COUNT };

static const char *const kind_names[K_COUNT] = {
    "uint", "uint8", "uint16", "uint24", "uint32", "uint64", "int", "bool", "fixed32",
    "fixed64", "buffer", "raw", "string", "ipv4", "ipv4Address", "ipv6Address"};

/* Element kinds that the JS side also wraps in c.array(); raw cannot be an element. */
static const enum kind array_kinds[] = {K_UINT, K_UINT16, K_UINT32, K_INT, K_BOOL, K_FIXED32,
                                        K_BUFFER, K_STRING, K_IPV4ADDR, K_IPV6ADDR};

#define MAX_BYTES 4096
#define MAX_ITEMS 64

typedef struct value {
  uint64_t u;
  int64_t i;
  uint8_t bytes[MAX_BYTES];
  size_t len;
  hsp_ipv4_addr_t a4;
  hsp_ipv6_addr_t a6;
} value_t;

typedef struct out {
  char *p;
  size_t cap, len;
} out_t;

static void emit(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void emit(out_t *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= o->cap - o->len) {
    fprintf(stderr, "cenc_tool: output line too long\n");
    exit(3);
  }
  o->len += (size_t)n;
}

static void emit_hex(out_t *o, const uint8_t *b, size_t n) {
  if (o->cap - o->len <= 2 * n) {
    fprintf(stderr, "cenc_tool: output line too long\n");
    exit(3);
  }
  hsp_hex_encode(o->p + o->len, b, n);
  o->len += 2 * n;
}

static void decode_one(hsp_cenc_t *s, enum kind k, value_t *v) {
  const uint8_t *p;
  hsp_bytes_t b;
  switch (k) {
  case K_UINT: v->u = hsp_cenc_decode_uint(s); break;
  case K_UINT8: v->u = hsp_cenc_decode_uint8(s); break;
  case K_UINT16: v->u = hsp_cenc_decode_uint16(s); break;
  case K_UINT24: v->u = hsp_cenc_decode_uint24(s); break;
  case K_UINT32: v->u = hsp_cenc_decode_uint32(s); break;
  case K_UINT64: v->u = hsp_cenc_decode_uint64(s); break;
  case K_INT: v->i = hsp_cenc_decode_int(s); break;
  case K_BOOL: v->u = hsp_cenc_decode_bool(s); break;
  case K_FIXED32:
  case K_FIXED64:
    v->len = k == K_FIXED32 ? 32 : 64;
    p = hsp_cenc_decode_fixed(s, v->len);
    if (p) memcpy(v->bytes, p, v->len);
    break;
  case K_BUFFER:
  case K_STRING:
  case K_RAW:
    b = k == K_RAW ? hsp_cenc_decode_raw(s) : hsp_cenc_decode_buffer(s);
    if (b.len > MAX_BYTES) s->error = HSP_CENC_ERANGE;
    v->len = s->error ? 0 : b.len;
    if (v->len) memcpy(v->bytes, b.data, v->len);
    break;
  case K_IPV4: hsp_cenc_decode_ipv4(s, v->a4.host); break;
  case K_IPV4ADDR: v->a4 = hsp_cenc_decode_ipv4_addr(s); break;
  case K_IPV6ADDR: v->a6 = hsp_cenc_decode_ipv6_addr(s); break;
  case K_COUNT: abort();
  }
}

/* One function serves preencode and encode: the state tells which (buf NULL = sizing). */
static void encode_one(hsp_cenc_t *s, enum kind k, const value_t *v) {
  bool sizing = s->buf == NULL;
  switch (k) {
  case K_UINT: sizing ? hsp_cenc_preencode_uint(s, v->u) : hsp_cenc_encode_uint(s, v->u); break;
  case K_UINT8: sizing ? hsp_cenc_preencode_uint8(s, 0) : hsp_cenc_encode_uint8(s, (uint8_t)v->u); break;
  case K_UINT16: sizing ? hsp_cenc_preencode_uint16(s, 0) : hsp_cenc_encode_uint16(s, (uint16_t)v->u); break;
  case K_UINT24: sizing ? hsp_cenc_preencode_uint24(s, 0) : hsp_cenc_encode_uint24(s, (uint32_t)v->u); break;
  case K_UINT32: sizing ? hsp_cenc_preencode_uint32(s, 0) : hsp_cenc_encode_uint32(s, (uint32_t)v->u); break;
  case K_UINT64: sizing ? hsp_cenc_preencode_uint64(s, 0) : hsp_cenc_encode_uint64(s, v->u); break;
  case K_INT: sizing ? hsp_cenc_preencode_int(s, v->i) : hsp_cenc_encode_int(s, v->i); break;
  case K_BOOL: sizing ? hsp_cenc_preencode_bool(s, 0) : hsp_cenc_encode_bool(s, v->u != 0); break;
  case K_FIXED32:
  case K_FIXED64:
  case K_RAW:
    sizing ? hsp_cenc_preencode_fixed(s, v->len) : hsp_cenc_encode_fixed(s, v->bytes, v->len);
    break;
  case K_BUFFER:
  case K_STRING:
    sizing ? hsp_cenc_preencode_buffer(s, v->bytes, v->len)
           : hsp_cenc_encode_buffer(s, v->bytes, v->len);
    break;
  case K_IPV4: sizing ? hsp_cenc_preencode_ipv4(s) : hsp_cenc_encode_ipv4(s, v->a4.host); break;
  case K_IPV4ADDR: sizing ? hsp_cenc_preencode_ipv4_addr(s) : hsp_cenc_encode_ipv4_addr(s, &v->a4); break;
  case K_IPV6ADDR: sizing ? hsp_cenc_preencode_ipv6_addr(s) : hsp_cenc_encode_ipv6_addr(s, &v->a6); break;
  case K_COUNT: abort();
  }
}

static void repr_one(out_t *o, enum kind k, const value_t *v) {
  char host[HSP_CENC_IP_STRLEN];
  switch (k) {
  case K_INT: emit(o, "%" PRId64, v->i); break;
  case K_FIXED32:
  case K_FIXED64:
  case K_BUFFER:
  case K_STRING:
  case K_RAW: emit(o, "x"); emit_hex(o, v->bytes, v->len); break;
  case K_IPV4: hsp_ipv4_format(v->a4.host, host); emit(o, "%s", host); break;
  case K_IPV4ADDR: hsp_ipv4_format(v->a4.host, host); emit(o, "%s:%u", host, v->a4.port); break;
  case K_IPV6ADDR: hsp_ipv6_format(v->a6.host, host); emit(o, "[%s]:%u", host, v->a6.port); break;
  default: emit(o, "%" PRIu64, v->u);
  }
}

/* A type name is either a kind or "array:<kind>". */
static int parse_type(const char *name, enum kind *k, bool *is_array) {
  *is_array = strncmp(name, "array:", 6) == 0;
  if (*is_array) name += 6;
  for (int i = 0; i < K_COUNT; i++)
    if (strcmp(name, kind_names[i]) == 0) return *k = (enum kind)i, 0;
  return -1;
}

static value_t items[MAX_ITEMS];

/* Decode, then re-encode with our own encoder; the caller compares bytes with the input. */
static void check_line(char *line, out_t *o) {
  char *type = strtok(line, " \n"), *hex = strtok(NULL, " \n");
  enum kind k;
  bool is_array;
  static uint8_t in[MAX_BYTES * 4], again[MAX_BYTES * 4];
  size_t n = hex ? strlen(hex) / 2 : 0;
  if (!type || parse_type(type, &k, &is_array) != 0 || n > sizeof in ||
      (n && hsp_hex_decode(in, n, hex) != 0)) {
    emit(o, "ERR bad-line");
    return;
  }
  hsp_cenc_t s = hsp_cenc_for_decode(in, n);
  size_t count = 1;
  if (is_array) {
    count = hsp_cenc_decode_array_length(&s, 1);
    if (count > MAX_ITEMS) s.error = HSP_CENC_ERANGE;
  }
  for (size_t i = 0; i < count && hsp_cenc_ok(&s); i++) decode_one(&s, k, &items[i]);
  if (!hsp_cenc_ok(&s)) {
    emit(o, "ERR %s", hsp_cenc_strerror(s.error));
    return;
  }
  size_t consumed = s.start;
  if (is_array) emit(o, "[");
  for (size_t i = 0; i < count; i++) {
    if (i) emit(o, ",");
    repr_one(o, k, &items[i]);
  }
  if (is_array) emit(o, "]");

  hsp_cenc_t e = hsp_cenc_for_size();
  if (is_array) hsp_cenc_preencode_array_length(&e, count);
  for (size_t i = 0; i < count; i++) encode_one(&e, k, &items[i]);
  size_t size = e.end;
  e = hsp_cenc_for_encode(again, sizeof again);
  if (is_array) hsp_cenc_encode_array_length(&e, count);
  for (size_t i = 0; i < count; i++) encode_one(&e, k, &items[i]);
  if (!hsp_cenc_ok(&e) || e.start != size) {
    emit(o, " ERR-reencode");
    return;
  }
  emit(o, " ");
  emit_hex(o, again, size);
  /* Trailing bytes are ignored by both implementations; report how many we left. */
  emit(o, " %zu", n - consumed);
}

/* xorshift64*: reproducible from the seed the test prints. */
static uint64_t rng_state;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ULL;
}

static void random_utf8(value_t *v) {
  size_t chars = rnd() % 24;
  v->len = 0;
  for (size_t c = 0; c < chars; c++) {
    uint32_t cp;
    do cp = (uint32_t)(rnd() % (rnd() % 2 ? 0x80 : 0x110000));
    while (cp >= 0xd800 && cp <= 0xdfff);
    uint8_t *p = v->bytes + v->len;
    if (cp < 0x80) p[0] = (uint8_t)cp, v->len += 1;
    else if (cp < 0x800) p[0] = (uint8_t)(0xc0 | cp >> 6), p[1] = (uint8_t)(0x80 | (cp & 63)), v->len += 2;
    else if (cp < 0x10000)
      p[0] = (uint8_t)(0xe0 | cp >> 12), p[1] = (uint8_t)(0x80 | ((cp >> 6) & 63)),
      p[2] = (uint8_t)(0x80 | (cp & 63)), v->len += 3;
    else
      p[0] = (uint8_t)(0xf0 | cp >> 18), p[1] = (uint8_t)(0x80 | ((cp >> 12) & 63)),
      p[2] = (uint8_t)(0x80 | ((cp >> 6) & 63)), p[3] = (uint8_t)(0x80 | (cp & 63)), v->len += 4;
  }
}

/* Integers spread over every varint width, not only the large ones a uniform draw favours. */
static uint64_t random_uint(void) {
  static const uint64_t limits[] = {0xfc, 0xffff, 0xffffffff, HSP_CENC_MAX_SAFE_INTEGER};
  return rnd() % (limits[rnd() % 4] + 1);
}

static void random_value(enum kind k, value_t *v) {
  switch (k) {
  case K_UINT: case K_UINT64: v->u = random_uint(); break;
  case K_UINT8: v->u = rnd() & 0xff; break;
  case K_UINT16: v->u = rnd() & 0xffff; break;
  case K_UINT24: v->u = rnd() & 0xffffff; break;
  case K_UINT32: v->u = rnd() & 0xffffffff; break;
  case K_INT: {
    int64_t mag = (int64_t)(random_uint() >> 1);
    v->i = rnd() % 2 ? -mag - 1 : mag;
    break;
  }
  case K_BOOL: v->u = rnd() % 2; break;
  case K_FIXED32: case K_FIXED64: case K_BUFFER: case K_RAW:
    v->len = k == K_FIXED32 ? 32 : k == K_FIXED64 ? 64 : (size_t)(rnd() % 300);
    /* JS decodes an empty buffer as null; only raw keeps "empty" distinct, so avoid it. */
    if (k == K_BUFFER && v->len == 0) v->len = 1;
    for (size_t i = 0; i < v->len; i++) v->bytes[i] = (uint8_t)rnd();
    break;
  case K_STRING: random_utf8(v); break;
  case K_IPV4: case K_IPV4ADDR:
    for (int i = 0; i < 4; i++) v->a4.host[i] = (uint8_t)rnd();
    v->a4.port = (uint16_t)rnd();
    break;
  case K_IPV6ADDR:
    for (int i = 0; i < 16; i++) v->a6.host[i] = (uint8_t)rnd();
    v->a6.port = (uint16_t)rnd();
    break;
  case K_COUNT: abort();
  }
}

static void gen(unsigned long count, uint64_t seed) {
  rng_state = seed ? seed : 1;
  static char line[1 << 20];
  static uint8_t enc[MAX_BYTES * 4];
  for (int pass = 0; pass < 2; pass++) {
    size_t kinds = pass ? sizeof array_kinds / sizeof *array_kinds : K_COUNT;
    for (size_t ki = 0; ki < kinds; ki++) {
      enum kind k = pass ? array_kinds[ki] : (enum kind)ki;
      for (unsigned long c = 0; c < count; c++) {
        size_t n = pass ? rnd() % 8 : 1;
        for (size_t i = 0; i < n; i++) random_value(k, &items[i]);
        hsp_cenc_t e = hsp_cenc_for_encode(enc, sizeof enc);
        if (pass) hsp_cenc_encode_array_length(&e, n);
        for (size_t i = 0; i < n; i++) encode_one(&e, k, &items[i]);
        if (!hsp_cenc_ok(&e)) abort();
        out_t o = {line, sizeof line, 0};
        emit(&o, "%s%s ", pass ? "array:" : "", kind_names[k]);
        if (pass) emit(&o, "[");
        for (size_t i = 0; i < n; i++) {
          if (i) emit(&o, ",");
          repr_one(&o, k, &items[i]);
        }
        if (pass) emit(&o, "]");
        emit(&o, " ");
        emit_hex(&o, enc, e.start);
        puts(line);
      }
    }
  }
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "check") == 0) {
    static char line[1 << 20], result[1 << 20];
    while (fgets(line, sizeof line, stdin)) {
      out_t o = {result, sizeof result, 0};
      check_line(line, &o);
      puts(result);
    }
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "gen") == 0) {
    gen(strtoul(argv[2], NULL, 10), strtoull(argv[3], NULL, 10));
    return 0;
  }
  fprintf(stderr, "usage: cenc_tool check | cenc_tool gen COUNT SEED\n");
  return 2;
}
