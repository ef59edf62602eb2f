/*
 * HTTP/1.1 message parser (RFC 9112), sans-I/O and streaming, written for the gateway.
 *
 * Why our own: Debian only ships the archived nodejs http-parser 2.9, which is unmaintained;
 * llhttp is not packaged. This one is small, strict about framing, and fuzzed
 * (fuzz/agent_http.c checks that any split of the input gives the same events).
 *
 * Use: init a parser over a caller-owned scratch buffer, feed bytes as they arrive with
 * hsp_http_parser_execute(), and call hsp_http_parser_finish() at end of stream. Callbacks
 * report the start line, each header, headers complete, body slices (views into the input,
 * never buffered), trailers and message complete. Strings passed to callbacks are views that
 * are valid only during the callback. After a message the parser resets itself for the next
 * one on the same connection (keep-alive, pipelining).
 *
 * Strictness (each of these is a request-smuggling vector somewhere, so all are errors):
 *  - every line must end in CRLF: a bare LF or a bare CR is rejected (RFC 9112 allows a
 *    recipient to accept bare LF; we do not, so no upstream can disagree with us about where
 *    a header ends);
 *  - obs-fold (a header line starting with SP/HTAB), whitespace before the colon, a field
 *    name that is not a token, control characters (other than HTAB) or DEL in values;
 *  - Content-Length together with Transfer-Encoding; several Content-Length values that
 *    differ (identical duplicates are merged, as RFC 9110 allows); a Content-Length that is
 *    not 1*DIGIT;
 *  - Transfer-Encoding in an HTTP/1.0 request; chunked applied twice or not last (400);
 *    in requests, any coding other than a single "chunked" (501, we decode none);
 *  - chunk sizes that are empty, not hex, longer than 16 digits; chunk data not followed by
 *    CRLF; malformed chunk extensions;
 *  - HTTP/1.1 requests without exactly one Host header.
 * Empty lines before a request line are skipped (RFC 9112 §2.2).
 */
#ifndef HSP_AGENT_HTTP_H
#define HSP_AGENT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Positive results of execute: not errors, the caller acts and may call execute again. */
enum hsp_http_status {
  HSP_HTTP_OK = 0,       /* every byte consumed */
  HSP_HTTP_PAUSED = 1,   /* a callback asked to pause: call execute again with the rest */
  HSP_HTTP_UPGRADED = 2, /* upgrade/CONNECT message complete: the rest of the bytes belong to
                          * the tunnel (or call hsp_http_parser_resume if it was refused) */
  HSP_HTTP_DONE = 3,     /* a message without keep-alive completed: no more messages here */
};

/* Errors are sticky. hsp_http_error_status() gives the status a server answers with. */
enum hsp_http_error {
  HSP_HTTP_EMETHOD = -1,        /* 400 method is not a token */
  HSP_HTTP_ETARGET = -2,        /* 400 empty request target or invalid characters in it */
  HSP_HTTP_EVERSION = -3,       /* 400 malformed HTTP-version */
  HSP_HTTP_EVERSION_UNSUP = -4, /* 505 HTTP major version other than 1 */
  HSP_HTTP_ESTATUS = -5,        /* malformed status line (responses) */
  HSP_HTTP_EHEADER = -6,        /* 400 malformed header line */
  HSP_HTTP_EOBS_FOLD = -7,      /* 400 obsolete line folding */
  HSP_HTTP_ECRLF = -8,          /* 400 line not terminated by CRLF (bare LF or CR) */
  HSP_HTTP_EURI_TOO_LONG = -9,  /* 414 request line above the limit */
  HSP_HTTP_EHEADERS_TOO_LARGE = -10, /* 431 header section or count above the limit */
  HSP_HTTP_EBODY_TOO_LARGE = -11,    /* 413 body above the limit */
  HSP_HTTP_ECONTENT_LENGTH = -12,    /* 400 invalid or conflicting Content-Length */
  HSP_HTTP_ETRANSFER_ENCODING = -13, /* 400 invalid Transfer-Encoding */
  HSP_HTTP_ECL_AND_TE = -14,         /* 400 both Content-Length and Transfer-Encoding */
  HSP_HTTP_ENOT_IMPLEMENTED = -15,   /* 501 transfer coding we do not decode */
  HSP_HTTP_EHOST = -16,              /* 400 HTTP/1.1 request without exactly one Host */
  HSP_HTTP_ECHUNK = -17,             /* 400 malformed chunk framing */
  HSP_HTTP_ECALLBACK = -18,          /* 500 a callback returned an error */
  HSP_HTTP_EINCOMPLETE = -19,        /* 400 stream ended inside a message */
  HSP_HTTP_ECONNECT = -20,           /* 400 CONNECT request with a body */
  HSP_HTTP_EROUTE = -21,             /* 400 gateway route with a bad name, key or escape */
  HSP_HTTP_ENOSPACE = -22,           /* output buffer too small (helpers) */
};
const char *hsp_http_strerror(int err);
/* The HTTP status a server should send for a parse error (400, 413, 414, 431, 501, 505). */
int hsp_http_error_status(int err);

typedef enum hsp_http_type { HSP_HTTP_REQUEST, HSP_HTTP_RESPONSE } hsp_http_type_t;

typedef enum hsp_http_method {
  HSP_HTTP_OTHER = 0, /* any other token: passed through by a proxy */
  HSP_HTTP_GET,
  HSP_HTTP_HEAD,
  HSP_HTTP_POST,
  HSP_HTTP_PUT,
  HSP_HTTP_DELETE,
  HSP_HTTP_CONNECT,
  HSP_HTTP_OPTIONS,
  HSP_HTTP_TRACE,
  HSP_HTTP_PATCH,
} hsp_http_method_t;

typedef enum hsp_http_body {
  HSP_HTTP_BODY_NONE,    /* no body (or an empty one) */
  HSP_HTTP_BODY_LENGTH,  /* content_length bytes */
  HSP_HTTP_BODY_CHUNKED, /* chunked transfer coding */
  HSP_HTTP_BODY_EOF,     /* responses only: until the connection closes */
} hsp_http_body_t;

/* A view: not NUL-terminated, valid during the callback that received it. */
typedef struct hsp_http_str {
  const char *p;
  size_t len;
} hsp_http_str_t;

typedef struct hsp_http_start_line {
  hsp_http_method_t method; /* requests */
  hsp_http_str_t method_name;
  hsp_http_str_t target;
  int status;               /* responses */
  hsp_http_str_t reason;
  int version_major, version_minor;
} hsp_http_start_line_t;

/* What the parser knows about the current message once its headers are complete. */
typedef struct hsp_http_message {
  hsp_http_type_t type;
  hsp_http_method_t method;
  int status;
  int version_major, version_minor;
  hsp_http_body_t body;
  uint64_t content_length; /* when body == HSP_HTTP_BODY_LENGTH */
  bool keep_alive;         /* the connection may carry another message after this one */
  bool upgrade;            /* Upgrade + "Connection: upgrade", CONNECT, or a 101 response */
  bool expect_continue;    /* "Expect: 100-continue" */
} hsp_http_message_t;

/* Return values of callbacks: 0 to go on, a negative number to fail the parse with
 * HSP_HTTP_ECALLBACK, or these flags (on_headers_complete may combine them). */
enum hsp_http_cb_flags {
  HSP_HTTP_PAUSE = 1,     /* stop after this event; execute returns HSP_HTTP_PAUSED */
  HSP_HTTP_SKIP_BODY = 2, /* response to HEAD (or similar): it has no body whatever it says */
  HSP_HTTP_TUNNEL = 4,    /* response to a successful CONNECT: the rest is a tunnel */
};

typedef struct hsp_http_callbacks {
  int (*on_start_line)(void *data, const hsp_http_start_line_t *line);
  int (*on_header)(void *data, hsp_http_str_t name, hsp_http_str_t value);
  int (*on_headers_complete)(void *data, const hsp_http_message_t *msg);
  int (*on_body)(void *data, const uint8_t *bytes, size_t len);
  int (*on_trailer)(void *data, hsp_http_str_t name, hsp_http_str_t value);
  int (*on_message_complete)(void *data, const hsp_http_message_t *msg);
} hsp_http_callbacks_t;

typedef struct hsp_http_limits {
  size_t max_start_line;   /* request line / status line, without CRLF (414) */
  size_t max_header_bytes; /* the whole header section with CRLFs; trailers alike (431) */
  size_t max_headers;      /* number of fields; trailers alike (431) */
  size_t max_chunk_line;   /* chunk size + extensions (400) */
  uint64_t max_body;       /* 0: unlimited (413) */
} hsp_http_limits_t;

/* 8 KiB line, 16 KiB of headers, 100 fields, 4 KiB chunk lines, unlimited body. */
hsp_http_limits_t hsp_http_default_limits(void);

typedef struct hsp_http_parser {
  /* Configuration; may be changed between messages. */
  hsp_http_type_t type;
  const hsp_http_callbacks_t *cb;
  void *data;
  hsp_http_limits_t limits;

  /* Private. */
  uint8_t *scratch; /* holds a line that arrived in pieces */
  size_t scratch_len, buffered;
  int state, error;
  size_t header_bytes, header_count;
  uint64_t remaining, body_total;
  unsigned flags;
  unsigned host_count;
  bool awaiting_final; /* an interim (1xx) response came: the final one must follow */
  hsp_http_message_t msg;
} hsp_http_parser_t;

/* The scratch buffer bounds every line: limits above scratch_len are lowered to it, so a
 * scratch of max_header_bytes (default 16 KiB) keeps the defaults. */
void hsp_http_parser_init(hsp_http_parser_t *p, hsp_http_type_t type,
                          const hsp_http_callbacks_t *cb, void *data, uint8_t *scratch,
                          size_t scratch_len, const hsp_http_limits_t *limits);

/* Feeds bytes; *consumed tells how many were used. Returns HSP_HTTP_OK (all consumed), a
 * positive hsp_http_status, or a negative error (sticky; *consumed is where it was found). */
int hsp_http_parser_execute(hsp_http_parser_t *p, const uint8_t *bytes, size_t len,
                            size_t *consumed);

/* End of stream: completes a body that runs until close. Returns 0, or HSP_HTTP_EINCOMPLETE
 * if the stream ended inside a message (or the sticky error). */
int hsp_http_parser_finish(hsp_http_parser_t *p);

/* After HSP_HTTP_UPGRADED, when the upgrade was refused: parse HTTP again. */
void hsp_http_parser_resume(hsp_http_parser_t *p);

/* The message being parsed (valid from headers complete to message complete). */
static inline const hsp_http_message_t *hsp_http_parser_message(const hsp_http_parser_t *p) {
  return &p->msg;
}

const char *hsp_http_method_name(hsp_http_method_t m);

/* Writes a chunk header "<hex size>\r\n" (at least 19 bytes of room); returns its length. */
size_t hsp_http_chunk_header(char *out, uint64_t size);

/* ---- Gateway helpers -------------------------------------------------------------------- */

/* Strict percent-decoding: "%" must be followed by two hex digits; decoded bytes below 0x20
 * and 0x7f are refused (names and ranges never need them). '+' stays '+': in a path it is not
 * a space, and semver build metadata uses it. Writes a NUL after the output.
 * Returns the decoded length, HSP_HTTP_EROUTE or HSP_HTTP_ENOSPACE. */
int hsp_http_percent_decode(char *out, size_t cap, const char *in, size_t len);

typedef enum hsp_http_route_kind {
  HSP_HTTP_ROUTE_OTHER,    /* anything else (dashboard, /metrics, 404) */
  HSP_HTTP_ROUTE_ROLE,     /* /role/name[@range][/path][?query] */
  HSP_HTTP_ROUTE_INSTANCE, /* /instance/<64 hex>[/path][?query] */
  HSP_HTTP_ROUTE_LIST,     /* /list/name[@range][?query] */
} hsp_http_route_kind_t;

#define HSP_HTTP_NAME_MAX 255
#define HSP_HTTP_RANGE_MAX 255

typedef struct hsp_http_route {
  hsp_http_route_kind_t kind;
  char name[HSP_HTTP_NAME_MAX + 1];   /* decoded */
  char range[HSP_HTTP_RANGE_MAX + 1]; /* decoded; "*" when absent */
  uint8_t key[32];                    /* INSTANCE */
  /* The target to send upstream, still percent-encoded as the client sent it (decoding and
   * re-encoding would be lossy: %2F, %3F). Views into the parsed target; path is "/" when
   * the route ends after the name or key. */
  hsp_http_str_t path;
  hsp_http_str_t query; /* without the '?'; has_query tells "?"" from nothing */
  bool has_query;
} hsp_http_route_t;

/* Parses an origin-form ("/a/b?c") or absolute-form ("http://host/a") target. Fills route
 * (kind OTHER for paths the gateway does not route) and returns 0, or HSP_HTTP_EROUTE for a
 * routed path with an empty or invalid name, a bad escape or a bad instance key. */
int hsp_http_route_parse(hsp_http_route_t *route, const char *target, size_t len);

typedef struct hsp_http_header {
  hsp_http_str_t name, value;
} hsp_http_header_t;

/* A caller-owned store that copies header fields out of parser callbacks. */
typedef struct hsp_http_headers {
  hsp_http_header_t *items;
  size_t cap, count;
  char *buf;
  size_t buf_cap, buf_len;
} hsp_http_headers_t;

void hsp_http_headers_init(hsp_http_headers_t *h, hsp_http_header_t *items, size_t cap,
                           char *buf, size_t buf_cap);
/* Returns 0 or HSP_HTTP_ENOSPACE. */
int hsp_http_headers_add(hsp_http_headers_t *h, hsp_http_str_t name, hsp_http_str_t value);
/* The first field with this name (case-insensitive), or NULL. */
const hsp_http_str_t *hsp_http_headers_get(const hsp_http_headers_t *h, const char *name);

typedef struct hsp_http_forward_opts {
  const char *client_addr; /* the peer address, appended to X-Forwarded-For */
  const char *proto;       /* "http" or "https": X-Forwarded-Proto */
  const char *host;        /* Host to send upstream; NULL keeps the client's */
  bool trust_forwarded;    /* extend incoming X-Forwarded-* / Forwarded instead of replacing */
  bool upgrade;            /* keep Upgrade and send "Connection: upgrade" */
} hsp_http_forward_opts_t;

/* Writes the request head to send upstream: "METHOD target HTTP/1.1", the client's fields
 * without hop-by-hop ones (Connection and the fields it names, Keep-Alive,
 * Proxy-Connection, TE, Upgrade unless upgrading), Host per opts (the client's Host then goes
 * to X-Forwarded-Host), X-Forwarded-For/-Proto/-Host set or extended, and the final CRLF.
 * Content-Length and Transfer-Encoding pass unchanged: the body is forwarded with the framing
 * it arrived in. Returns the length written or HSP_HTTP_ENOSPACE. */
int hsp_http_forward_request_head(char *out, size_t cap, hsp_http_str_t method,
                                  hsp_http_str_t target, const hsp_http_header_t *headers,
                                  size_t count, const hsp_http_forward_opts_t *opts);

typedef struct hsp_http_response_opts {
  bool close;   /* the gateway closes the client connection after this response */
  bool chunked; /* the upstream body runs until close: re-frame it chunked for the client */
  bool upgrade; /* a 101 being passed on: keep Upgrade, send "Connection: upgrade" */
  bool identity; /* an HTTP/1.0 client: the body goes unframed until close, so upstream
                  * Transfer-Encoding is dropped (and close must be set) */
  bool keep_alive; /* an HTTP/1.0 client that asked for keep-alive: say it is kept */
} hsp_http_response_opts_t;

/* Writes the response head for the client: "HTTP/1.1 status reason", the upstream fields
 * without hop-by-hop ones, Transfer-Encoding ending in chunked when re-framing (upstream
 * Content-Length dropped) or without Transfer-Encoding for identity, then
 * "Connection: upgrade", "Connection: close" or "Connection: keep-alive" as asked.
 * Returns the length written, HSP_HTTP_ESTATUS or HSP_HTTP_ENOSPACE. */
int hsp_http_forward_response_head(char *out, size_t cap, int status, hsp_http_str_t reason,
                                   const hsp_http_header_t *headers, size_t count,
                                   const hsp_http_response_opts_t *opts);

#endif
