#include "http.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/*
 * The parser is a loop over line-oriented states (start line, headers, chunk size, the CRLF
 * after chunk data, trailers) and byte-counting states (fixed-length body, chunk data,
 * body until EOF). A line is taken straight from the input when it is complete there, and
 * copied into the scratch buffer only when it arrives in pieces. Every limit is checked on
 * the line length alone, so any split of the input produces the same events and errors.
 */

enum state {
  S_START_LINE,
  S_HEADER,
  S_BODY_LENGTH,
  S_BODY_EOF,
  S_CHUNK_SIZE,
  S_CHUNK_DATA,
  S_CHUNK_END,
  S_TRAILER,
  S_UPGRADED,
  S_DONE,
};

enum flag {
  F_CONTENT_LENGTH = 1u << 0,
  F_TE = 1u << 1,
  F_TE_CHUNKED = 1u << 2,       /* chunked is the last coding seen so far */
  F_TE_CHUNKED_SEEN = 1u << 3,  /* chunked appeared at all */
  F_TE_OTHER = 1u << 4,         /* a coding other than chunked appeared */
  F_TE_NOT_LAST = 1u << 5,      /* a coding followed chunked */
  F_CONN_CLOSE = 1u << 6,
  F_CONN_KEEP_ALIVE = 1u << 7,
  F_CONN_UPGRADE = 1u << 8,
  F_UPGRADE_HEADER = 1u << 9,
};

const char *hsp_http_strerror(int err) {
  switch (err) {
  case HSP_HTTP_OK: return "ok";
  case HSP_HTTP_PAUSED: return "paused";
  case HSP_HTTP_UPGRADED: return "upgraded";
  case HSP_HTTP_DONE: return "connection done";
  case HSP_HTTP_EMETHOD: return "invalid method";
  case HSP_HTTP_ETARGET: return "invalid request target";
  case HSP_HTTP_EVERSION: return "invalid HTTP version";
  case HSP_HTTP_EVERSION_UNSUP: return "HTTP version not supported";
  case HSP_HTTP_ESTATUS: return "invalid status line";
  case HSP_HTTP_EHEADER: return "invalid header field";
  case HSP_HTTP_EOBS_FOLD: return "obsolete line folding";
  case HSP_HTTP_ECRLF: return "line not terminated by CRLF";
  case HSP_HTTP_EURI_TOO_LONG: return "request line too long";
  case HSP_HTTP_EHEADERS_TOO_LARGE: return "header section too large";
  case HSP_HTTP_EBODY_TOO_LARGE: return "body too large";
  case HSP_HTTP_ECONTENT_LENGTH: return "invalid Content-Length";
  case HSP_HTTP_ETRANSFER_ENCODING: return "invalid Transfer-Encoding";
  case HSP_HTTP_ECL_AND_TE: return "both Content-Length and Transfer-Encoding";
  case HSP_HTTP_ENOT_IMPLEMENTED: return "transfer coding not implemented";
  case HSP_HTTP_EHOST: return "missing or duplicate Host";
  case HSP_HTTP_ECHUNK: return "invalid chunk";
  case HSP_HTTP_ECALLBACK: return "callback error";
  case HSP_HTTP_EINCOMPLETE: return "stream ended inside a message";
  case HSP_HTTP_ECONNECT: return "CONNECT with a body";
  case HSP_HTTP_EROUTE: return "invalid route";
  case HSP_HTTP_ENOSPACE: return "buffer too small";
  default: return "unknown error";
  }
}

int hsp_http_error_status(int err) {
  switch (err) {
  case HSP_HTTP_EURI_TOO_LONG: return 414;
  case HSP_HTTP_EHEADERS_TOO_LARGE: return 431;
  case HSP_HTTP_EBODY_TOO_LARGE: return 413;
  case HSP_HTTP_ENOT_IMPLEMENTED: return 501;
  case HSP_HTTP_EVERSION_UNSUP: return 505;
  case HSP_HTTP_ECALLBACK:
  case HSP_HTTP_ENOSPACE: return 500;
  default: return err < 0 ? 400 : 200;
  }
}

hsp_http_limits_t hsp_http_default_limits(void) {
  return (hsp_http_limits_t){.max_start_line = 8192,
                             .max_header_bytes = 16384,
                             .max_headers = 100,
                             .max_chunk_line = 4096,
                             .max_body = 0};
}

static const char *const method_names[] = {
    [HSP_HTTP_OTHER] = "",          [HSP_HTTP_GET] = "GET",         [HSP_HTTP_HEAD] = "HEAD",
    [HSP_HTTP_POST] = "POST",       [HSP_HTTP_PUT] = "PUT",         [HSP_HTTP_DELETE] = "DELETE",
    [HSP_HTTP_CONNECT] = "CONNECT", [HSP_HTTP_OPTIONS] = "OPTIONS", [HSP_HTTP_TRACE] = "TRACE",
    [HSP_HTTP_PATCH] = "PATCH",
};

const char *hsp_http_method_name(hsp_http_method_t m) {
  return (unsigned)m < sizeof method_names / sizeof *method_names ? method_names[m] : "";
}

/* ---- Character classes (RFC 9110 §5.6.2 token, §5.5 field values) ---------------------- */

static bool is_tchar(uint8_t c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}
static bool is_ows(uint8_t c) { return c == ' ' || c == '\t'; }
/* field-vchar / SP / HTAB; obs-text (0x80-0xff) is allowed, controls and DEL are not. */
static bool is_field_char(uint8_t c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }
static int hexval(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static bool str_ieq(const char *a, size_t alen, const char *b) {
  size_t blen = strlen(b);
  return alen == blen && strncasecmp(a, b, blen) == 0;
}

static hsp_http_str_t trim_ows(const char *p, size_t len) {
  while (len && is_ows((uint8_t)p[0])) p++, len--;
  while (len && is_ows((uint8_t)p[len - 1])) len--;
  return (hsp_http_str_t){p, len};
}

/* Iterates the elements of a comma-separated list (RFC 9110 §5.6.1), trimmed; empty
 * elements are skipped as the RFC asks of recipients. Returns false at the end. */
static bool list_next(hsp_http_str_t *rest, hsp_http_str_t *elem) {
  while (rest->len) {
    const char *comma = memchr(rest->p, ',', rest->len);
    size_t n = comma ? (size_t)(comma - rest->p) : rest->len;
    *elem = trim_ows(rest->p, n);
    rest->p += comma ? n + 1 : n;
    rest->len -= comma ? n + 1 : n;
    if (elem->len) return true;
  }
  return false;
}

/* ---- Setup ------------------------------------------------------------------------------ */

static size_t cap_limit(size_t v, size_t cap) { return v > cap ? cap : v; }

static void reset_message(hsp_http_parser_t *p) {
  p->state = S_START_LINE;
  p->buffered = 0;
  p->header_bytes = 0;
  p->header_count = 0;
  p->remaining = 0;
  p->body_total = 0;
  p->flags = 0;
  p->host_count = 0;
  memset(&p->msg, 0, sizeof p->msg);
  p->msg.type = p->type;
}

void hsp_http_parser_init(hsp_http_parser_t *p, hsp_http_type_t type,
                          const hsp_http_callbacks_t *cb, void *data, uint8_t *scratch,
                          size_t scratch_len, const hsp_http_limits_t *limits) {
  static const hsp_http_callbacks_t none;
  memset(p, 0, sizeof *p);
  p->type = type;
  p->cb = cb ? cb : &none;
  p->data = data;
  p->limits = limits ? *limits : hsp_http_default_limits();
  p->scratch = scratch;
  p->scratch_len = scratch_len;
  reset_message(p);
}

void hsp_http_parser_resume(hsp_http_parser_t *p) {
  if (p->state == S_UPGRADED) reset_message(p);
}

/* ---- Lines ------------------------------------------------------------------------------ */

/* Takes one line from the input (or completes one begun in scratch). `max` bounds the bytes
 * before the LF, CR included. Returns 1 with the line (CR stripped) in line and len, 0 when the
 * input ended first (everything consumed into scratch), or `too_long` / HSP_HTTP_ECRLF. */
static int read_line(hsp_http_parser_t *p, const uint8_t *in, size_t inlen, size_t *pos,
                     size_t max, int too_long, const uint8_t **line, size_t *len) {
  max = cap_limit(max, p->scratch_len);
  size_t avail = inlen - *pos;
  size_t allowed = max > p->buffered ? max - p->buffered : 0;
  size_t scan = avail < allowed + 1 ? avail : allowed + 1;
  const uint8_t *start = in + *pos;
  const uint8_t *lf = memchr(start, '\n', scan);
  if (!lf) {
    if (avail > allowed) return too_long;
    memcpy(p->scratch + p->buffered, start, avail);
    p->buffered += avail;
    *pos = inlen;
    return 0;
  }
  size_t n = (size_t)(lf - start);
  const uint8_t *l = start;
  size_t total = n;
  if (p->buffered) {
    memcpy(p->scratch + p->buffered, start, n);
    total = p->buffered + n;
    l = p->scratch;
    p->buffered = 0;
  }
  *pos += n + 1;
  if (total == 0 || l[total - 1] != '\r') return HSP_HTTP_ECRLF;
  *line = l;
  *len = total - 1;
  return 1;
}

/* Maps what a callback returned to what step() returns. */
static int cb_result(int rc) {
  if (rc < 0) return HSP_HTTP_ECALLBACK;
  return (rc & HSP_HTTP_PAUSE) ? HSP_HTTP_PAUSED : 0;
}

static int parse_version(const uint8_t *v, size_t len, hsp_http_parser_t *p) {
  if (len != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
      v[7] < '0' || v[7] > '9')
    return HSP_HTTP_EVERSION;
  p->msg.version_major = v[5] - '0';
  p->msg.version_minor = v[7] - '0';
  /* RFC 9112 would read 1.2 as 1.1; llhttp refuses it, and so do we (505). */
  if (p->msg.version_major != 1 || p->msg.version_minor > 1) return HSP_HTTP_EVERSION_UNSUP;
  return 0;
}

/* RFC 9112 §3.2: origin-form "/..." for most, authority-form "host:port" for CONNECT,
 * absolute-form "scheme://..." (what proxies receive), "*" for OPTIONS only. */
static bool valid_target_form(hsp_http_method_t method, hsp_http_str_t t) {
  if (method == HSP_HTTP_CONNECT) return t.p[0] != '/' && memchr(t.p, ':', t.len) != NULL;
  if (t.p[0] == '/') return true;
  if (t.len == 1 && t.p[0] == '*') return method == HSP_HTTP_OPTIONS;
  size_t i = 0;
  while (i < t.len && (isalpha((unsigned char)t.p[i]) ||
                       (i > 0 && (isdigit((unsigned char)t.p[i]) || strchr("+-.", t.p[i])))))
    i++;
  return i > 0 && t.len - i >= 3 && memcmp(t.p + i, "://", 3) == 0;
}

static int parse_request_line(hsp_http_parser_t *p, const uint8_t *l, size_t len,
                              hsp_http_start_line_t *sl) {
  size_t i = 0;
  while (i < len && is_tchar(l[i])) i++;
  if (i == 0 || i == len || l[i] != ' ') return HSP_HTTP_EMETHOD;
  sl->method_name = (hsp_http_str_t){(const char *)l, i};
  sl->method = HSP_HTTP_OTHER;
  for (int m = HSP_HTTP_GET; m <= HSP_HTTP_PATCH; m++)
    if (strlen(method_names[m]) == i && memcmp(method_names[m], l, i) == 0)
      sl->method = (hsp_http_method_t)m;
  size_t t = ++i;
  while (i < len && l[i] > 0x20 && l[i] < 0x7f) i++;
  if (i == t || i == len || l[i] != ' ') return HSP_HTTP_ETARGET;
  sl->target = (hsp_http_str_t){(const char *)l + t, i - t};
  if (!valid_target_form(sl->method, sl->target)) return HSP_HTTP_ETARGET;
  int rc = parse_version(l + i + 1, len - i - 1, p);
  if (rc) return rc;
  p->msg.method = sl->method;
  return 0;
}

static int parse_status_line(hsp_http_parser_t *p, const uint8_t *l, size_t len,
                             hsp_http_start_line_t *sl) {
  if (len < 12 || l[8] != ' ') return len >= 8 && parse_version(l, 8, p) ? HSP_HTTP_EVERSION
                                                                            : HSP_HTTP_ESTATUS;
  int rc = parse_version(l, 8, p);
  if (rc) return rc;
  int status = 0;
  for (size_t i = 9; i < 12; i++) {
    if (l[i] < '0' || l[i] > '9') return HSP_HTTP_ESTATUS;
    status = status * 10 + (l[i] - '0');
  }
  if (status < 100) return HSP_HTTP_ESTATUS;
  /* "HTTP/1.1 200" without the SP before an empty reason is common; RFC 9112 says accept. */
  if (len > 12 && l[12] != ' ') return HSP_HTTP_ESTATUS;
  for (size_t i = 13; i < len; i++)
    if (!is_field_char(l[i])) return HSP_HTTP_ESTATUS;
  p->msg.status = status;
  sl->status = status;
  sl->reason = len > 13 ? (hsp_http_str_t){(const char *)l + 13, len - 13}
                        : (hsp_http_str_t){"", 0};
  return 0;
}

static int on_start_line(hsp_http_parser_t *p, const uint8_t *l, size_t len) {
  hsp_http_start_line_t sl;
  memset(&sl, 0, sizeof sl);
  int rc = p->type == HSP_HTTP_REQUEST ? parse_request_line(p, l, len, &sl)
                                       : parse_status_line(p, l, len, &sl);
  if (rc) return rc;
  sl.version_major = p->msg.version_major;
  sl.version_minor = p->msg.version_minor;
  p->state = S_HEADER;
  return p->cb->on_start_line ? cb_result(p->cb->on_start_line(p->data, &sl)) : 0;
}

/* Splits "name: value" after validating both; the value is trimmed of OWS. */
static int split_field(const uint8_t *l, size_t len, hsp_http_str_t *name,
                       hsp_http_str_t *value) {
  if (is_ows(l[0])) return HSP_HTTP_EOBS_FOLD;
  size_t i = 0;
  while (i < len && is_tchar(l[i])) i++;
  /* Also rejects whitespace between name and colon (RFC 9112 §5.1: MUST reject). */
  if (i == 0 || i == len || l[i] != ':') return HSP_HTTP_EHEADER;
  for (size_t j = i + 1; j < len; j++)
    if (!is_field_char(l[j])) return HSP_HTTP_EHEADER;
  *name = (hsp_http_str_t){(const char *)l, i};
  *value = trim_ows((const char *)l + i + 1, len - i - 1);
  return 0;
}

static int parse_content_length(hsp_http_parser_t *p, hsp_http_str_t v) {
  /* RFC 9110 §8.6 lets a recipient merge identical repeated values ("5, 5", or the field
   * twice). We refuse them as llhttp does: a gateway that accepts what the server behind it
   * refuses, or reads differently, is how requests get smuggled. */
  if (p->flags & F_CONTENT_LENGTH) return HSP_HTTP_ECONTENT_LENGTH;
  if (v.len == 0) return HSP_HTTP_ECONTENT_LENGTH;
  uint64_t n = 0;
  for (size_t i = 0; i < v.len; i++) {
    uint8_t c = (uint8_t)v.p[i];
    if (c < '0' || c > '9') return HSP_HTTP_ECONTENT_LENGTH;
    if (n > (UINT64_MAX / 2 - 9) / 10) return HSP_HTTP_ECONTENT_LENGTH;
    n = n * 10 + (c - '0');
  }
  p->msg.content_length = n;
  p->flags |= F_CONTENT_LENGTH;
  return 0;
}

static int parse_transfer_encoding(hsp_http_parser_t *p, hsp_http_str_t v) {
  hsp_http_str_t rest = v, e;
  p->flags |= F_TE;
  /* Empty elements ("chunked ,") are legal list syntax, but a server that takes the last
   * element literally would not see chunked last: refuse them, as llhttp does. */
  if (trim_ows(v.p, v.len).len == 0) return HSP_HTTP_ETRANSFER_ENCODING;
  for (size_t i = 0, start = 0; i <= v.len; i++) {
    if (i < v.len && v.p[i] != ',') continue;
    if (trim_ows(v.p + start, i - start).len == 0) return HSP_HTTP_ETRANSFER_ENCODING;
    start = i + 1;
  }
  while (list_next(&rest, &e)) {
    if (str_ieq(e.p, e.len, "chunked")) {
      /* chunked twice is never valid (RFC 9112 §7). */
      if (p->flags & F_TE_CHUNKED_SEEN) return HSP_HTTP_ETRANSFER_ENCODING;
      p->flags |= F_TE_CHUNKED | F_TE_CHUNKED_SEEN;
    } else {
      if (p->flags & F_TE_CHUNKED) p->flags |= F_TE_NOT_LAST;
      p->flags = (p->flags & ~F_TE_CHUNKED) | F_TE_OTHER;
    }
  }
  return 0;
}

static void parse_connection(hsp_http_parser_t *p, hsp_http_str_t v) {
  hsp_http_str_t rest = v, e;
  while (list_next(&rest, &e)) {
    if (str_ieq(e.p, e.len, "close")) p->flags |= F_CONN_CLOSE;
    else if (str_ieq(e.p, e.len, "keep-alive")) p->flags |= F_CONN_KEEP_ALIVE;
    else if (str_ieq(e.p, e.len, "upgrade")) p->flags |= F_CONN_UPGRADE;
  }
}

static int on_header_line(hsp_http_parser_t *p, const uint8_t *l, size_t len) {
  hsp_http_str_t name, value;
  int rc = split_field(l, len, &name, &value);
  if (rc) return rc;
  if (++p->header_count > p->limits.max_headers) return HSP_HTTP_EHEADERS_TOO_LARGE;
  if (p->state == S_TRAILER) {
    /* Trailers never change framing: Content-Length or Transfer-Encoding here means
     * nothing to us and is passed on as an ordinary field. */
    return p->cb->on_trailer ? cb_result(p->cb->on_trailer(p->data, name, value)) : 0;
  }
  switch (name.len) {
  case 4:
    if (str_ieq(name.p, name.len, "host")) p->host_count++;
    break;
  case 6:
    if (str_ieq(name.p, name.len, "expect") && str_ieq(value.p, value.len, "100-continue"))
      p->msg.expect_continue = true;
    break;
  case 7:
    if (str_ieq(name.p, name.len, "upgrade")) p->flags |= F_UPGRADE_HEADER;
    break;
  case 10:
    if (str_ieq(name.p, name.len, "connection")) parse_connection(p, value);
    break;
  case 14:
    if (str_ieq(name.p, name.len, "content-length")) {
      /* HTAB is legal OWS, but llhttp refuses it in framing fields: so do we. */
      if (memchr(l, '\t', len)) return HSP_HTTP_ECONTENT_LENGTH;
      if ((rc = parse_content_length(p, value))) return rc;
    }
    break;
  case 17:
    if (str_ieq(name.p, name.len, "transfer-encoding")) {
      if (memchr(l, '\t', len)) return HSP_HTTP_ETRANSFER_ENCODING;
      if ((rc = parse_transfer_encoding(p, value))) return rc;
    }
    break;
  default: break;
  }
  return p->cb->on_header ? cb_result(p->cb->on_header(p->data, name, value)) : 0;
}

/* Decides the framing of the message (RFC 9112 §6.3) once all header fields are known. */
static int decide_framing(hsp_http_parser_t *p) {
  hsp_http_message_t *m = &p->msg;
  bool req = p->type == HSP_HTTP_REQUEST;
  bool v11 = m->version_minor >= 1;
  unsigned f = p->flags;

  m->keep_alive = v11 ? !(f & F_CONN_CLOSE) : (f & F_CONN_KEEP_ALIVE) && !(f & F_CONN_CLOSE);
  if ((f & F_TE) && (f & F_CONTENT_LENGTH)) return HSP_HTTP_ECL_AND_TE;

  if (req) {
    if (v11 && p->host_count != 1) return HSP_HTTP_EHOST;
    if (!v11 && p->host_count > 1) return HSP_HTTP_EHOST;
    if (f & F_TE) {
      /* RFC 9112 §6.1: a 1.0 message with Transfer-Encoding has faulty framing. */
      if (!v11) return HSP_HTTP_ETRANSFER_ENCODING;
      if (!(f & F_TE_CHUNKED) || (f & F_TE_NOT_LAST)) return HSP_HTTP_ETRANSFER_ENCODING;
      if (f & F_TE_OTHER) return HSP_HTTP_ENOT_IMPLEMENTED;
      m->body = HSP_HTTP_BODY_CHUNKED;
    } else if ((f & F_CONTENT_LENGTH) && m->content_length > 0) {
      m->body = HSP_HTTP_BODY_LENGTH;
    }
    if (m->method == HSP_HTTP_CONNECT) {
      if (m->body != HSP_HTTP_BODY_NONE) return HSP_HTTP_ECONNECT;
      m->upgrade = true;
    } else if ((f & F_UPGRADE_HEADER) && (f & F_CONN_UPGRADE)) {
      m->upgrade = true;
    }
  } else {
    if ((f & F_TE) && (f & F_TE_NOT_LAST)) {
      /* chunked followed by another coding: the length is unknown, read until close. */
      m->body = HSP_HTTP_BODY_EOF;
    } else if (f & F_TE) {
      m->body = (f & F_TE_CHUNKED) ? HSP_HTTP_BODY_CHUNKED : HSP_HTTP_BODY_EOF;
    } else if (f & F_CONTENT_LENGTH) {
      m->body = m->content_length > 0 ? HSP_HTTP_BODY_LENGTH : HSP_HTTP_BODY_NONE;
    } else {
      m->body = HSP_HTTP_BODY_EOF;
    }
    if (m->status < 200 || m->status == 204 || m->status == 304) m->body = HSP_HTTP_BODY_NONE;
    /* A 101 without Upgrade and "Connection: upgrade" switches to nothing: like llhttp,
     * treat it as an interim response. */
    if (m->status == 101 && (f & F_UPGRADE_HEADER) && (f & F_CONN_UPGRADE)) m->upgrade = true;
    if (m->body == HSP_HTTP_BODY_EOF) m->keep_alive = false;
  }
  if (m->body == HSP_HTTP_BODY_LENGTH && p->limits.max_body &&
      m->content_length > p->limits.max_body)
    return HSP_HTTP_EBODY_TOO_LARGE;
  return 0;
}

/* Ends the message and picks what comes next on the connection. Returns the status execute
 * should stop with (0 to go on). */
static int message_complete(hsp_http_parser_t *p, bool pause) {
  int rc = 0;
  if (p->cb->on_message_complete) rc = p->cb->on_message_complete(p->data, &p->msg);
  if (rc < 0) return HSP_HTTP_ECALLBACK;
  if (p->msg.upgrade) {
    p->state = S_UPGRADED;
    return HSP_HTTP_UPGRADED;
  }
  /* Interim responses (100 Continue, 103 Early Hints) are followed by the final one on the
   * same connection, unless they say the connection closes: then, as in llhttp, it ends. */
  if (!p->msg.keep_alive) {
    p->state = S_DONE;
    return HSP_HTTP_DONE;
  }
  p->awaiting_final = p->type == HSP_HTTP_RESPONSE && p->msg.status < 200;
  reset_message(p);
  return (pause || (rc & HSP_HTTP_PAUSE)) ? HSP_HTTP_PAUSED : 0;
}

static int headers_complete(hsp_http_parser_t *p) {
  int rc = decide_framing(p);
  if (rc) return rc;
  int cbrc = p->cb->on_headers_complete ? p->cb->on_headers_complete(p->data, &p->msg) : 0;
  if (cbrc < 0) return HSP_HTTP_ECALLBACK;
  if (p->type == HSP_HTTP_RESPONSE) {
    if (cbrc & HSP_HTTP_SKIP_BODY) p->msg.body = HSP_HTTP_BODY_NONE;
    if (cbrc & HSP_HTTP_TUNNEL) {
      p->msg.body = HSP_HTTP_BODY_NONE;
      p->msg.upgrade = true;
    }
  }
  bool pause = cbrc & HSP_HTTP_PAUSE;
  switch (p->msg.body) {
  case HSP_HTTP_BODY_NONE: return message_complete(p, pause);
  case HSP_HTTP_BODY_LENGTH:
    p->remaining = p->msg.content_length;
    p->state = S_BODY_LENGTH;
    break;
  case HSP_HTTP_BODY_CHUNKED: p->state = S_CHUNK_SIZE; break;
  case HSP_HTTP_BODY_EOF: p->state = S_BODY_EOF; break;
  }
  return pause ? HSP_HTTP_PAUSED : 0;
}

/* chunk = chunk-size [ chunk-ext ] CRLF; chunk-ext = *( ";" name [ "=" ( token /
 * quoted-string ) ] ). RFC 9112 allows whitespace (BWS) around ";" and "=", llhttp does
 * not, and whitespace in chunk lines is a known smuggling vector: none is accepted outside
 * quoted strings. Extensions are validated and dropped. */
static int parse_chunk_size(const uint8_t *l, size_t len, uint64_t *size) {
  size_t i = 0;
  uint64_t n = 0;
  while (i < len && hexval(l[i]) >= 0) {
    if (i == 16) return HSP_HTTP_ECHUNK;
    n = n << 4 | (uint64_t)hexval(l[i]);
    i++;
  }
  if (i == 0) return HSP_HTTP_ECHUNK;
  /* Beyond 2^62 no real body goes; refusing keeps body_total arithmetic safe. */
  if (n > (UINT64_MAX >> 2)) return HSP_HTTP_ECHUNK;
  while (i < len) {
    if (l[i++] != ';') return HSP_HTTP_ECHUNK;
    size_t s = i;
    while (i < len && is_tchar(l[i])) i++;
    if (i == s) return HSP_HTTP_ECHUNK;
    if (i < len && l[i] == '=') {
      i++;
      if (i < len && l[i] == '"') {
        i++;
        for (;;) {
          if (i == len) return HSP_HTTP_ECHUNK;
          uint8_t c = l[i++];
          if (c == '"') break;
          if (c == '\\') {
            if (i == len || !is_field_char(l[i])) return HSP_HTTP_ECHUNK;
            i++;
          } else if (!is_field_char(c)) {
            return HSP_HTTP_ECHUNK;
          }
        }
      } else {
        s = i;
        while (i < len && is_tchar(l[i])) i++;
        if (i == s) return HSP_HTTP_ECHUNK;
      }
    }
  }
  *size = n;
  return 0;
}

static size_t header_room(const hsp_http_parser_t *p) {
  /* Bytes left for the next line before its LF; the LF itself needs one more. */
  size_t used = p->header_bytes + 1;
  return p->limits.max_header_bytes > used ? p->limits.max_header_bytes - used : 0;
}

/* One step of the machine: consumes from in[*pos..] and returns 0 to go on, or the status
 * or error execute returns. */
static int step(hsp_http_parser_t *p, const uint8_t *in, size_t len, size_t *pos) {
  const uint8_t *l = NULL;
  size_t ll = 0;
  int rc;
  switch (p->state) {
  case S_START_LINE: {
    size_t max = p->limits.max_start_line;
    int err = p->type == HSP_HTTP_REQUEST ? HSP_HTTP_EURI_TOO_LONG : HSP_HTTP_ESTATUS;
    /* The empty lines allowed before a request line must fit the limit too. */
    if ((rc = read_line(p, in, len, pos, max + 1, err, &l, &ll)) <= 0) return rc;
    if (ll > max) return err;
    if (ll == 0 && p->type == HSP_HTTP_REQUEST) return 0;
    if (ll == 0) return HSP_HTTP_ESTATUS;
    return on_start_line(p, l, ll);
  }
  case S_HEADER:
  case S_TRAILER: {
    size_t room = header_room(p);
    if ((rc = read_line(p, in, len, pos, room, HSP_HTTP_EHEADERS_TOO_LARGE, &l, &ll)) <= 0)
      return rc;
    p->header_bytes += ll + 2;
    if (ll == 0) {
      if (p->state == S_TRAILER) return message_complete(p, false);
      return headers_complete(p);
    }
    return on_header_line(p, l, ll);
  }
  case S_CHUNK_SIZE: {
    uint64_t size;
    if ((rc = read_line(p, in, len, pos, p->limits.max_chunk_line, HSP_HTTP_ECHUNK, &l,
                        &ll)) <= 0)
      return rc == HSP_HTTP_ECRLF ? HSP_HTTP_ECHUNK : rc;
    if ((rc = parse_chunk_size(l, ll, &size))) return rc;
    if (size == 0) {
      p->state = S_TRAILER;
      p->header_bytes = 0;
      p->header_count = 0;
      return 0;
    }
    p->body_total += size;
    if (p->limits.max_body && p->body_total > p->limits.max_body)
      return HSP_HTTP_EBODY_TOO_LARGE;
    p->remaining = size;
    p->state = S_CHUNK_DATA;
    return 0;
  }
  case S_CHUNK_END:
    if ((rc = read_line(p, in, len, pos, 1, HSP_HTTP_ECHUNK, &l, &ll)) <= 0)
      return rc == HSP_HTTP_ECRLF ? HSP_HTTP_ECHUNK : rc;
    if (ll != 0) return HSP_HTTP_ECHUNK;
    p->state = S_CHUNK_SIZE;
    return 0;
  case S_BODY_LENGTH:
  case S_CHUNK_DATA:
  case S_BODY_EOF: {
    size_t n = len - *pos;
    if (p->state != S_BODY_EOF && n > p->remaining) n = (size_t)p->remaining;
    const uint8_t *b = in + *pos;
    bool over = false;
    if (p->state == S_BODY_EOF) {
      /* Deliver up to the limit and fail on the first byte beyond it, so the events do not
       * depend on how the input was split. */
      if (p->limits.max_body && n > p->limits.max_body - p->body_total) {
        n = (size_t)(p->limits.max_body - p->body_total);
        over = true;
      }
      p->body_total += n;
    } else {
      p->remaining -= n;
    }
    *pos += n;
    rc = 0;
    if (n && p->cb->on_body) rc = p->cb->on_body(p->data, b, n);
    if (rc < 0) return HSP_HTTP_ECALLBACK;
    if (over) return HSP_HTTP_EBODY_TOO_LARGE;
    bool pause = rc & HSP_HTTP_PAUSE;
    if (p->state != S_BODY_EOF && p->remaining == 0) {
      if (p->state == S_CHUNK_DATA) {
        p->state = S_CHUNK_END;
      } else {
        return message_complete(p, pause);
      }
    }
    return pause ? HSP_HTTP_PAUSED : 0;
  }
  case S_UPGRADED: return HSP_HTTP_UPGRADED;
  case S_DONE: return HSP_HTTP_DONE;
  }
  return 0;
}

int hsp_http_parser_execute(hsp_http_parser_t *p, const uint8_t *bytes, size_t len,
                            size_t *consumed) {
  size_t pos = 0;
  int rc = p->error;
  if (!rc && p->state == S_UPGRADED) rc = HSP_HTTP_UPGRADED;
  if (!rc && p->state == S_DONE) rc = HSP_HTTP_DONE;
  while (!rc && pos < len) rc = step(p, bytes, len, &pos);
  if (rc < 0) {
    p->error = rc;
  }
  *consumed = pos;
  return rc;
}

int hsp_http_parser_finish(hsp_http_parser_t *p) {
  if (p->error) return p->error;
  switch (p->state) {
  case S_BODY_EOF: {
    int rc = message_complete(p, false);
    return rc < 0 ? (p->error = rc) : 0;
  }
  case S_START_LINE:
    if (p->buffered == 0 && !p->awaiting_final) return 0;
    break;
  case S_UPGRADED:
  case S_DONE: return 0;
  default: break;
  }
  return p->error = HSP_HTTP_EINCOMPLETE;
}

size_t hsp_http_chunk_header(char *out, uint64_t size) {
  static const char digits[] = "0123456789abcdef";
  char tmp[16];
  size_t n = 0;
  do {
    tmp[n++] = digits[size & 15];
    size >>= 4;
  } while (size);
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  out[n] = '\r';
  out[n + 1] = '\n';
  return n + 2;
}
