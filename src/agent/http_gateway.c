/* Gateway helpers over parsed requests: route parsing and the rewritten upstream head. */
#include "hex.h"
#include "http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int hsp_http_percent_decode(char *out, size_t cap, const char *in, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c == '%') {
      if (len - i < 3) return HSP_HTTP_EROUTE;
      int hi = hexval(in[i + 1]), lo = hexval(in[i + 2]);
      if (hi < 0 || lo < 0) return HSP_HTTP_EROUTE;
      c = (unsigned char)(hi << 4 | lo);
      i += 2;
    }
    if (c < 0x20 || c == 0x7f) return HSP_HTTP_EROUTE;
    if (n + 1 >= cap) return HSP_HTTP_ENOSPACE;
    out[n++] = (char)c;
  }
  if (cap == 0) return HSP_HTTP_ENOSPACE;
  out[n] = '\0';
  return (int)n;
}

/* A role name as the registry stores it: no path separators, not a dot segment. */
static bool valid_name(const char *s) {
  return s[0] && !strchr(s, '/') && !strchr(s, '@') && strcmp(s, ".") != 0 &&
         strcmp(s, "..") != 0;
}

static bool has_prefix(const char *p, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && memcmp(p, prefix, n) == 0;
}

/* "name[@range]" from one raw path segment. The '@' is found before decoding, so an
 * escaped %40 stays part of the name (and is then refused by valid_name). */
static int parse_name_range(hsp_http_route_t *r, const char *seg, size_t len) {
  const char *at = memchr(seg, '@', len);
  size_t nlen = at ? (size_t)(at - seg) : len;
  if (hsp_http_percent_decode(r->name, sizeof r->name, seg, nlen) < 0 || !valid_name(r->name))
    return HSP_HTTP_EROUTE;
  if (!at) {
    strcpy(r->range, "*");
    return 0;
  }
  int n = hsp_http_percent_decode(r->range, sizeof r->range, at + 1, len - nlen - 1);
  if (n <= 0) return HSP_HTTP_EROUTE;
  return 0;
}

int hsp_http_route_parse(hsp_http_route_t *r, const char *target, size_t len) {
  memset(r, 0, sizeof *r);
  r->kind = HSP_HTTP_ROUTE_OTHER;
  /* absolute-form: skip scheme and authority (RFC 9112 §3.2.2: servers must accept it). */
  if (has_prefix(target, len, "http://") || has_prefix(target, len, "https://")) {
    size_t skip = target[4] == 's' ? 8 : 7;
    const char *slash = memchr(target + skip, '/', len - skip);
    const char *q = memchr(target + skip, '?', len - skip);
    if (!slash || (q && q < slash)) slash = q;
    if (!slash) {
      r->path = (hsp_http_str_t){"/", 1};
      return 0;
    }
    len -= (size_t)(slash - target);
    target = slash;
  }
  const char *q = memchr(target, '?', len);
  size_t plen = q ? (size_t)(q - target) : len;
  r->path = (hsp_http_str_t){target, plen};
  if (q) {
    r->has_query = true;
    r->query = (hsp_http_str_t){q + 1, len - plen - 1};
  }
  if (plen == 0 || target[0] != '/') return 0;

  const char *p = target + 1;
  size_t rest = plen - 1;
  hsp_http_route_kind_t kind;
  if (has_prefix(p, rest, "role/")) kind = HSP_HTTP_ROUTE_ROLE, p += 5, rest -= 5;
  else if (has_prefix(p, rest, "instance/")) kind = HSP_HTTP_ROUTE_INSTANCE, p += 9, rest -= 9;
  else if (has_prefix(p, rest, "list/")) kind = HSP_HTTP_ROUTE_LIST, p += 5, rest -= 5;
  else return 0;

  const char *slash = memchr(p, '/', rest);
  size_t seg = slash ? (size_t)(slash - p) : rest;
  r->path = slash ? (hsp_http_str_t){slash, rest - seg} : (hsp_http_str_t){"/", 1};
  if (kind == HSP_HTTP_ROUTE_INSTANCE) {
    char hex[65];
    if (seg != 64) return HSP_HTTP_EROUTE;
    memcpy(hex, p, 64);
    hex[64] = '\0';
    if (hsp_hex_decode(r->key, sizeof r->key, hex) != 0) return HSP_HTTP_EROUTE;
  } else {
    int rc = parse_name_range(r, p, seg);
    if (rc) return rc;
    /* A listing has no upstream path; "/list/name/" is tolerated, more is not. */
    if (kind == HSP_HTTP_ROUTE_LIST && slash && rest - seg > 1) return HSP_HTTP_EROUTE;
  }
  r->kind = kind;
  return 0;
}

/* ---- Header store ----------------------------------------------------------------------- */

void hsp_http_headers_init(hsp_http_headers_t *h, hsp_http_header_t *items, size_t cap,
                           char *buf, size_t buf_cap) {
  *h = (hsp_http_headers_t){items, cap, 0, buf, buf_cap, 0};
}

int hsp_http_headers_add(hsp_http_headers_t *h, hsp_http_str_t name, hsp_http_str_t value) {
  if (h->count == h->cap || h->buf_cap - h->buf_len < name.len + value.len)
    return HSP_HTTP_ENOSPACE;
  char *n = h->buf + h->buf_len;
  if (name.len) memcpy(n, name.p, name.len);
  char *v = n + name.len;
  if (value.len) memcpy(v, value.p, value.len);
  h->buf_len += name.len + value.len;
  h->items[h->count++] = (hsp_http_header_t){{n, name.len}, {v, value.len}};
  return 0;
}

static bool name_is(hsp_http_str_t n, const char *s) {
  return strlen(s) == n.len && strncasecmp(n.p, s, n.len) == 0;
}

const hsp_http_str_t *hsp_http_headers_get(const hsp_http_headers_t *h, const char *name) {
  for (size_t i = 0; i < h->count; i++)
    if (name_is(h->items[i].name, name)) return &h->items[i].value;
  return NULL;
}

/* ---- Forwarded request head ------------------------------------------------------------- */

typedef struct out {
  char *p;
  size_t cap, len;
  bool overflow;
} out_t;

static void put(out_t *o, const char *s, size_t n) {
  if (o->overflow || o->cap - o->len < n) {
    o->overflow = true;
    return;
  }
  memcpy(o->p + o->len, s, n);
  o->len += n;
}
static void puts_(out_t *o, const char *s) { put(o, s, strlen(s)); }
static void put_field(out_t *o, const char *name, hsp_http_str_t value) {
  puts_(o, name);
  put(o, ": ", 2);
  put(o, value.p, value.len);
  put(o, "\r\n", 2);
}

/* Whether the Connection fields name this field: those are hop-by-hop too (RFC 9110 §7.6.1). */
static bool named_by_connection(hsp_http_str_t name, const hsp_http_header_t *h, size_t count) {
  for (size_t i = 0; i < count; i++) {
    if (!name_is(h[i].name, "connection")) continue;
    const char *s = h[i].value.p;
    size_t len = h[i].value.len;
    while (len) {
      const char *comma = memchr(s, ',', len);
      size_t n = comma ? (size_t)(comma - s) : len;
      const char *e = s;
      size_t elen = n;
      while (elen && (*e == ' ' || *e == '\t')) e++, elen--;
      while (elen && (e[elen - 1] == ' ' || e[elen - 1] == '\t')) elen--;
      if (elen == name.len && strncasecmp(e, name.p, elen) == 0) return true;
      s += comma ? n + 1 : n;
      len -= comma ? n + 1 : n;
    }
  }
  return false;
}

/* Hop-by-hop fields are not forwarded (RFC 9110 §7.6.1): Connection and the fields it names,
 * Keep-Alive, Proxy-Connection, TE, and Upgrade unless the upgrade is passed on. The framing
 * fields stay even when named by Connection: the body is forwarded in the framing it came in. */
static bool hop_by_hop(hsp_http_str_t n, const hsp_http_header_t *h, size_t count,
                       bool keep_upgrade) {
  if (name_is(n, "connection") || name_is(n, "keep-alive") || name_is(n, "proxy-connection") ||
      name_is(n, "te"))
    return true;
  if (name_is(n, "upgrade")) return !keep_upgrade;
  if (name_is(n, "content-length") || name_is(n, "transfer-encoding")) return false;
  return named_by_connection(n, h, count);
}

int hsp_http_forward_response_head(char *buf, size_t cap, int status, hsp_http_str_t reason,
                                   const hsp_http_header_t *h, size_t count,
                                   const hsp_http_response_opts_t *opts) {
  out_t o = {buf, cap, 0, false};
  char line[32];
  if (status < 100 || status > 999) return HSP_HTTP_ESTATUS;
  snprintf(line, sizeof line, "HTTP/1.1 %d ", status);
  puts_(&o, line);
  put(&o, reason.p, reason.len);
  put(&o, "\r\n", 2);
  bool te_seen = false;
  for (size_t i = 0; i < count; i++) {
    hsp_http_str_t n = h[i].name;
    if (hop_by_hop(n, h, count, opts->upgrade)) continue;
    if (opts->chunked && name_is(n, "content-length")) continue;
    if (opts->identity && name_is(n, "transfer-encoding")) continue;
    if (opts->chunked && name_is(n, "transfer-encoding")) {
      te_seen = true; /* merged below, with chunked last */
      continue;
    }
    put(&o, n.p, n.len);
    put(&o, ": ", 2);
    put(&o, h[i].value.p, h[i].value.len);
    put(&o, "\r\n", 2);
  }
  if (opts->chunked) {
    /* The body ran until close upstream; the client gets it chunked, after whatever
     * codings the server applied. */
    puts_(&o, "Transfer-Encoding: ");
    if (te_seen) {
      for (size_t i = 0; i < count; i++) {
        if (!name_is(h[i].name, "transfer-encoding") || h[i].value.len == 0) continue;
        put(&o, h[i].value.p, h[i].value.len);
        put(&o, ", ", 2);
      }
    }
    puts_(&o, "chunked\r\n");
  }
  if (opts->upgrade) puts_(&o, "Connection: upgrade\r\n");
  else if (opts->close) puts_(&o, "Connection: close\r\n");
  else if (opts->keep_alive) puts_(&o, "Connection: keep-alive\r\n");
  put(&o, "\r\n", 2);
  if (o.overflow || o.len > (size_t)0x7fffffff) return HSP_HTTP_ENOSPACE;
  return (int)o.len;
}

int hsp_http_forward_request_head(char *buf, size_t cap, hsp_http_str_t method,
                                  hsp_http_str_t target, const hsp_http_header_t *h,
                                  size_t count, const hsp_http_forward_opts_t *opts) {
  out_t o = {buf, cap, 0, false};
  put(&o, method.p, method.len);
  put(&o, " ", 1);
  put(&o, target.p, target.len);
  puts_(&o, " HTTP/1.1\r\n");

  const hsp_http_str_t *client_host = NULL, *fwd_proto = NULL, *fwd_host = NULL;
  bool have_xff = false;
  for (size_t i = 0; i < count; i++) {
    hsp_http_str_t n = h[i].name;
    if (name_is(n, "host")) {
      if (!client_host) client_host = &h[i].value;
      if (opts->host) continue;
    } else if (name_is(n, "x-forwarded-for")) {
      have_xff = true;
      continue; /* re-emitted below, merged */
    } else if (name_is(n, "x-forwarded-proto")) {
      if (!fwd_proto) fwd_proto = &h[i].value;
      continue;
    } else if (name_is(n, "x-forwarded-host")) {
      if (!fwd_host) fwd_host = &h[i].value;
      continue;
    } else if (name_is(n, "forwarded")) {
      if (!opts->trust_forwarded) continue;
    } else if (hop_by_hop(n, h, count, opts->upgrade)) {
      continue;
    }
    put(&o, n.p, n.len);
    put(&o, ": ", 2);
    put(&o, h[i].value.p, h[i].value.len);
    put(&o, "\r\n", 2);
  }
  if (opts->host) {
    put_field(&o, "Host", (hsp_http_str_t){opts->host, strlen(opts->host)});
  }

  /* X-Forwarded-For: the incoming chain (when trusted, all fields in order) then the peer. */
  puts_(&o, "X-Forwarded-For: ");
  if (opts->trust_forwarded && have_xff) {
    for (size_t i = 0; i < count; i++) {
      if (!name_is(h[i].name, "x-forwarded-for") || h[i].value.len == 0) continue;
      put(&o, h[i].value.p, h[i].value.len);
      put(&o, ", ", 2);
    }
  }
  puts_(&o, opts->client_addr ? opts->client_addr : "unknown");
  put(&o, "\r\n", 2);

  const char *proto = opts->proto ? opts->proto : "http";
  if (opts->trust_forwarded && fwd_proto)
    put_field(&o, "X-Forwarded-Proto", *fwd_proto);
  else
    put_field(&o, "X-Forwarded-Proto", (hsp_http_str_t){proto, strlen(proto)});
  if (opts->trust_forwarded && fwd_host)
    put_field(&o, "X-Forwarded-Host", *fwd_host);
  else if (client_host)
    put_field(&o, "X-Forwarded-Host", *client_host);

  if (opts->upgrade) puts_(&o, "Connection: upgrade\r\n");
  put(&o, "\r\n", 2);
  if (o.overflow || o.len > (size_t)0x7fffffff) return HSP_HTTP_ENOSPACE;
  return (int)o.len;
}
