// libs: hsp_agent hsp_encoding
/*
 * HTTP parser fuzz target. The first two bytes choose the message type, small or default
 * limits, what on_headers_complete answers and a seed; the rest is the stream. Invariants:
 *  - the stream fed at once and fed in random pieces (each in its own allocation, so ASan
 *    sees any read past a piece) with callbacks that pause at random gives the same
 *    transcript of events and the same final result;
 *  - consumed never exceeds the input, errors are sticky, header names are tokens and
 *    values hold no CR, LF or NUL;
 *  - the gateway helpers (route parsing, forward heads) accept every parsed start line.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct log {
  uint8_t *buf;
  size_t len, cap;
  bool in_body;
  uint32_t rng; /* non-zero: callbacks pause at random */
  int hc_ret;
} log_t;

static uint32_t next(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

static void put(log_t *l, const void *p, size_t n) {
  if (l->cap - l->len < n) abort(); /* sized for the worst case below */
  memcpy(l->buf + l->len, p, n);
  l->len += n;
}
static void tag(log_t *l, char t) {
  l->in_body = false;
  put(l, &t, 1);
}
static void str(log_t *l, hsp_http_str_t s) {
  uint32_t n = (uint32_t)s.len;
  put(l, &n, sizeof n);
  if (s.len) put(l, s.p, s.len);
}
static int ret(log_t *l) { return l->rng && next(&l->rng) % 4 == 0 ? HSP_HTTP_PAUSE : 0; }

static void check_field(hsp_http_str_t n, hsp_http_str_t v) {
  if (n.len == 0 || memchr(n.p, ':', n.len) || memchr(n.p, ' ', n.len)) abort();
  for (size_t i = 0; i < v.len; i++)
    if (v.p[i] == '\r' || v.p[i] == '\n' || v.p[i] == 0) abort();
  if (v.len && (v.p[0] == ' ' || v.p[v.len - 1] == ' ')) abort();
}

static int on_start(void *d, const hsp_http_start_line_t *s) {
  log_t *l = d;
  tag(l, 'S');
  str(l, s->method_name);
  str(l, s->target);
  str(l, s->reason);
  put(l, &s->status, sizeof s->status);
  if (!s->target.len) {
    char out[512];
    hsp_http_header_t h = {{"Connection", 10}, {"x", 1}};
    hsp_http_response_opts_t o = {.chunked = (s->status & 1) != 0, .close = true};
    int n = hsp_http_forward_response_head(out, sizeof out, s->status, s->reason, &h, 1, &o);
    if (n != HSP_HTTP_ENOSPACE && (n < 0 || (size_t)n > sizeof out)) abort();
  }
  if (s->target.len) {
    hsp_http_route_t r;
    if (hsp_http_route_parse(&r, s->target.p, s->target.len) == 0) {
      if (r.path.len == 0 && r.kind != HSP_HTTP_ROUTE_OTHER) abort();
      char out[512];
      hsp_http_header_t h = {{"Host", 4}, {"x", 1}};
      int n = hsp_http_forward_request_head(out, sizeof out, s->method_name, r.path, &h, 1,
                                            &(hsp_http_forward_opts_t){.client_addr = "::1"});
      if (n != HSP_HTTP_ENOSPACE && (n < 0 || (size_t)n > sizeof out)) abort();
    }
  }
  return ret(l);
}
static int on_header(void *d, hsp_http_str_t n, hsp_http_str_t v) {
  log_t *l = d;
  check_field(n, v);
  tag(l, 'H');
  str(l, n);
  str(l, v);
  return ret(l);
}
static int on_trailer(void *d, hsp_http_str_t n, hsp_http_str_t v) {
  log_t *l = d;
  check_field(n, v);
  tag(l, 'T');
  str(l, n);
  str(l, v);
  return ret(l);
}
static int on_hc(void *d, const hsp_http_message_t *m) {
  log_t *l = d;
  tag(l, 'C');
  uint8_t b[4] = {(uint8_t)m->body, m->keep_alive, m->upgrade, m->expect_continue};
  put(l, b, sizeof b);
  put(l, &m->content_length, sizeof m->content_length);
  return l->hc_ret | ret(l);
}
static int on_body(void *d, const uint8_t *p, size_t n) {
  log_t *l = d;
  if (n == 0) abort(); /* empty slices are never reported */
  if (!l->in_body) tag(l, 'B');
  l->in_body = true;
  put(l, p, n); /* body slices are joined: their boundaries follow the input's */
  return ret(l);
}
static int on_mc(void *d, const hsp_http_message_t *m) {
  (void)m;
  log_t *l = d;
  tag(l, 'M');
  return ret(l);
}
static const hsp_http_callbacks_t cbs = {on_start, on_header, on_hc, on_body, on_trailer, on_mc};

/* Feeds the stream in pieces (one piece when seed is 0); returns the final result. */
static int parse(const uint8_t *in, size_t len, hsp_http_type_t type,
                 const hsp_http_limits_t *lim, uint32_t seed, log_t *l) {
  static uint8_t scratch[16384];
  hsp_http_parser_t p;
  hsp_http_parser_init(&p, type, &cbs, l, scratch, sizeof scratch, lim);
  size_t pos = 0;
  int rc = 0;
  uint32_t s = seed;
  while (pos < len) {
    size_t n = seed ? 1 + next(&s) % 64 : len;
    if (n > len - pos) n = len - pos;
    uint8_t *piece = malloc(n);
    memcpy(piece, in + pos, n);
    size_t off = 0;
    do {
      size_t used;
      rc = hsp_http_parser_execute(&p, piece + off, n - off, &used);
      if (used > n - off) abort();
      off += used;
      if (rc < 0) {
        size_t again;
        if (hsp_http_parser_execute(&p, piece, n, &again) != rc || again != 0) abort();
      }
    } while (rc == HSP_HTTP_PAUSED && off < n);
    free(piece);
    pos += off;
    if (rc != HSP_HTTP_OK && rc != HSP_HTTP_PAUSED) break;
    if (off < n) abort(); /* OK or PAUSED with input left is impossible */
  }
  if (rc == HSP_HTTP_OK || rc == HSP_HTTP_PAUSED) rc = hsp_http_parser_finish(&p);
  tag(l, 'E');
  put(l, &rc, sizeof rc);
  if (rc == HSP_HTTP_UPGRADED || rc == HSP_HTTP_DONE) put(l, &pos, sizeof pos);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  uint8_t mode = data[0];
  uint32_t seed = data[1] + 1u;
  data += 2;
  size -= 2;
  hsp_http_type_t type = (mode & 1) ? HSP_HTTP_RESPONSE : HSP_HTTP_REQUEST;
  hsp_http_limits_t lim = hsp_http_default_limits();
  if (mode & 2) {
    lim = (hsp_http_limits_t){.max_start_line = 32, .max_header_bytes = 64, .max_headers = 4,
                              .max_chunk_line = 12, .max_body = 100};
  }
  int hc_ret = (mode >> 2) & (HSP_HTTP_SKIP_BODY | HSP_HTTP_TUNNEL);

  /* Worst case per input byte: a one-byte header line logs a tag and two lengths. */
  size_t cap = size * 16 + 256;
  log_t a = {malloc(cap), 0, cap, false, 0, hc_ret};
  log_t b = {malloc(cap), 0, cap, false, seed * 2654435761u | 1, hc_ret};
  int ra = parse(data, size, type, &lim, 0, &a);
  int rb = parse(data, size, type, &lim, seed, &b);
  if (ra != rb || a.len != b.len || memcmp(a.buf, b.buf, a.len) != 0) {
    fprintf(stderr, "split changed the result: %d vs %d\n", ra, rb);
    abort();
  }
  if (ra < 0 && hsp_http_error_status(ra) < 400) abort();
  free(a.buf);
  free(b.buf);

  /* Percent-decoding the raw input: bounded output, NUL-terminated. */
  char out[64];
  int n = hsp_http_percent_decode(out, sizeof out, (const char *)data, size < 100 ? size : 100);
  if (n >= 0 && ((size_t)n >= sizeof out || out[n] != 0)) abort();
  return 0;
}
