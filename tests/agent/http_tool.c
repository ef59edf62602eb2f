/*
 * For tests/interop/agent_http_llhttp.js: reads one stream per line on stdin,
 * "<piece size>:<hex>" for requests or "<piece size>:r:<hex>" for responses, and prints one
 * transcript line per stream:
 *   per message: M <method hex> <target hex> <major>.<minor> (responses: S <status> <reason
 *                hex> <major>.<minor>)  ka=<0|1> up=<0|1>
 *                H <name hex> <value hex> ...  B <body hex>  T <name hex> <value hex> ...  E
 *   then:        R ok | R done | R upgraded | R err <error text with _ for spaces>
 * Strings are hex so that any byte survives the trip. Each stream is fed in pieces of a size
 * given by the line's prefix "<piece size>:" (0 = all at once).
 */
#include "hex.h"
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *out;
static size_t out_len, out_cap;

static void emit(const char *s, size_t n) {
  if (out_cap - out_len < n + 1) {
    while (out_cap - out_len < n + 1) out_cap = out_cap ? out_cap * 2 : 1 << 16;
    out = realloc(out, out_cap);
    if (!out) abort();
  }
  memcpy(out + out_len, s, n);
  out_len += n;
  out[out_len] = 0;
}
static void emits(const char *s) { emit(s, strlen(s)); }
static void emit_hex(const void *p, size_t n) {
  char buf[512];
  const uint8_t *b = p;
  if (n == 0) {
    emits(" -");
    return;
  }
  emits(" ");
  while (n) {
    size_t k = n > 200 ? 200 : n;
    hsp_hex_encode(buf, b, k);
    emits(buf);
    b += k, n -= k;
  }
}

static bool in_body;

static bool last_ka;

static int on_start(void *d, const hsp_http_start_line_t *l) {
  (void)d;
  char v[32];
  if (l->target.p) {
    emits(" M");
    emit_hex(l->method_name.p, l->method_name.len);
    emit_hex(l->target.p, l->target.len);
  } else {
    snprintf(v, sizeof v, " S %d", l->status);
    emits(v);
    emit_hex(l->reason.p, l->reason.len);
  }
  snprintf(v, sizeof v, " %d.%d", l->version_major, l->version_minor);
  emits(v);
  return 0;
}
static int on_header(void *d, hsp_http_str_t n, hsp_http_str_t v) {
  (void)d;
  emits(" H");
  emit_hex(n.p, n.len);
  emit_hex(v.p, v.len);
  return 0;
}
static int on_hc(void *d, const hsp_http_message_t *m) {
  (void)d;
  char b[32];
  snprintf(b, sizeof b, " ka=%d up=%d", m->keep_alive, m->upgrade);
  emits(b);
  in_body = false;
  return 0;
}
static int on_body(void *d, const uint8_t *p, size_t n) {
  (void)d;
  if (!in_body) emits(" B ");
  in_body = true;
  char buf[512];
  while (n) {
    size_t k = n > 200 ? 200 : n;
    hsp_hex_encode(buf, p, k);
    emits(buf);
    p += k, n -= k;
  }
  return 0;
}
static int on_trailer(void *d, hsp_http_str_t n, hsp_http_str_t v) {
  (void)d;
  in_body = false;
  emits(" T");
  emit_hex(n.p, n.len);
  emit_hex(v.p, v.len);
  return 0;
}
static int on_mc(void *d, const hsp_http_message_t *m) {
  (void)d;
  last_ka = m->keep_alive;
  in_body = false;
  emits(" E");
  return 0;
}

int main(void) {
  static const hsp_http_callbacks_t cb = {on_start, on_header, on_hc, on_body, on_trailer, on_mc};
  static uint8_t scratch[16384];
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  uint8_t *bytes = NULL;
  while ((n = getline(&line, &cap, stdin)) > 0) {
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    char *colon = strchr(line, ':');
    if (!colon) return 2;
    size_t piece = strtoul(line, NULL, 10);
    char *h = colon + 1;
    hsp_http_type_t type = HSP_HTTP_REQUEST;
    if (h[0] == 'r' && h[1] == ':') type = HSP_HTTP_RESPONSE, h += 2;
    size_t len = strlen(h) / 2;
    bytes = realloc(bytes, len ? len : 1);
    if (hsp_hex_decode(bytes, len, h) != 0) return 2;
    out_len = 0;
    emits("");
    hsp_http_parser_t p;
    hsp_http_parser_init(&p, type, &cb, NULL, scratch, sizeof scratch, NULL);
    last_ka = true;
    size_t pos = 0;
    int rc = 0;
    while (pos < len) {
      size_t k = piece && piece < len - pos ? piece : len - pos;
      size_t used;
      rc = hsp_http_parser_execute(&p, bytes + pos, k, &used);
      pos += used;
      if (rc != HSP_HTTP_OK && rc != HSP_HTTP_PAUSED) break;
    }
    if (rc == HSP_HTTP_OK) {
      rc = hsp_http_parser_finish(&p);
      /* A body that ran until close completed just now: the connection is done. */
      if (rc == HSP_HTTP_OK && !last_ka) rc = HSP_HTTP_DONE;
    }
    if (rc == HSP_HTTP_OK) emits(" R ok");
    else if (rc == HSP_HTTP_DONE) emits(" R done");
    else if (rc == HSP_HTTP_UPGRADED) emits(" R upgraded");
    else {
      char e[128];
      snprintf(e, sizeof e, " R err %s", hsp_http_strerror(rc));
      for (char *s = e + 7; *s; s++)
        if (*s == ' ') *s = '_';
      emits(e);
    }
    printf("%s\n", out + 1);
  }
  free(line);
  free(bytes);
  free(out);
  return 0;
}
