/*
 * A small keep-alive HTTP service for the gateway benchmark: answers every request with
 * "hello from the backend\n" (pipelining included, answers in order). Prints "listening PORT".
 */
#include "http.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct client {
  uv_tcp_t tcp;
  hsp_http_parser_t parser;
  uint8_t scratch[16 * 1024];
  char rbuf[64 * 1024];
  unsigned answers; /* completed requests not yet answered in this read */
  bool close;
} client_t;

static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 23\r\n\r\n"
                            "hello from the backend\n";

static int on_complete(void *d, const hsp_http_message_t *m) {
  client_t *c = d;
  c->answers++;
  if (!m->keep_alive) c->close = true;
  return 0;
}
static const hsp_http_callbacks_t cbs = {.on_message_complete = on_complete};

static void on_closed(uv_handle_t *h) { free(h->data); }
static void on_written(uv_write_t *w, int status) {
  (void)status;
  free(w);
}
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  client_t *c = h->data;
  *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  client_t *c = s->data;
  if (n < 0) {
    uv_close((uv_handle_t *)s, on_closed);
    return;
  }
  size_t used;
  c->answers = 0;
  int rc = hsp_http_parser_execute(&c->parser, (const uint8_t *)buf->base, (size_t)n, &used);
  if (c->answers) {
    /* One write for every response this read completed. */
    size_t len = c->answers * (sizeof reply - 1);
    uv_write_t *w = malloc(sizeof *w + len);
    char *p = (char *)(w + 1);
    for (unsigned i = 0; i < c->answers; i++) memcpy(p + i * (sizeof reply - 1), reply, sizeof reply - 1);
    uv_buf_t b = uv_buf_init(p, (unsigned)len);
    uv_write(w, s, &b, 1, on_written);
  }
  if (rc < 0 || c->close) uv_close((uv_handle_t *)s, on_closed);
}

static void on_conn(uv_stream_t *server, int status) {
  if (status < 0) return;
  client_t *c = calloc(1, sizeof *c);
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  hsp_http_parser_init(&c->parser, HSP_HTTP_REQUEST, &cbs, c, c->scratch, sizeof c->scratch, NULL);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_init(loop, &server);
  if (uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0) || uv_listen((uv_stream_t *)&server, 511, on_conn))
    return 1;
  int len = sizeof addr;
  uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &len);
  printf("listening %d\n", ntohs(addr.sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
