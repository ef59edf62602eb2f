/*
 * HTTP parser tests. Every case is a byte string and the exact transcript of events it must
 * produce; each is fed whole, byte by byte, and in several other split patterns, and every
 * split must give the same transcript (body slices are joined, since their boundaries follow
 * the input's).
 */
#include "check.h"
#include "http.h"

#include <stdarg.h>
#include <stdlib.h>

typedef struct rec {
  char log[8192];
  size_t len;
  bool last_body;
  int hc_ret; /* returned by on_headers_complete */
  int body_ret;
  int fail_on_header; /* return -1 from on_header */
} rec_t;

static void logf_(rec_t *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(r->log + r->len, sizeof r->log - r->len, fmt, ap);
  va_end(ap);
  if (n > 0) r->len += (size_t)n < sizeof r->log - r->len ? (size_t)n : sizeof r->log - r->len - 1;
  r->last_body = false;
}

static int on_start(void *d, const hsp_http_start_line_t *l) {
  rec_t *r = d;
  if (l->target.p)
    logf_(r, "REQ %.*s(%d) %.*s %d.%d\n", (int)l->method_name.len, l->method_name.p,
          (int)l->method, (int)l->target.len, l->target.p, l->version_major, l->version_minor);
  else
    logf_(r, "RES %d '%.*s' %d.%d\n", l->status, (int)l->reason.len, l->reason.p,
          l->version_major, l->version_minor);
  return 0;
}
static int on_header(void *d, hsp_http_str_t n, hsp_http_str_t v) {
  rec_t *r = d;
  logf_(r, "H %.*s=[%.*s]\n", (int)n.len, n.p, (int)v.len, v.p);
  return r->fail_on_header ? -1 : 0;
}
static const char *body_kind[] = {"none", "len", "chunked", "eof"};
static int on_hc(void *d, const hsp_http_message_t *m) {
  rec_t *r = d;
  logf_(r, "HC %s", body_kind[m->body]);
  if (m->body == HSP_HTTP_BODY_LENGTH) logf_(r, "=%llu", (unsigned long long)m->content_length);
  logf_(r, " ka=%d%s%s\n", m->keep_alive, m->upgrade ? " up" : "",
        m->expect_continue ? " expect" : "");
  return r->hc_ret;
}
static int on_body(void *d, const uint8_t *b, size_t n) {
  rec_t *r = d;
  if (r->last_body && r->len) r->len--; /* join with the previous slice: drop its "\n" */
  else logf_(r, "B ");
  logf_(r, "%.*s\n", (int)n, (const char *)b);
  r->last_body = true;
  return r->body_ret;
}
static int on_trailer(void *d, hsp_http_str_t n, hsp_http_str_t v) {
  logf_(d, "T %.*s=[%.*s]\n", (int)n.len, n.p, (int)v.len, v.p);
  return 0;
}
static int on_mc(void *d, const hsp_http_message_t *m) {
  (void)m;
  logf_(d, "MC\n");
  return 0;
}
static const hsp_http_callbacks_t cbs = {on_start, on_header, on_hc, on_body, on_trailer, on_mc};

typedef struct tcase {
  hsp_http_type_t type;
  const char *in;
  const char *expect;
  int hc_ret;
  const hsp_http_limits_t *limits;
  bool suffix; /* expect only the end of the transcript (same for every split) */
} tcase_t;

/* Feeds `in` in pieces of the sizes in `splits` (cycled; 0 means the rest at once). */
static void run(const tcase_t *t, const size_t *splits, size_t nsplits, rec_t *r) {
  static uint8_t scratch[16384];
  hsp_http_parser_t p;
  memset(r, 0, sizeof *r);
  r->hc_ret = t->hc_ret;
  hsp_http_parser_init(&p, t->type, &cbs, r, scratch, sizeof scratch, t->limits);
  size_t len = strlen(t->in), pos = 0, k = 0;
  const uint8_t *in = (const uint8_t *)t->in;
  while (pos < len) {
    size_t n = splits[k++ % nsplits];
    if (n == 0 || n > len - pos) n = len - pos;
    size_t end = pos + n;
    while (pos < end) {
      size_t used;
      int rc = hsp_http_parser_execute(&p, in + pos, end - pos, &used);
      pos += used;
      if (rc == HSP_HTTP_PAUSED) continue;
      if (rc == HSP_HTTP_OK) break;
      if (rc == HSP_HTTP_UPGRADED || rc == HSP_HTTP_DONE) {
        logf_(r, "%s rest=[%s]\n", rc == HSP_HTTP_DONE ? "DONE" : "UPGRADED", t->in + pos);
      } else {
        logf_(r, "ERR %s\n", hsp_http_strerror(rc));
      }
      return;
    }
  }
  int rc = hsp_http_parser_finish(&p);
  if (rc) logf_(r, "ERR %s\n", hsp_http_strerror(rc));
}

static int cases_run;

static void expect_case(const tcase_t *t, int line) {
  static const size_t whole[] = {0}, one[] = {1}, two[] = {2}, three[] = {3}, seven[] = {7},
                      mixed[] = {5, 1, 11, 2, 64, 3}, big[] = {37, 101};
  static const struct {
    const size_t *s;
    size_t n;
  } patterns[] = {{whole, 1}, {one, 1}, {two, 1}, {three, 1}, {seven, 1}, {mixed, 6}, {big, 2}};
  static rec_t first;
  cases_run++;
  for (size_t i = 0; i < sizeof patterns / sizeof *patterns; i++) {
    rec_t r;
    run(t, patterns[i].s, patterns[i].n, &r);
    size_t el = strlen(t->expect);
    bool ok = t->suffix ? r.len >= el && strcmp(r.log + r.len - el, t->expect) == 0 &&
                              (i == 0 || strcmp(r.log, first.log) == 0)
                        : strcmp(r.log, t->expect) == 0;
    if (i == 0) first = r;
    if (!ok) {
      check_failed++;
      fprintf(stderr, "test_http.c:%d: split pattern %zu:\n--- expected\n%s--- got\n%s---\n",
              line, i, t->expect, r.log);
      return;
    }
    check_passed++;
  }
}

#define REQ(in, expect) expect_case(&(tcase_t){HSP_HTTP_REQUEST, in, expect, 0, NULL, false}, __LINE__)
#define RES(in, expect) expect_case(&(tcase_t){HSP_HTTP_RESPONSE, in, expect, 0, NULL, false}, __LINE__)
#define RES_HC(in, hc, expect)                                                                 \
  expect_case(&(tcase_t){HSP_HTTP_RESPONSE, in, expect, hc, NULL, false}, __LINE__)
#define REQ_LIM(lim, in, expect)                                                               \
  expect_case(&(tcase_t){HSP_HTTP_REQUEST, in, expect, 0, lim, false}, __LINE__)
#define BAD(in, err)                                                                           \
  expect_case(&(tcase_t){HSP_HTTP_REQUEST, in, "ERR " err "\n", 0, NULL, true}, __LINE__)

#define GET1 "REQ GET(1) / 1.1\nH Host=[a]\n"

static void test_valid_requests(void) {
  REQ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", GET1 "HC none ka=1\nMC\n");
  REQ("POST /submit?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello",
      "REQ POST(3) /submit?x=1 1.1\nH Host=[example.com]\nH Content-Length=[5]\n"
      "HC len=5 ka=1\nB hello\nMC\n");
  REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
      "REQ POST(3) / 1.1\nH Host=[a]\nH Content-Length=[0]\nHC none ka=1\nMC\n");
  /* Chunked, with extensions (token and quoted), uppercase hex and trailers. */
  REQ("PUT /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=val\r\nhello\r\n"
      "A;q=\"a \\\"b\\\" c\";flag\r\n0123456789\r\n"
      "0\r\nChecksum: abc\r\nX-T:  z \r\n\r\n",
      "REQ PUT(4) /f 1.1\nH Host=[a]\nH Transfer-Encoding=[chunked]\nHC chunked ka=1\n"
      "B hello0123456789\nT Checksum=[abc]\nT X-T=[z]\nMC\n");
  REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n",
      "REQ POST(3) / 1.1\nH Host=[a]\nH Transfer-Encoding=[Chunked]\nHC chunked ka=1\nMC\n");
  /* Large chunk sizes with leading zeros are fine. */
  REQ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0000000000000003\r\nabc\r\n0\r\n\r\n",
      "REQ POST(3) / 1.1\nH Host=[a]\nH Transfer-Encoding=[chunked]\nHC chunked ka=1\n"
      "B abc\nMC\n");
  /* Pipelining: three requests in one stream, in order. */
  REQ("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
      "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
      "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
      "REQ GET(1) /1 1.1\nH Host=[a]\nHC none ka=1\nMC\n"
      "REQ POST(3) /2 1.1\nH Host=[a]\nH Content-Length=[3]\nHC len=3 ka=1\nB abc\nMC\n"
      "REQ GET(1) /3 1.1\nH Host=[a]\nHC none ka=1\nMC\n");
  /* Empty lines before a request line are skipped (RFC 9112 §2.2). */
  REQ("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", GET1 "HC none ka=1\nMC\n");
  /* HTTP/1.0: closes unless asked otherwise; Host is optional. */
  REQ("GET / HTTP/1.0\r\n\r\nGET /next HTTP/1.0\r\n\r\n",
      "REQ GET(1) / 1.0\nHC none ka=0\nMC\nDONE rest=[GET /next HTTP/1.0\r\n\r\n]\n");
  REQ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
      "REQ GET(1) / 1.0\nH Connection=[keep-alive]\nHC none ka=1\nMC\n"
      "REQ GET(1) /2 1.0\nHC none ka=0\nMC\nDONE rest=[]\n");
  REQ("GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, close\r\n\r\nxyz",
      GET1 "H Connection=[Keep-Alive, close]\nHC none ka=0\nMC\nDONE rest=[xyz]\n");
  /* Only 1.0 and 1.1 (llhttp refuses 1.2 too, though RFC 9112 would read it as 1.1). */
  BAD("GET / HTTP/1.2\r\nHost: a\r\n\r\n", "HTTP version not supported");
  /* OWS around values is trimmed, inner spaces kept; empty values and obs-text allowed. */
  REQ("GET / HTTP/1.1\r\nHost: a\r\nX-A:   b  c \t\r\nX-Empty:\r\nX-Utf8: \xc3\xa9t\xc3\xa9\r\n\r\n",
      GET1 "H X-A=[b  c]\nH X-Empty=[]\nH X-Utf8=[\xc3\xa9t\xc3\xa9]\nHC none ka=1\nMC\n");
  /* Leading zeros are digits like any other. */
  REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 002\r\n\r\nok",
      "REQ POST(3) / 1.1\nH Host=[a]\nH Content-Length=[002]\nHC len=2 ka=1\nB ok\nMC\n");
  /* Methods: any token passes; known ones are recognised case-sensitively. */
  REQ("PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n", "REQ PURGE(0) /x 1.1\nH Host=[a]\nHC none ka=1\nMC\n");
  REQ("get / HTTP/1.1\r\nHost: a\r\n\r\n", "REQ get(0) / 1.1\nH Host=[a]\nHC none ka=1\nMC\n");
  REQ("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
      "REQ OPTIONS(7) * 1.1\nH Host=[a]\nHC none ka=1\nMC\n");
  REQ("GET http://h:8/p?q HTTP/1.1\r\nHost: h:8\r\n\r\n",
      "REQ GET(1) http://h:8/p?q 1.1\nH Host=[h:8]\nHC none ka=1\nMC\n");
  REQ("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
      "REQ POST(3) / 1.1\nH Host=[a]\nH Expect=[100-continue]\nH Content-Length=[1]\n"
      "HC len=1 ka=1 expect\nB x\nMC\n");
  /* Upgrade: the bytes after the request belong to the tunnel. */
  REQ("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello",
      "REQ GET(1) /ws 1.1\nH Host=[a]\nH Upgrade=[websocket]\nH Connection=[Upgrade]\n"
      "HC none ka=1 up\nMC\nUPGRADED rest=[\x81\x05hello]\n");
  /* Upgrade without "Connection: upgrade" is not an upgrade. */
  REQ("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n",
      GET1 "H Upgrade=[h2c]\nHC none ka=1\nMC\n");
  REQ("CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\nraw bytes",
      "REQ CONNECT(6) db:5432 1.1\nH Host=[db:5432]\nHC none ka=1 up\nMC\n"
      "UPGRADED rest=[raw bytes]\n");
}

static void test_invalid_requests(void) {
  BAD("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target");
  BAD("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", "invalid HTTP version");
  BAD("GET / HTTP/1.10\r\nHost: a\r\n\r\n", "invalid HTTP version");
  BAD("GET / http/1.1\r\nHost: a\r\n\r\n", "invalid HTTP version");
  BAD("GET /\r\nHost: a\r\n\r\n", "invalid request target");
  BAD("GET / HTTP/2.0\r\nHost: a\r\n\r\n", "HTTP version not supported");
  BAD("GET / HTTP/0.9\r\n\r\n", "HTTP version not supported");
  BAD("G@T / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid method");
  BAD(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid method");
  BAD("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target");
  BAD("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target");
  BAD("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target");
  BAD("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target");
  /* Target forms (RFC 9112 3.2). */
  BAD("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target");
  BAD("GET * HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target");
  BAD("GET h:80 HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target");
  BAD("GET ://x/ HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target");
  BAD("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target");
  BAD("CONNECT host HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target");
  REQ("GET svn+ssh://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
      "REQ GET(1) svn+ssh://h/x 1.1\nH Host=[h]\nHC none ka=1\nMC\n");
  /* Line endings: bare LF and bare CR anywhere. */
  BAD("GET / HTTP/1.1\nHost: a\r\n\r\n", "line not terminated by CRLF");
  BAD("GET / HTTP/1.1\r\nHost: a\n\r\n", "line not terminated by CRLF");
  BAD("GET / HTTP/1.1\r\nHost: a\r\n\n", "line not terminated by CRLF");
  BAD("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "line not terminated by CRLF");
  BAD("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", "invalid header field");
  BAD("GET / HTTP/1.1\rHost: a\r\n\r\n", "invalid HTTP version");
  /* Header syntax. */
  BAD("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n", "obsolete line folding");
  BAD("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", "obsolete line folding");
  BAD("GET / HTTP/1.1\r\nHost : a\r\n\r\n", "invalid header field");
  BAD("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", "invalid header field");
  BAD("GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", "invalid header field");
  BAD("GET / HTTP/1.1\r\nHost a\r\n\r\n", "invalid header field");
  BAD("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", "invalid header field");
  BAD("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n", "invalid header field");
  BAD("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", "invalid header field");
  /* Host: HTTP/1.1 needs exactly one. */
  BAD("GET / HTTP/1.1\r\n\r\n", "missing or duplicate Host");
  BAD("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", "missing or duplicate Host");
  BAD("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", "missing or duplicate Host");
  /* Smuggling: Content-Length. */
  BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "both Content-Length and Transfer-Encoding");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
      "both Content-Length and Transfer-Encoding");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
      "invalid Content-Length");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", "invalid Content-Length");
  /* Even identical repeats: RFC 9110 allows merging them, llhttp does not, so neither do we. */
  BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\n\r\nok", "invalid Content-Length");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
      "invalid Content-Length");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", "invalid Content-Length");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n", "invalid Content-Length");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", "invalid Content-Length");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", "invalid Content-Length");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\t\r\n\r\n", "invalid Content-Length");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n", "invalid Transfer-Encoding");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", "invalid Content-Length");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ,\r\n\r\n", "invalid Content-Length");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
      "invalid Content-Length");
  /* Smuggling: Transfer-Encoding. */
  BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
      "invalid Transfer-Encoding");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
      "invalid Transfer-Encoding");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
      "invalid Transfer-Encoding");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
      "invalid Transfer-Encoding");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
      "invalid Transfer-Encoding");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", "invalid Transfer-Encoding");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked ,\r\n\r\n", "invalid Transfer-Encoding");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n", "invalid Transfer-Encoding");
  BAD("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "invalid Transfer-Encoding");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      "transfer coding not implemented");
  BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
      "transfer coding not implemented");
  /* Chunk framing. */
#define CH "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
#define CH_EV "REQ POST(3) / 1.1\nH Host=[a]\nH Transfer-Encoding=[chunked]\nHC chunked ka=1\n"
  REQ(CH "g\r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH "\r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH "-5\r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH "0x5\r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH " 5\r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH "10000000000000000\r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH "ffffffffffffffff\r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH "5\nhello\r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH "5\r\nhelloX\r\n", CH_EV "B hello\nERR invalid chunk\n");
  REQ(CH "5\r\nhello\n0\r\n\r\n", CH_EV "B hello\nERR invalid chunk\n");
  REQ(CH "5;\r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH "5;a=\r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH "5;a=\"x\r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH "5;a=b c\r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH "5 x\r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH "5 \r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH "5 ;a=b\r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH "5; a=b\r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH "5;a =b\r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH "5;a= b\r\n", CH_EV "ERR invalid chunk\n");
  REQ(CH "5\r\nhello\r\n0\r\nBad Trailer: x\r\n\r\n", CH_EV "B hello\nERR invalid header field\n");
  REQ(CH "0\r\n\r", CH_EV "ERR stream ended inside a message\n");
  /* CONNECT carries no body. */
  BAD("CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\nContent-Length: 3\r\n\r\nabc", "CONNECT with a body");
  /* Streams that end inside a message. */
  BAD("GET / HTTP/1.1\r\nHost: a\r\n", "stream ended inside a message");
  BAD("GET / HTT", "stream ended inside a message");
  REQ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel",
      "REQ POST(3) / 1.1\nH Host=[a]\nH Content-Length=[5]\nHC len=5 ka=1\nB hel\n"
      "ERR stream ended inside a message\n");
  /* Errors are sticky: after one, nothing further is parsed. */
  BAD("G@T / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid method");
}

static void test_limits(void) {
  hsp_http_limits_t lim = hsp_http_default_limits();
  lim.max_start_line = 20;
  lim.max_header_bytes = 40;
  lim.max_headers = 3;
  lim.max_chunk_line = 8;
  lim.max_body = 10;
  /* "GET /123456 HTTP/1.1" is exactly 20. */
  REQ_LIM(&lim, "GET /123456 HTTP/1.1\r\nHost: a\r\n\r\n",
          "REQ GET(1) /123456 1.1\nH Host=[a]\nHC none ka=1\nMC\n");
  REQ_LIM(&lim, "GET /1234567 HTTP/1.1\r\nHost: a\r\n\r\n", "ERR request line too long\n");
  REQ_LIM(&lim, "GET /1234567890123456789012345678901234567890", "ERR request line too long\n");
  /* Header section: 9 + 28 + 2 = 39 bytes fit in 40, one more does not. */
  REQ_LIM(&lim, "GET / HTTP/1.1\r\nHost: a\r\nX: 12345678901234567890123\r\n\r\n",
          "REQ GET(1) / 1.1\nH Host=[a]\nH X=[12345678901234567890123]\nHC none ka=1\nMC\n");
  REQ_LIM(&lim, "GET / HTTP/1.1\r\nHost: a\r\nX: 123456789012345678901234\r\n\r\n",
          "REQ GET(1) / 1.1\nH Host=[a]\nH X=[123456789012345678901234]\nHC none ka=1\nMC\n");
  REQ_LIM(&lim, "GET / HTTP/1.1\r\nHost: a\r\nX: 1234567890123456789012345\r\n\r\n",
          "REQ GET(1) / 1.1\nH Host=[a]\nH X=[1234567890123456789012345]\n"
          "ERR header section too large\n");
  REQ_LIM(&lim, "GET / HTTP/1.1\r\nHost: a\r\nX: 1234567890123456789012345678901234567890\r\n",
          "REQ GET(1) / 1.1\nH Host=[a]\nERR header section too large\n");
  REQ_LIM(&lim, "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
          "REQ GET(1) / 1.1\nH Host=[a]\nH A=[1]\nH B=[2]\nERR header section too large\n");
  /* Body limits: declared length, chunk sums, chunk line length. */
  lim.max_header_bytes = 1000;
  REQ_LIM(&lim, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n",
          "REQ POST(3) / 1.1\nH Host=[a]\nH Content-Length=[11]\nERR body too large\n");
  REQ_LIM(&lim, CH "6\r\nabcdef\r\n5\r\n",
          CH_EV "B abcdef\nERR body too large\n");
  REQ_LIM(&lim, CH "5;abcdef\r\n", CH_EV "ERR invalid chunk\n");
  REQ_LIM(&lim, CH "5;abcde\r\nhello\r\n0\r\n\r\n", CH_EV "B hello\nMC\n");
  /* A body until close is cut at the limit whatever the input's pieces. */
  expect_case(&(tcase_t){HSP_HTTP_RESPONSE, "HTTP/1.1 200 OK\r\n\r\n0123456789abc",
                         "RES 200 'OK' 1.1\nHC eof ka=0\nB 0123456789\nERR body too large\n", 0,
                         &lim, false},
              __LINE__);
  /* A trailer section obeys the header limits. */
  lim.max_headers = 1;
  REQ_LIM(&lim, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: a\r\n\r\n",
          "REQ POST(3) / 1.1\nH Transfer-Encoding=[chunked]\nERR header section too large\n");
  lim.max_headers = 2;
  REQ_LIM(&lim, CH "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
          CH_EV "T A=[1]\nT B=[2]\nERR header section too large\n");

  /* The error statuses a server answers with. */
  CHECK_EQ_INT(hsp_http_error_status(HSP_HTTP_EURI_TOO_LONG), 414);
  CHECK_EQ_INT(hsp_http_error_status(HSP_HTTP_EHEADERS_TOO_LARGE), 431);
  CHECK_EQ_INT(hsp_http_error_status(HSP_HTTP_EBODY_TOO_LARGE), 413);
  CHECK_EQ_INT(hsp_http_error_status(HSP_HTTP_ENOT_IMPLEMENTED), 501);
  CHECK_EQ_INT(hsp_http_error_status(HSP_HTTP_EVERSION_UNSUP), 505);
  CHECK_EQ_INT(hsp_http_error_status(HSP_HTTP_ECL_AND_TE), 400);
  CHECK_EQ_INT(hsp_http_error_status(HSP_HTTP_ECHUNK), 400);
  CHECK_EQ_INT(hsp_http_error_status(HSP_HTTP_ECRLF), 400);
  for (int e = -1; e >= HSP_HTTP_ENOSPACE; e--) CHECK(strcmp(hsp_http_strerror(e), "unknown error") != 0);
}

static void test_responses(void) {
  RES("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
      "RES 200 'OK' 1.1\nH Content-Length=[2]\nHC len=2 ka=1\nB hi\nMC\n");
  RES("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx",
      "RES 404 'Not Found' 1.1\nH Content-Length=[0]\nHC none ka=1\nMC\n"
      "RES 200 '' 1.1\nH Content-Length=[1]\nHC len=1 ka=1\nB x\nMC\n");
  RES("HTTP/1.1 200 \r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      "RES 200 '' 1.1\nH Transfer-Encoding=[chunked]\nHC chunked ka=1\nB abc\nMC\n");
  /* No length: the body runs to the end of the stream, completed by finish(). */
  RES("HTTP/1.1 200 OK\r\n\r\nall of it",
      "RES 200 'OK' 1.1\nHC eof ka=0\nB all of it\nMC\n");
  RES("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nxtrailing",
      "RES 200 'OK' 1.0\nH Content-Length=[1]\nHC len=1 ka=0\nB x\nMC\nDONE rest=[trailing]\n");
  /* Codings other than a final chunked: read until close (RFC 9112 §6.3). */
  RES("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz",
      "RES 200 'OK' 1.1\nH Transfer-Encoding=[gzip]\nHC eof ka=0\nB zz\nMC\n");
  RES("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\n",
      "RES 200 'OK' 1.1\nH Transfer-Encoding=[gzip, chunked]\nHC chunked ka=1\nB zz\nMC\n");
  /* 1xx, 204, 304 have no body whatever they say. */
  RES("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
      "RES 100 'Continue' 1.1\nHC none ka=1\nMC\n"
      "RES 204 'No Content' 1.1\nH Content-Length=[5]\nHC none ka=1\nMC\n"
      "RES 304 'Not Modified' 1.1\nH Content-Length=[5]\nHC none ka=1\nMC\n");
  RES("HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
      "RES 100 'Continue' 1.1\nH Connection=[close]\nHC none ka=0\nMC\n"
      "DONE rest=[HTTP/1.1 200 OK\r\n\r\n]\n");
  RES("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
      "RES 101 'Switching Protocols' 1.1\nH Upgrade=[websocket]\nHC none ka=1\nMC\n"
      "RES 200 'OK' 1.1\nH Content-Length=[0]\nHC none ka=1\nMC\n");
  RES("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nframes",
      "RES 101 'Switching Protocols' 1.1\nH Upgrade=[websocket]\nH Connection=[Upgrade]\n"
      "HC none ka=1 up\nMC\nUPGRADED rest=[frames]\n");
  /* The caller knows the request: HEAD responses and CONNECT tunnels. */
  RES_HC("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
         HSP_HTTP_SKIP_BODY,
         "RES 200 'OK' 1.1\nH Content-Length=[10]\nHC len=10 ka=1\nMC\n"
         "RES 200 'OK' 1.1\nH Content-Length=[0]\nHC none ka=1\nMC\n");
  RES_HC("HTTP/1.1 200 Connection Established\r\n\r\ntunnel", HSP_HTTP_TUNNEL,
         "RES 200 'Connection Established' 1.1\nHC eof ka=0\nMC\nUPGRADED rest=[tunnel]\n");
  /* The stream may not end after an interim response: the final one is missing. */
  RES("HTTP/1.1 100 Continue\r\n\r\n",
      "RES 100 'Continue' 1.1\nHC none ka=1\nMC\nERR stream ended inside a message\n");
  RES("HTTP/1.1 2000 OK\r\n\r\n", "ERR invalid status line\n");
  RES("HTTP/1.1 20 OK\r\n\r\n", "ERR invalid status line\n");
  RES("HTTP/1.1 099 OK\r\n\r\n", "ERR invalid status line\n");
  RES("HTTP/1.1 200OK\r\n\r\n", "ERR invalid status line\n");
  RES("HTTP/2 200 OK\r\n\r\n", "ERR invalid HTTP version\n");
  RES("HTTP/2.0 200 OK\r\n\r\n", "ERR HTTP version not supported\n");
  RES("\r\nHTTP/1.1 200 OK\r\n\r\n", "ERR invalid status line\n");
  RES("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "RES 200 'OK' 1.1\nH Content-Length=[1]\nH Transfer-Encoding=[chunked]\n"
      "ERR both Content-Length and Transfer-Encoding\n");
  RES("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", "RES 200 'OK' 1.1\nH Content-Length=[1]\n"
      "HC len=1 ka=1\nERR stream ended inside a message\n");
}

/* Callbacks that pause: execute stops right after the event and resumes where it stopped. */
static int pause_body(void *d, const uint8_t *b, size_t n) {
  (void)b;
  *(size_t *)d += n;
  return HSP_HTTP_PAUSE;
}
static void test_pause_and_callback_errors(void) {
  hsp_http_callbacks_t cb = {.on_body = pause_body};
  size_t seen = 0, used;
  uint8_t scratch[256];
  hsp_http_parser_t p;
  hsp_http_parser_init(&p, HSP_HTTP_REQUEST, &cb, &seen, scratch, sizeof scratch, NULL);
  const char *in = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcdGET";
  size_t len = strlen(in), head = strlen(in) - 7;
  int rc = hsp_http_parser_execute(&p, (const uint8_t *)in, len, &used);
  CHECK_EQ_INT(rc, HSP_HTTP_PAUSED);
  CHECK_EQ_INT(used, head + 4);
  CHECK_EQ_INT(seen, 4);
  rc = hsp_http_parser_execute(&p, (const uint8_t *)in + used, len - used, &used);
  CHECK_EQ_INT(rc, HSP_HTTP_OK);
  CHECK_EQ_INT(used, 3);
  CHECK_EQ_INT(hsp_http_parser_finish(&p), HSP_HTTP_EINCOMPLETE);

  rec_t r;
  memset(&r, 0, sizeof r);
  r.fail_on_header = 1;
  hsp_http_parser_init(&p, HSP_HTTP_REQUEST, &cbs, &r, scratch, sizeof scratch, NULL);
  rc = hsp_http_parser_execute(&p, (const uint8_t *)in, len, &used);
  CHECK_EQ_INT(rc, HSP_HTTP_ECALLBACK);
  CHECK_EQ_INT(hsp_http_parser_execute(&p, (const uint8_t *)"x", 1, &used), HSP_HTTP_ECALLBACK);
  CHECK_EQ_INT(used, 0);

  /* A refused upgrade: resume parses the next request on the same connection. */
  memset(&r, 0, sizeof r);
  hsp_http_parser_init(&p, HSP_HTTP_REQUEST, &cbs, &r, scratch, sizeof scratch, NULL);
  in = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
  len = strlen(in);
  rc = hsp_http_parser_execute(&p, (const uint8_t *)in, len, &used);
  CHECK_EQ_INT(rc, HSP_HTTP_UPGRADED);
  size_t first = used;
  CHECK_EQ_INT(hsp_http_parser_execute(&p, (const uint8_t *)in + first, len - first, &used),
               HSP_HTTP_UPGRADED);
  CHECK_EQ_INT(used, 0);
  hsp_http_parser_resume(&p);
  rc = hsp_http_parser_execute(&p, (const uint8_t *)in + first, len - first, &used);
  CHECK_EQ_INT(rc, HSP_HTTP_OK);
  CHECK(strstr(r.log, "REQ GET(1) /2 1.1\nH Host=[a]\nHC none ka=1\nMC\n") != NULL);

  /* A big body: counted through many executes, never held. */
  hsp_http_parser_init(&p, HSP_HTTP_REQUEST, &(hsp_http_callbacks_t){.on_body = pause_body},
                       &seen, scratch, sizeof scratch, NULL);
  seen = 0;
  const char *h = "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000\r\n\r\n";
  CHECK_EQ_INT(hsp_http_parser_execute(&p, (const uint8_t *)h, strlen(h), &used), HSP_HTTP_OK);
  static uint8_t block[65536];
  size_t total = 0;
  while (total < 100000000) {
    size_t n = 100000000 - total < sizeof block ? 100000000 - total : sizeof block;
    rc = hsp_http_parser_execute(&p, block, n, &used);
    total += used;
    if (rc != HSP_HTTP_PAUSED) break;
  }
  CHECK_EQ_INT(total, 100000000);
  CHECK_EQ_INT(seen, 100000000);
  CHECK_EQ_INT(hsp_http_parser_finish(&p), 0);
}

static void test_chunk_header(void) {
  char buf[32];
  size_t n = hsp_http_chunk_header(buf, 0);
  CHECK(n == 3 && memcmp(buf, "0\r\n", 3) == 0);
  n = hsp_http_chunk_header(buf, 0x1a2b);
  CHECK(n == 6 && memcmp(buf, "1a2b\r\n", 6) == 0);
  n = hsp_http_chunk_header(buf, UINT64_MAX);
  CHECK(n == 18 && memcmp(buf, "ffffffffffffffff\r\n", 18) == 0);
}

static void test_percent_decode(void) {
  char out[32];
  CHECK_EQ_INT(hsp_http_percent_decode(out, sizeof out, "a%20b%5E1.2+3", 13), 9);
  CHECK_EQ_STR(out, "a b^1.2+3");
  CHECK_EQ_INT(hsp_http_percent_decode(out, sizeof out, "%7c%7C", 6), 2);
  CHECK_EQ_STR(out, "||");
  CHECK_EQ_INT(hsp_http_percent_decode(out, sizeof out, "%", 1), HSP_HTTP_EROUTE);
  CHECK_EQ_INT(hsp_http_percent_decode(out, sizeof out, "%2", 2), HSP_HTTP_EROUTE);
  CHECK_EQ_INT(hsp_http_percent_decode(out, sizeof out, "%zz", 3), HSP_HTTP_EROUTE);
  CHECK_EQ_INT(hsp_http_percent_decode(out, sizeof out, "%00", 3), HSP_HTTP_EROUTE);
  CHECK_EQ_INT(hsp_http_percent_decode(out, sizeof out, "%0a", 3), HSP_HTTP_EROUTE);
  CHECK_EQ_INT(hsp_http_percent_decode(out, 4, "abcd", 4), HSP_HTTP_ENOSPACE);
  CHECK_EQ_INT(hsp_http_percent_decode(out, 5, "abcd", 4), 4);
  CHECK_EQ_INT(hsp_http_percent_decode(out, sizeof out, "", 0), 0);
  CHECK_EQ_STR(out, "");
}

static bool str_is(hsp_http_str_t s, const char *want) {
  return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

static int route(hsp_http_route_t *r, const char *t) { return hsp_http_route_parse(r, t, strlen(t)); }

static void test_routes(void) {
  hsp_http_route_t r;
  CHECK_EQ_INT(route(&r, "/role/couchdb@3.x/db/_all_docs?limit=2&x=%20"), 0);
  CHECK_EQ_INT(r.kind, HSP_HTTP_ROUTE_ROLE);
  CHECK_EQ_STR(r.name, "couchdb");
  CHECK_EQ_STR(r.range, "3.x");
  CHECK(str_is(r.path, "/db/_all_docs"));
  CHECK(r.has_query && str_is(r.query, "limit=2&x=%20"));

  CHECK_EQ_INT(route(&r, "/role/web@%5E1.2.0%20%7C%7C%202"), 0);
  CHECK_EQ_STR(r.range, "^1.2.0 || 2");
  CHECK(str_is(r.path, "/") && !r.has_query);
  CHECK_EQ_INT(route(&r, "/role/web@>=1.0.0+build/a%2Fb?"), 0);
  CHECK_EQ_STR(r.range, ">=1.0.0+build");
  CHECK(str_is(r.path, "/a%2Fb") && r.has_query && r.query.len == 0);
  CHECK_EQ_INT(route(&r, "/role/web"), 0);
  CHECK_EQ_STR(r.name, "web");
  CHECK_EQ_STR(r.range, "*");
  CHECK_EQ_INT(route(&r, "/role/web?q=1"), 0);
  CHECK(str_is(r.path, "/") && str_is(r.query, "q=1"));
  CHECK_EQ_INT(route(&r, "/role/my%2Dsvc@1/"), 0);
  CHECK_EQ_STR(r.name, "my-svc");
  CHECK(str_is(r.path, "/"));
  CHECK_EQ_INT(route(&r, "http://gw.example:8777/role/web@2/x?y"), 0);
  CHECK_EQ_INT(r.kind, HSP_HTTP_ROUTE_ROLE);
  CHECK(str_is(r.path, "/x") && str_is(r.query, "y"));
  /* Bad names, escapes and ranges. */
  CHECK_EQ_INT(route(&r, "/role/"), HSP_HTTP_EROUTE);
  CHECK_EQ_INT(route(&r, "/role//x"), HSP_HTTP_EROUTE);
  CHECK_EQ_INT(route(&r, "/role/@1.0.0"), HSP_HTTP_EROUTE);
  CHECK_EQ_INT(route(&r, "/role/web@"), HSP_HTTP_EROUTE);
  CHECK_EQ_INT(route(&r, "/role/a%2Fb@1"), HSP_HTTP_EROUTE);
  CHECK_EQ_INT(route(&r, "/role/a%40b@1"), HSP_HTTP_EROUTE);
  CHECK_EQ_INT(route(&r, "/role/..@1/x"), HSP_HTTP_EROUTE);
  CHECK_EQ_INT(route(&r, "/role/web@1%zz"), HSP_HTTP_EROUTE);
  CHECK_EQ_INT(route(&r, "/role/web@1%00"), HSP_HTTP_EROUTE);
  {
    char longname[400] = "/role/";
    memset(longname + 6, 'a', 300);
    longname[306] = 0;
    CHECK_EQ_INT(route(&r, longname), HSP_HTTP_EROUTE);
  }

  const char *key = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
  char t[200];
  snprintf(t, sizeof t, "/instance/%s/api/v1?z", key);
  CHECK_EQ_INT(route(&r, t), 0);
  CHECK_EQ_INT(r.kind, HSP_HTTP_ROUTE_INSTANCE);
  CHECK(r.key[0] == 0x00 && r.key[1] == 0x11 && r.key[31] == 0xff);
  CHECK(str_is(r.path, "/api/v1") && str_is(r.query, "z"));
  snprintf(t, sizeof t, "/instance/%s", key);
  CHECK_EQ_INT(route(&r, t), 0);
  CHECK(str_is(r.path, "/"));
  snprintf(t, sizeof t, "/instance/%.63s/x", key);
  CHECK_EQ_INT(route(&r, t), HSP_HTTP_EROUTE);
  snprintf(t, sizeof t, "/instance/%.63sg/x", key);
  CHECK_EQ_INT(route(&r, t), HSP_HTTP_EROUTE);

  CHECK_EQ_INT(route(&r, "/list/couchdb@%3E%3D1.5.0"), 0);
  CHECK_EQ_INT(r.kind, HSP_HTTP_ROUTE_LIST);
  CHECK_EQ_STR(r.name, "couchdb");
  CHECK_EQ_STR(r.range, ">=1.5.0");
  CHECK_EQ_INT(route(&r, "/list/couchdb/"), 0);
  CHECK_EQ_STR(r.range, "*");
  CHECK_EQ_INT(route(&r, "/list/couchdb/more"), HSP_HTTP_EROUTE);

  /* Not routed: dashboard, metrics, lookalikes, asterisk-form. */
  const char *other[] = {"/", "/metrics", "/roles/x", "/role", "/listing", "*", "/events?x"};
  for (size_t i = 0; i < sizeof other / sizeof *other; i++) {
    CHECK_EQ_INT(route(&r, other[i]), 0);
    CHECK_EQ_INT(r.kind, HSP_HTTP_ROUTE_OTHER);
  }
  CHECK_EQ_INT(route(&r, "/metrics?x=1"), 0);
  CHECK(str_is(r.path, "/metrics") && str_is(r.query, "x=1"));
}

/* Collects headers from a real parse, then rewrites them as the gateway will. */
typedef struct collect {
  hsp_http_headers_t h;
  hsp_http_header_t items[16];
  char buf[1024];
  char method[16], target[128];
} collect_t;

static int c_start(void *d, const hsp_http_start_line_t *l) {
  collect_t *c = d;
  snprintf(c->method, sizeof c->method, "%.*s", (int)l->method_name.len, l->method_name.p);
  snprintf(c->target, sizeof c->target, "%.*s", (int)l->target.len, l->target.p);
  return 0;
}
static int c_header(void *d, hsp_http_str_t n, hsp_http_str_t v) {
  return hsp_http_headers_add(&((collect_t *)d)->h, n, v);
}

static void forward(const char *req, const hsp_http_forward_opts_t *o, char *out, size_t cap,
                    int *len) {
  static collect_t c;
  memset(&c, 0, sizeof c);
  hsp_http_headers_init(&c.h, c.items, 16, c.buf, sizeof c.buf);
  hsp_http_callbacks_t cb = {.on_start_line = c_start, .on_header = c_header};
  uint8_t scratch[1024];
  hsp_http_parser_t p;
  size_t used;
  hsp_http_parser_init(&p, HSP_HTTP_REQUEST, &cb, &c, scratch, sizeof scratch, NULL);
  int rc = hsp_http_parser_execute(&p, (const uint8_t *)req, strlen(req), &used);
  CHECK(rc == HSP_HTTP_OK || rc == HSP_HTTP_UPGRADED);
  hsp_http_route_t r;
  CHECK_EQ_INT(hsp_http_route_parse(&r, c.target, strlen(c.target)), 0);
  char target[256];
  snprintf(target, sizeof target, "%.*s%s%.*s", (int)r.path.len, r.path.p,
           r.has_query ? "?" : "", (int)r.query.len, r.query.p);
  *len = hsp_http_forward_request_head(out, cap, (hsp_http_str_t){c.method, strlen(c.method)},
                                       (hsp_http_str_t){target, strlen(target)}, c.h.items,
                                       c.h.count, o);
  if (*len >= 0) out[*len] = 0;
}

static void test_forward_head(void) {
  char out[1024];
  int n;
  hsp_http_forward_opts_t o = {.client_addr = "127.0.0.1", .proto = "http"};
  forward("GET /role/web@1/a?b HTTP/1.1\r\nHost: gw:8777\r\nX-Forwarded-For: 6.6.6.6\r\n"
          "X-Forwarded-Proto: https\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n"
          "Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: x\r\nAccept: */*\r\n"
          "Forwarded: for=6.6.6.6\r\n\r\n",
          &o, out, sizeof out, &n);
  CHECK_EQ_STR(out, "GET /a?b HTTP/1.1\r\nHost: gw:8777\r\nAccept: */*\r\n"
                    "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n"
                    "X-Forwarded-Host: gw:8777\r\n\r\n");
  /* Trusted chain: extended, not replaced. */
  o.trust_forwarded = true;
  o.host = "backend";
  forward("POST /instance/00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff/up HTTP/1.1\r\n"
          "Host: gw\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\nx-forwarded-for: 10.0.0.3\r\n"
          "X-Forwarded-Proto: https\r\nTransfer-Encoding: chunked\r\n\r\n",
          &o, out, sizeof out, &n);
  CHECK_EQ_STR(out, "POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: backend\r\n"
                    "X-Forwarded-For: 10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1\r\n"
                    "X-Forwarded-Proto: https\r\nX-Forwarded-Host: gw\r\n\r\n");
  /* WebSocket upgrade keeps Upgrade and says so in Connection. */
  o = (hsp_http_forward_opts_t){.client_addr = "::1", .upgrade = true};
  forward("GET /role/chat/ws HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: k\r\nContent-Length: 0\r\n\r\n",
          &o, out, sizeof out, &n);
  CHECK_EQ_STR(out, "GET /ws HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n"
                    "Content-Length: 0\r\nX-Forwarded-For: ::1\r\nX-Forwarded-Proto: http\r\n"
                    "X-Forwarded-Host: gw\r\nConnection: upgrade\r\n\r\n");
  /* Too small a buffer is an error at every size, never a truncated head. */
  char small[200];
  for (size_t cap = 0; cap < 120; cap++) {
    forward("GET /role/chat/ws HTTP/1.1\r\nHost: gw\r\n\r\n", &o, small, cap, &n);
    if (n >= 0) {
      CHECK(n < (int)cap);
      break;
    }
    CHECK_EQ_INT(n, HSP_HTTP_ENOSPACE);
  }
  /* Response heads for the client. */
  {
    hsp_http_header_t rh[] = {
        {{"Content-Type", 12}, {"text/plain", 10}}, {{"Connection", 10}, {"keep-alive, X-Hop", 17}},
        {{"X-Hop", 5}, {"1", 1}},                   {{"Keep-Alive", 10}, {"timeout=5", 9}},
        {{"Content-Length", 14}, {"12", 2}},        {{"Upgrade", 7}, {"websocket", 9}},
        {{"Transfer-Encoding", 17}, {"gzip", 4}},
    };
    hsp_http_response_opts_t ro = {.close = false};
    n = hsp_http_forward_response_head(out, sizeof out, 200, (hsp_http_str_t){"OK", 2}, rh, 5, &ro);
    out[n > 0 ? n : 0] = 0;
    CHECK_EQ_STR(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n");
    ro.close = true;
    n = hsp_http_forward_response_head(out, sizeof out, 404, (hsp_http_str_t){"", 0}, rh, 1, &ro);
    out[n > 0 ? n : 0] = 0;
    CHECK_EQ_STR(out, "HTTP/1.1 404 \r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n");
    /* A body until close, re-framed: codings first, chunked last, no length. */
    ro = (hsp_http_response_opts_t){.chunked = true};
    n = hsp_http_forward_response_head(out, sizeof out, 200, (hsp_http_str_t){"OK", 2}, rh, 7, &ro);
    out[n > 0 ? n : 0] = 0;
    CHECK_EQ_STR(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                      "Transfer-Encoding: gzip, chunked\r\n\r\n");
    ro = (hsp_http_response_opts_t){.upgrade = true};
    n = hsp_http_forward_response_head(out, sizeof out, 101, (hsp_http_str_t){"Switching", 9}, rh + 5, 1, &ro);
    out[n > 0 ? n : 0] = 0;
    CHECK_EQ_STR(out, "HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
    /* An HTTP/1.0 client: the coded body goes unframed (no Transfer-Encoding), then close. */
    ro = (hsp_http_response_opts_t){.identity = true, .close = true};
    n = hsp_http_forward_response_head(out, sizeof out, 200, (hsp_http_str_t){"OK", 2}, rh, 7, &ro);
    out[n > 0 ? n : 0] = 0;
    CHECK_EQ_STR(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
                      "Connection: close\r\n\r\n");
    /* An HTTP/1.0 client that asked for keep-alive is told it is kept. */
    ro = (hsp_http_response_opts_t){.keep_alive = true};
    n = hsp_http_forward_response_head(out, sizeof out, 204, (hsp_http_str_t){"No Content", 10}, rh, 1, &ro);
    out[n > 0 ? n : 0] = 0;
    CHECK_EQ_STR(out, "HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n\r\n");
    CHECK_EQ_INT(hsp_http_forward_response_head(out, 10, 200, (hsp_http_str_t){"OK", 2}, rh, 7, &ro),
                 HSP_HTTP_ENOSPACE);
    CHECK_EQ_INT(hsp_http_forward_response_head(out, sizeof out, 42, (hsp_http_str_t){"", 0}, rh, 0, &ro),
                 HSP_HTTP_ESTATUS);
  }
  /* Header store limits. */
  hsp_http_headers_t h;
  hsp_http_header_t items[1];
  char buf[4];
  hsp_http_headers_init(&h, items, 1, buf, sizeof buf);
  CHECK_EQ_INT(hsp_http_headers_add(&h, (hsp_http_str_t){"abc", 3}, (hsp_http_str_t){"de", 2}),
               HSP_HTTP_ENOSPACE);
  CHECK_EQ_INT(hsp_http_headers_add(&h, (hsp_http_str_t){"ab", 2}, (hsp_http_str_t){"de", 2}), 0);
  CHECK_EQ_INT(hsp_http_headers_add(&h, (hsp_http_str_t){"", 0}, (hsp_http_str_t){"", 0}),
               HSP_HTTP_ENOSPACE);
  CHECK(hsp_http_headers_get(&h, "AB") && str_is(*hsp_http_headers_get(&h, "AB"), "de"));
  CHECK(hsp_http_headers_get(&h, "a") == NULL);
}

int main(void) {
  test_valid_requests();
  test_invalid_requests();
  test_limits();
  test_responses();
  test_pause_and_callback_errors();
  test_chunk_header();
  test_percent_decode();
  test_routes();
  test_forward_head();
  printf("test_http: %d transcript cases, each fed in 7 split patterns\n", cases_run);
  return check_summary("test_http");
}
